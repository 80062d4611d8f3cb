import { AGENT_USER } from "../../agent-user.ts";
import { assets } from "../../assets.ts";
import { BottleError } from "../../errors.ts";
import type { TarEntry } from "../../tar.ts";
import type { SshGateConfig } from "./daemon/config.ts";

/**
 * The SSH gate: SSH from the bottle to exactly the listed hosts, with keys
 * the bottle can use but never read. In the gate container (root-only):
 *   - an ssh-agent holding only this bottle's keys (given to the gate as it starts);
 *   - per listed host one TCP forwarder on the gate's bottle-network address
 *     (port 2200+i) to exactly that host:port — the gate resolves the name,
 *     checks the server's host key against the pinned one, logs the
 *     connection (host, bytes, duration) to ssh.jsonl;
 *   - the agent reachable over TCP (port 2199) through a filter that passes
 *     only "list keys" and "sign this SSH login" as a listed user, with the
 *     key of a host that names that user (agent-filter.ts SignPolicy).
 * In the bottle: `~/.ssh/config` maps each host to its forwarder
 * (`HostName gate`, `Port 22xx`, `HostKeyAlias <host>`, the pinned key in
 * `~/.ssh/known_hosts`, `StrictHostKeyChecking yes`) and `IdentityAgent` to
 * a unix socket that a relay (socat, started at provisioning as the bottle
 * user) connects to the gate's agent port.
 *
 * This module renders everything; lib/gates/ssh/daemon/gate.ts is the daemon.
 */

/** The gate's network alias on the bottle's internal network (as for the git gate). */
export const SSH_GATE_HOST = "gate";
export const SSH_FIRST_PORT = 2200;
export const SSH_AGENT_PORT = 2199;
/** 2200…2298: one forwarder port per listed host. */
export const SSH_MAX_HOSTS = 99;
export const SSH_AUDIT_FILE = "ssh.jsonl";
export const SSH_GATE_DIR = "/etc/bottle/ssh";
/** In the gate: the agent's socket and the daemon's ready marker (root-only dir). */
export const SSH_RUN_DIR = "/run/bottle-ssh";
/** In the bottle: the relay's unix socket (IdentityAgent, SSH_AUTH_SOCK). */
export const BOTTLE_AGENT_SOCKET = "/run/bottle/ssh-agent.sock";

/** A listed host as the plan shows it: where its traffic goes, the key's host path (never the key). */
export interface SshPlanHost {
  host: string;
  port: number;
  user?: string;
  /** The gate's forwarder port for this host. */
  gatePort: number;
  identityFile: string;
  /** The pinned host key, `<type> <base64>` (public). */
  knownHostKey: string;
}

export interface SshPlan {
  agentPort: number;
  /** The unix socket in the bottle (IdentityAgent). */
  agentSocket: string;
  hosts: SshPlanHost[];
}

/** A listed host with what only the gate may hold, read on the host at launch. */
export interface SshGateHost {
  host: string;
  identity: string | Uint8Array;
  /** `<type> <base64>` of the identity, when it could be derived (for IdentityFile + IdentitiesOnly in the bottle). */
  publicKey?: string;
}

export function sshPlan(hosts: Array<{ host: string; port: number; user?: string; identityFile: string; knownHostKey: string }>): SshPlan {
  if (hosts.length > SSH_MAX_HOSTS)
    throw new BottleError(`a bottle may list at most ${SSH_MAX_HOSTS} SSH hosts, this one lists ${hosts.length}`, { fix: "split the hosts over several bottles" });
  return {
    agentPort: SSH_AGENT_PORT,
    agentSocket: BOTTLE_AGENT_SOCKET,
    hosts: hosts.map((host, i) => ({
      host: host.host,
      port: host.port,
      ...(host.user === undefined ? {} : { user: host.user }),
      gatePort: SSH_FIRST_PORT + i,
      identityFile: host.identityFile,
      knownHostKey: host.knownHostKey,
    })),
  };
}

/** The derivable public keys by host name. */
export function sshPublicKeys(hosts: SshGateHost[]): Record<string, string> {
  return Object.fromEntries(hosts.filter((host) => host.publicKey).map((host) => [host.host, host.publicKey!]));
}

