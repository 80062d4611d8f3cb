import { assets } from "../../assets.ts";
import type { TarEntry } from "../../tar.ts";

/**
 * The git gate: per bottle, one bare mirror per configured remote inside the
 * gate container, served to the bottle by `git daemon` on the bottle's
 * internal network. A fetch first refreshes the mirror from the upstream
 * (fail closed); a push is scanned with gitleaks in `pre-receive` and, when
 * clean, forwarded to the upstream over SSH with a key and a pinned host key
 * that exist only in the gate. The bottle's gitconfig rewrites the upstream
 * URLs to the gate (`url.<gate>.insteadOf`).
 *
 * This module renders everything: the bottle's gitconfig lines, the gate's
 * files (config, hooks, known_hosts, keys) as tar entries, the plan section.
 */

/** git daemon's own port; the gate listens on its bottle-network address only. */
export const GIT_DAEMON_PORT = 9418;
/** The gate's network alias on the bottle's internal network. */
export const GIT_GATE_HOST = "gate";
export const GIT_AUDIT_FILE = "git.jsonl";
export const GIT_GATE_DIR = "/etc/bottle/git";
export const GIT_MIRRORS_DIR = "/var/lib/bottle/git";

/** A remote as the plan shows it: names and paths, never key material. */
export interface GitPlanRemote {
  name: string;
  upstream: string;
  /** The URL the bottle uses instead of the upstream, e.g. git://gate/origin.git. */
  url: string;
  /** Host path of the SSH key the gate uses (read at launch, copied into the gate only). */
  identityFile: string;
}

/** A remote with what only the gate may hold, read on the host at launch. */
export interface GitGateRemote {
  name: string;
  upstream: string;
  identity: string | Uint8Array;
  knownHostKey: string;
}

export interface UpstreamParts {
  form: "url" | "scp";
  user?: string;
  host: string;
  port?: number;
  path: string;
}

/** `ssh://[user@]host[:port]/path` or scp-style `[user@]host:path`. */
export function parseUpstream(upstream: string): UpstreamParts {
  if (/^ssh:\/\//i.test(upstream)) {
    const url = new URL(upstream);
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    return {
      form: "url",
      ...(url.username ? { user: decodeURIComponent(url.username) } : {}),
      host,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: decodeURIComponent(url.pathname),
    };
  }
  const scp = /^(?:([^@/:]+)@)?(\[[^\]]+\]|[^:/]+):(?!\/\/)(.+)$/.exec(upstream);
  if (!scp) throw new Error(`not an SSH upstream: ${upstream}`);
  return { form: "scp", ...(scp[1] ? { user: scp[1] } : {}), host: scp[2]!.replace(/^\[(.*)\]$/, "$1"), path: scp[3]! };
}

export function gateUrl(name: string, port = GIT_DAEMON_PORT): string {
  return `git://${GIT_GATE_HOST}${port === GIT_DAEMON_PORT ? "" : `:${port}`}/${name}.git`;
}

/**
 * The spellings of an upstream the bottle's gitconfig sends to the gate:
 * as configured, with and without `.git`, and in the other SSH syntax
 * (scp-style ↔ ssh://) when that can say the same thing (no port).
 */
export function upstreamVariants(upstream: string): string[] {
  const variants = new Set<string>();
  const addWithSuffixes = (value: string) => {
    variants.add(value);
    if (value.endsWith(".git")) variants.add(value.slice(0, -4));
    else variants.add(`${value}.git`);
  };
  addWithSuffixes(upstream);
  const parts = parseUpstream(upstream);
  const user = parts.user ? `${parts.user}@` : "";
  const host = parts.host.includes(":") ? `[${parts.host}]` : parts.host;
  if (parts.form === "url" && parts.port === undefined) addWithSuffixes(`${user}${host}:${parts.path.replace(/^\/+/, "")}`);
  if (parts.form === "scp") addWithSuffixes(`ssh://${user}${host}/${parts.path.replace(/^\/+/, "")}`);
  return [...variants];
}

/** A git config value in double quotes (upstreams may hold `;` or `#`). */
function configValue(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The bottle's gitconfig section sending each remote's upstream to the gate. */
export function insteadOfConfig(remotes: Array<Pick<GitPlanRemote, "url" | "upstream">>): string {
  return remotes
    .map((remote) => [`[url ${configValue(remote.url)}]`, ...upstreamVariants(remote.upstream).map((variant) => `\tinsteadOf = ${configValue(variant)}`)].join("\n") + "\n")
    .join("");
}

const KEY_TYPE = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)$/;

/** `<type> <base64>` out of a host key given with or without a leading host field (or a trailing comment). */
export function hostKeyOnly(knownHostKey: string): string {
  const parts = knownHostKey.trim().split(/\s+/);
  const at = parts.findIndex((part) => KEY_TYPE.test(part));
  if (at === -1 || !parts[at + 1] || !/^[A-Za-z0-9+/]+={0,3}$/.test(parts[at + 1]!))
    throw new Error('expected a host key like "ssh-ed25519 AAAA…"');
  return `${parts[at]} ${parts[at + 1]}`;
}

/** The host field ssh looks up for an upstream: `host`, or `[host]:port` off port 22. */
export function knownHostsPattern(upstream: string): string {
  const { host, port } = parseUpstream(upstream);
  return port !== undefined && port !== 22 ? `[${host}]:${port}` : host;
}

/** The gate's known_hosts for one upstream: its pinned key only. */
export function knownHostsContent(upstream: string, knownHostKey: string): string {
  return `${knownHostsPattern(upstream)} ${hostKeyOnly(knownHostKey)}\n`;
}

/** Single-quote for the rendered shell config files. */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Replace every `@@NAME@@`; an unknown placeholder is a bug, not a silent blank. */
export function renderTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/@@([A-Z_]+)@@/g, (match, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`template placeholder ${match} has no value`);
    return value;
  });
}

export interface GitGateConfig {
  bottle: string;
  port: number;
  log: string;
  /** The log and its one rotated generation together (egress.limits.max_log_bytes); 0 = no cap. */
  maxLogBytes: number;
  mirrors: string;
}

export function gitGateConfig(bottle: string, maxLogBytes: number, port = GIT_DAEMON_PORT): GitGateConfig {
  return { bottle, port, log: `/var/log/bottle/${GIT_AUDIT_FILE}`, maxLogBytes, mirrors: GIT_MIRRORS_DIR };
}

/** /etc/bottle/git/gate.env, sourced by the gate's scripts. */
export function gateEnvContent(config: GitGateConfig): string {
  return [
    `BOTTLE=${shQuote(config.bottle)}`,
    `GIT_PORT=${config.port}`,
    `GIT_LOG=${shQuote(config.log)}`,
    `GIT_LOG_MAX_BYTES=${config.maxLogBytes}`,
    `GIT_MIRRORS=${shQuote(config.mirrors)}`,
    "",
  ].join("\n");
}

/** /etc/bottle/git/remotes/NAME/remote.env. */
export function remoteEnvContent(remote: Pick<GitGateRemote, "name" | "upstream">): string {
  return `REMOTE=${shQuote(remote.name)}\nUPSTREAM=${shQuote(remote.upstream)}\n`;
}

const REMOTE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Everything the git gate needs, as tar entries the gate reads on its stdin
 * as it starts: root-owned, the dir 0700, keys 0600. Empty when
 * the bottle has no git remotes (then no git daemon runs).
 */
export function gitGateEntries(config: GitGateConfig, remotes: GitGateRemote[]): TarEntry[] {
  if (remotes.length === 0) return [];
  const dir = (path: string): TarEntry => ({ path, type: "dir", mode: 0o700, uid: 0, gid: 0 });
  const file = (path: string, content: string | Uint8Array, mode = 0o600): TarEntry => ({ path, content, mode, uid: 0, gid: 0 });
  const root = GIT_GATE_DIR.replace(/^\//, "");
  const entries: TarEntry[] = [
    dir(root),
    dir(`${root}/bin`),
    dir(`${root}/remotes`),
    file(`${root}/gate.env`, gateEnvContent(config)),
    file(`${root}/lib.sh`, assets.gitLib),
    file(`${root}/start`, assets.gitStart, 0o700),
    file(`${root}/access-hook`, assets.gitAccessHook, 0o700),
    file(`${root}/bin/git`, assets.gitForGitleaks, 0o700),
    file(`${root}/gitleaks.toml`, assets.gitleaksRules),
  ];
  for (const remote of remotes) {
    if (!REMOTE_NAME.test(remote.name)) throw new Error(`invalid git remote name "${remote.name}"`);
    const base = `${root}/remotes/${remote.name}`;
    entries.push(
      dir(base),
      dir(`${base}/hooks`),
      file(`${base}/remote.env`, remoteEnvContent(remote)),
      file(`${base}/identity`, remote.identity),
      file(`${base}/known_hosts`, knownHostsContent(remote.upstream, remote.knownHostKey)),
      file(`${base}/hooks/pre-receive`, renderTemplate(assets.gitPreReceive, { REMOTE: remote.name }), 0o700),
    );
  }
  return entries;
}

/** The plan's git section: where each remote's traffic goes, without any key. */
export function gitPlan(remotes: Record<string, { upstream: string; identityFile: string }>, port = GIT_DAEMON_PORT): { port: number; remotes: GitPlanRemote[] } {
  return {
    port,
    remotes: Object.entries(remotes).map(([name, remote]) => ({ name, upstream: remote.upstream, url: gateUrl(name, port), identityFile: remote.identityFile })),
  };
}

/** One line of the gate's git log (`bottle logs NAME --gate git`). */
export interface GitLogLine {
  time?: string;
  bottle?: string;
  remote?: string;
  event?: "fetch" | "scan" | "push" | "forward" | string;
  service?: string;
  decision?: "allow" | "deny" | "error" | string;
  ref?: string;
  refs?: string[];
  old?: string;
  new?: string;
  commits?: number;
  findings?: Array<{ file?: string; line?: number; rule?: string; commit?: string }>;
  detail?: string;
}

export function formatGitLogLine(line: GitLogLine): string {
  const short = (sha?: string) => (sha ? sha.slice(0, 12) : "");
  const parts = [line.time ?? "", (line.decision ?? "?").padEnd(5), (line.event ?? "?").padEnd(7), line.remote ?? "?"];
  if (line.service) parts.push(line.service);
  if (line.ref) parts.push(line.ref);
  if (line.refs?.length) parts.push(line.refs.join(","));
  if (line.new && !/^0+$/.test(line.new)) parts.push(`${line.old && !/^0+$/.test(line.old) ? `${short(line.old)}..` : ""}${short(line.new)}`);
  if (line.commits !== undefined) parts.push(`${line.commits} commit${line.commits === 1 ? "" : "s"}`);
  for (const finding of line.findings ?? []) parts.push(`[${finding.file}:${finding.line} ${finding.rule} ${short(finding.commit)}]`);
  if (line.detail) parts.push(`(${line.detail})`);
  return parts.join("  ");
}