// ---- the gate ----

/**
 * The user the gate signs logins for on a host listed without `user`: the
 * name the bottle's ssh logs in with when none is given, its local user
 * name, which is always AGENT_USER. Signing for that one name, not for any,
 * keeps `ssh root@host` (or `-l root`) from borrowing the host's key: a host
 * listed without a user grants the login ssh makes on its own, and the
 * manifest says `user:` when another account is meant.
 */
export const SSH_DEFAULT_USER = AGENT_USER;

/** `publicKeys`: each host's identity's public half by host name (sshPublicKeys); `maxLogBytes`: the cap of ssh.jsonl. */
export function sshGateConfig(bottle: string, plan: SshPlan, publicKeys: Record<string, string>, maxLogBytes: number): SshGateConfig {
  return {
    bottle,
    listen: SSH_GATE_HOST,
    agentPort: plan.agentPort,
    agentSocket: `${SSH_RUN_DIR}/agent.sock`,
    log: `/var/log/bottle/${SSH_AUDIT_FILE}`,
    maxLogBytes,
    readyFile: `${SSH_RUN_DIR}/ready`,
    hosts: plan.hosts.map((host) => ({
      host: host.host,
      port: host.port,
      listenPort: host.gatePort,
      hostKey: host.knownHostKey,
      user: host.user ?? SSH_DEFAULT_USER,
      ...(publicKeys[host.host] === undefined ? {} : { key: publicKeys[host.host] }),
    })),
  };
}

/**
 * Everything the SSH gate needs, as tar entries the gate reads on its stdin
 * as it starts: root-owned, dirs 0700, keys 0600. `keys` are in the
 * plan's host order. Empty when the bottle lists no SSH hosts (then nothing
 * of the SSH gate runs).
 */
export function sshGateEntries(config: SshGateConfig, keys: SshGateHost[]): TarEntry[] {
  if (config.hosts.length === 0) return [];
  if (keys.length !== config.hosts.length || keys.some((key, i) => key.host !== config.hosts[i]!.host))
    throw new Error("the SSH gate's keys do not match its hosts");
  const dir = (path: string): TarEntry => ({ path, type: "dir", mode: 0o700, uid: 0, gid: 0 });
  const file = (path: string, content: string | Uint8Array, mode = 0o600): TarEntry => ({ path, content, mode, uid: 0, gid: 0 });
  const root = SSH_GATE_DIR.replace(/^\//, "");
  return [
    dir(root),
    dir(`${root}/keys`),
    file(`${root}/ssh.json`, `${JSON.stringify(config, null, 2)}\n`),
    file(`${root}/start`, assets.sshStart, 0o700),
    file(`${root}/ssh-gate.mjs`, assets.sshGate),
    ...keys.map((key, i) => file(`${root}/keys/${i}`, key.identity)),
  ];
}

// ---- the bottle ----

/** The bottle's known_hosts: each host's pinned key under its HostKeyAlias (the host name). */
export function sshKnownHosts(hosts: Array<Pick<SshPlanHost, "host" | "knownHostKey">>): string {
  return hosts.map((host) => `${host.host} ${host.knownHostKey}\n`).join("");
}

/** Where the bottle keeps a host's public key (IdentityFile with IdentitiesOnly picks it from the agent). */
export function publicKeyPath(home: string, host: string): string {
  return `${home}/.ssh/bottle-gate/${host}.pub`;
}

/** The bottle's ~/.ssh/config: every listed host goes to its forwarder on the gate. */
export function sshConfigContent(plan: SshPlan, home: string, publicKeys: Record<string, string> = {}): string {
  const blocks = plan.hosts.map((host) => {
    const lines = [
      `Host ${host.host}`,
      `  HostName ${SSH_GATE_HOST}`,
      `  Port ${host.gatePort}`,
      ...(host.user ? [`  User ${host.user}`] : []),
      `  HostKeyAlias ${host.host}`,
      `  UserKnownHostsFile ${home}/.ssh/known_hosts`,
      "  GlobalKnownHostsFile /dev/null",
      "  StrictHostKeyChecking yes",
      "  UpdateHostKeys no",
      "  CheckHostIP no",
      `  IdentityAgent ${plan.agentSocket}`,
      ...(publicKeys[host.host] ? [`  IdentityFile ${publicKeyPath(home, host.host)}`, "  IdentitiesOnly yes"] : []),
      "  ForwardAgent no",
      "  BatchMode yes",
    ];
    return `${lines.join("\n")}\n`;
  });
  return [
    "# Written by bottle. SSH reaches only these hosts, through the SSH gate:",
    "# the keys stay in the gate, whose agent signs logins for this bottle.",
    "",
    blocks.join("\n"),
  ].join("\n");
}

/** Files for the bottle user's HOME: ~/.ssh/config, known_hosts, the public keys. */
export function sshBottleEntries(plan: SshPlan, publicKeys: Record<string, string>, home: string, uid: number, gid: number): TarEntry[] {
  if (plan.hosts.length === 0) return [];
  const dir = (path: string): TarEntry => ({ path, type: "dir", mode: 0o700, uid, gid });
  const file = (path: string, content: string, mode = 0o600): TarEntry => ({ path, content, mode, uid, gid });
  const entries: TarEntry[] = [
    dir(`${home}/.ssh`),
    file(`${home}/.ssh/config`, sshConfigContent(plan, home, publicKeys)),
    file(`${home}/.ssh/known_hosts`, sshKnownHosts(plan.hosts), 0o644),
  ];
  const withKeys = plan.hosts.filter((host) => publicKeys[host.host]);
  if (withKeys.length) entries.push(dir(`${home}/.ssh/bottle-gate`));
  for (const host of withKeys) entries.push(file(publicKeyPath(home, host.host), `${publicKeys[host.host]} bottle-ssh-gate:${host.host}\n`, 0o644));
  return entries;
}

/** The relay in the bottle: a unix socket for ssh, each connection to the gate's agent filter. */
export function agentRelayCommand(plan: SshPlan): string[] {
  const relay = `socat UNIX-LISTEN:${plan.agentSocket},fork,unlink-early,mode=600 TCP:${SSH_GATE_HOST}:${plan.agentPort}`;
  // Detached from docker exec's streams; the exec returns once the socket exists.
  return [
    "sh",
    "-c",
    `${relay} </dev/null >/dev/null 2>&1 & i=0; while [ ! -S ${plan.agentSocket} ]; do i=$((i+1)); [ $i -gt 100 ] && { echo "the ssh agent relay did not start" >&2; exit 1; }; sleep 0.05; done`,
  ];
}

// ---- the log ----

/** One line of the gate's SSH log (`bottle logs NAME --gate ssh`). */
export interface SshLogLine {
  time?: string;
  bottle?: string;
  event?: "connect" | "agent" | string;
  host?: string;
  port?: number;
  address?: string;
  decision?: "allow" | "deny" | "error" | string;
  request?: string;
  user?: string;
  key?: string;
  bytesUp?: number;
  bytesDown?: number;
  durationMs?: number;
  detail?: string;
}

function bytes(value: number): string {
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`;
  return `${(value / 1024 / 1024).toFixed(1)} MiB`;
}

export function formatSshLogLine(line: SshLogLine): string {
  const parts = [line.time ?? "", (line.decision ?? "?").padEnd(5), (line.event ?? "?").padEnd(7)];
  if (line.event === "agent") {
    parts.push(line.request ?? "?");
    if (line.user) parts.push(`user ${line.user}`);
    if (line.key) parts.push(line.key);
  } else {
    parts.push(`${line.host ?? "?"}:${line.port ?? "?"}`);
    if (line.address) parts.push(`(${line.address})`);
    if (line.bytesUp !== undefined || line.bytesDown !== undefined) parts.push(`↑${bytes(line.bytesUp ?? 0)} ↓${bytes(line.bytesDown ?? 0)}`);
    if (line.durationMs !== undefined) parts.push(`${(line.durationMs / 1000).toFixed(1)}s`);
  }
  if (line.detail) parts.push(`(${line.detail})`);
  return parts.join("  ");
}
