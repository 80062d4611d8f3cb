import { chmodSync, mkdirSync, rmSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import type { ContainerSpec, Docker, NetworkInspect } from "../docker.ts";
import { AGENT_HOME, AGENT_USER } from "../agent-user.ts";
import { BottleError } from "../errors.ts";
import { proxyEnvironment } from "../proxy-env.ts";
import { custodyGateFiles } from "../gates/custody/index.ts";
import { EGRESS_READY_LINE, egressGateConfig, readyLineAddresses, readyLineCa } from "../gates/egress/config.ts";
import { gitGateConfig, gitGateEntries, type GitGateRemote } from "../gates/git/config.ts";
import { sshGateConfig, sshGateEntries, sshPublicKeys, type SshGateHost } from "../gates/ssh/config.ts";
import { log } from "../log.ts";
import { isSubnetConflict, randomInternalAddresses, type InternalAddresses } from "./internal-subnet.ts";
import { bottleStateDir, stateDir } from "../paths.ts";
import { LABELS, type Plan } from "../plan.ts";
import { workspaceGitMounts } from "../git/workspace-git.ts";
import { createTar, type TarEntry } from "../tar.ts";

/**
 * The docker backend: the bottle sits only on a per-bottle `--internal`
 * network whose bridge has no host address (so the host is unreachable); the
 * gate sits on that network and on a per-bottle egress network.
 */

export const GATE_ALIAS = "gate";
/** Processes (threads included) a bottle may hold at once: a fork bomb stops there. */
export const BOTTLE_PIDS_LIMIT = 2048;
/** The gate's: its daemons, git's hooks and the splice helpers. */
export const GATE_PIDS_LIMIT = 512;
const GATE_READY_TIMEOUT_MS = 30_000;

/** Objects a launch created, in creation order, so teardown can undo exactly them. */
export interface Created {
  networks: string[];
  containers: string[];
  /** Containers connected to a network after their create (the gate to its egress network). */
  joined?: { network: string; container: string }[];
}

export function bottleLabels(plan: Pick<Plan, "name" | "agent" | "backend" | "workspace">, role: string, version: string): Record<string, string> {
  return {
    [LABELS.name]: plan.name,
    [LABELS.agent]: plan.agent.name,
    [LABELS.version]: version,
    [LABELS.backend]: plan.backend,
    [LABELS.role]: role,
    [LABELS.workspace]: plan.workspace.hostPath ?? plan.workspace.mode,
    [LABELS.state]: stateDir(),
  };
}

/** Is a docker error a name conflict (another launch took the name first)? */
export function isNameConflict(error: unknown): boolean {
  return /already in use|already exists|Conflict/i.test(error instanceof Error ? error.message : String(error));
}

/** The bottle's variables besides the proxy (both backends); values, never secrets. */
export function bottleVariables(plan: Plan): Record<string, string> {
  return {
    BOTTLE_NAME: plan.name,
    // The SSH gate's agent, through the relay provisioning starts.
    ...(plan.ssh?.hosts.length ? { SSH_AUTH_SOCK: plan.ssh.agentSocket } : {}),
  };
}

/** `internal`: the addresses chosen for the internal network (the gate's, the bottle's own). */
export function bottleContainerSpec(plan: Plan, internal: Pick<InternalAddresses, "gate" | "bottle">, labels: Record<string, string>): ContainerSpec {
  const proxy = `http://${GATE_ALIAS}:${plan.egress.proxyPort}`;
  const mounts: ContainerSpec["mounts"] = [];
  const { hostPath, containerPath, git } = plan.workspace;
  if (plan.workspace.mode === "mount" && hostPath) {
    mounts.push({ source: hostPath, target: containerPath });
    // The workspace's .git (what the host later runs git in) is the bottle's own, never the host's.
    if (git)
      for (const mount of workspaceGitMounts(plan.name, git, hostPath, containerPath))
        mounts.push(mount.volume ? { target: mount.target, volume: { labels } } : { source: mount.source, target: mount.target, readonly: mount.readonly });
  }
  return {
    name: plan.containers.bottle,
    image: plan.bottleImage,
    labels,
    network: plan.networks.internal,
    // Static: the bottle may start before the gate, and must not take the gate's address.
    ip: internal.bottle,
    // Docker's embedded DNS forwards what it cannot answer to the gate's DNS.
    dns: [internal.gate],
    // Every proxied request names the gate: /etc/hosts spares it a DNS round trip.
    extraHosts: { [GATE_ALIAS]: internal.gate },
    env: { ...proxyEnvironment(proxy), ...bottleVariables(plan) },
    mounts,
    user: `${plan.workspace.user.uid}:${plan.workspace.user.gid}`,
    capDrop: ["ALL"],
    securityOpt: ["no-new-privileges"],
    pidsLimit: BOTTLE_PIDS_LIMIT,
    // PID 1 (Docker's tini) reaps orphans; `sleep infinity` would leave their
    // zombies to use up the pids limit until not even `bottle exec` starts.
    init: true,
    runtime: plan.runtime === "runsc" ? "runsc" : undefined,
    hostname: plan.name,
    workdir: plan.workspace.containerPath,
    command: ["sleep", "infinity"],
  };
}

/**
 * `publish` (a VM's gate): the gate sits on the egress network only and is
 * reached through these loopback-only ports; otherwise (a docker bottle) it
 * starts on the internal network and joins the egress network later.
 */
export function gateContainerSpec(plan: Plan, labels: Record<string, string>, logDir: string, publish?: string[]): ContainerSpec {
  return {
    name: plan.containers.gate,
    image: plan.images.gate.tag,
    labels,
    // A VM's gate lives on the egress network only.
    network: publish ? plan.networks.egress : plan.networks.internal,
    networkAliases: [GATE_ALIAS],
    ...(publish ? { publish } : {}),
    mounts: [{ source: logDir, target: "/var/log/bottle" }],
    capDrop: ["ALL"],
    capAdd: ["NET_BIND_SERVICE"],
    securityOpt: ["no-new-privileges"],
    pidsLimit: GATE_PIDS_LIMIT,
    // PID 1 reaps what the daemons orphan (the start scripts leave git daemon,
    // ssh-agent and the SSH gate to it); the egress gate runs under it, and
    // the container still ends when it does.
    init: true,
    // The gate joins two networks; it must never route packets between them.
    sysctls: { "net.ipv4.ip_forward": "0", "net.ipv4.conf.all.forwarding": "0" },
    // Its config arrives on stdin (see startAttached).
    interactive: true,
  };
}

/** A network's gateway, or for IPv4 subnets without one (the default bridge) the subnet's first address. */
export function networkGateways(inspect: NetworkInspect): string[] {
  return (inspect.IPAM.Config ?? []).flatMap((config) => {
    if (config.Gateway) return [config.Gateway];
    const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/\d+$/.exec(config.Subnet ?? "");
    return v4 ? [`${v4[1]}.${v4[2]}.${v4[3]}.${Number(v4[4]) + 1}`] : [];
  });
}

/**
 * Every address the Docker host answers on that we can see: the gateways of
 * all docker networks and the host's own interfaces. The gate refuses them
 * even when `allow_private` would let a name resolve there.
 */
export async function dockerHostAddresses(docker: Docker): Promise<string[]> {
  const networks = await docker.networkLs();
  const inspects = await docker.networksInspect(networks.map((network) => network.id));
  return [...new Set([...inspects.flatMap(networkGateways), ...localAddresses()])];
}

/** The host's own interface addresses; loopback is refused by its own rule (with a clearer message). */
function localAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((info) => info && !info.internal)
    .map((info) => info?.address.split("%")[0])
    .filter((address): address is string => Boolean(address));
}

export interface LaunchOptions {
  version: string;
  /** Secret values the gate's DLP must refuse to let out. */
  secrets: string[];
  /** Credential custody: name → value, for the gate only (Claude Code's token, route tokens). */
  custody?: Record<string, string>;
  /** The git gate's remotes with their keys (copied into the gate only). */
  git?: GitGateRemote[];
  /** The SSH gate's keys, in the plan's host order (copied into the gate only). */
  ssh?: SshGateHost[];
  created: Created;
  /**
   * The docker backend's launch self-test and provisioning: run once the
   * bottle runs, while the gate starts (`gate`: its addresses once it is
   * ready, its daemons up).
   */
  checks?: (gate: Promise<GateAddresses>) => Promise<unknown>;
}

/** What the gate's ready line says: where its listeners bind (the `gate` alias), its egress address, the CA of its credential routes. */
export interface GateAddresses {
  gateIp: string;
  gateEgressIp: string;
  /** PEM; only with credential routes. */
  ca?: string;
}

export interface GateLaunch {
  /** A VM's gate: no internal network; these `address:port:port` publishes are the only way in. */
  publish?: string[];
  /**
   * The docker backend's bottle: runs as soon as the internal network exists,
   * given its chosen addresses, alongside the gate's create, config, start
   * and ready wait.
   */
  alongside?: (internal: InternalAddresses) => Promise<unknown>;
}

const SUBNET_ATTEMPTS = 8;

/**
 * The internal network on a /28 of its own (see internal-subnet.ts), drawn
 * again when Docker already uses it. Its bridge has no host-side address, so
 * the host is unreachable; a jumbo MTU is safe on a link that only ever
 * carries bottle ↔ gate traffic and halves the gate's per-packet work.
 */
export async function createInternalNetwork(
  docker: Docker,
  name: string,
  labels: Record<string, string>,
  random: () => number = Math.random,
): Promise<InternalAddresses> {
  for (let attempt = 1; ; attempt++) {
    const addresses = randomInternalAddresses(random);
    try {
      await docker.networkCreate(name, {
        internal: true,
        labels,
        subnet: addresses.subnet,
        driverOptions: { "com.docker.network.bridge.inhibit_ipv4": "true", "com.docker.network.driver.mtu": "65520" },
      });
      return addresses;
    } catch (error) {
      if (!isSubnetConflict(error) || attempt >= SUBNET_ATTEMPTS) throw error;
      log.debug(`subnet ${addresses.subnet} is taken; drawing another`);
    }
  }
}

/**
 * The gate both backends share: networks, the gate container started with
 * its config (egress, custody, git and SSH gates) on stdin, ready.
 * Everything created is recorded in `created` as soon as it exists, so a
 * failure half-way can be undone by `teardownDocker`.
 */
export async function launchGate(docker: Docker, plan: Plan, options: LaunchOptions, launch: GateLaunch = {}): Promise<GateAddresses> {
  const { created } = options;
  if (launch.publish && (launch.alongside || options.checks)) throw new Error("launchGate: a published gate has no internal network for `alongside` or `checks`");
  // Listed while the networks are created (the gate adds its egress network's gateway itself, see routes.ts).
  const known = dockerHostAddresses(docker);
  known.catch(() => undefined);
  const networkLabels = bottleLabels(plan, "network", options.version);
  const internal = launch.publish
    ? Promise.resolve(undefined)
    : createInternalNetwork(docker, plan.networks.internal, networkLabels).then((addresses) => {
        created.networks.push(plan.networks.internal);
        return addresses;
      });
  const egress = docker.networkCreate(plan.networks.egress, { labels: networkLabels }).then(() => {
    created.networks.push(plan.networks.egress);
  });
  // The bottle needs only the internal network (so does the gate's create; its config and egress side wait for the egress one).
  const bottleUp = internal.then((addresses) => (addresses && launch.alongside ? launch.alongside(addresses) : undefined));
  // Resolves once the gate is ready (its listeners are up).
  const ready = startGate(docker, plan, options, { publish: launch.publish, internal, egress, known });
  const { checks } = options;
  const checked = checks ? bottleUp.then(() => checks(ready)) : Promise.resolve();
  const [addresses] = await settleAll([ready, bottleUp, checked, internal, egress]);
  return addresses;
}

/** Create, configure and start the gate container; resolves once its daemons are up. */
async function startGate(
  docker: Docker,
  plan: Plan,
  options: LaunchOptions,
  where: { publish: string[] | undefined; internal: Promise<InternalAddresses | undefined>; egress: Promise<void>; known: Promise<string[]> },
): Promise<GateAddresses> {
  const { created } = options;
  const logDir = join(bottleStateDir(plan.name), "logs");
  mkdirSync(logDir, { recursive: true });
  // The gate's root has no CAP_DAC_OVERRIDE: it can write the logs only if the
  // dir is writable for it. The state root itself is 0700, so no one else can.
  chmodSync(logDir, 0o777);
  const spec = gateContainerSpec(plan, bottleLabels(plan, "gate", options.version), logDir, where.publish);
  // Created on its first network (a VM's gate: the egress one) as soon as that exists.
  const [internal] = await settleAll([where.internal, where.publish ? where.egress : Promise.resolve()]);
  // The egress network's gateway need not be listed: the gate refuses its own
  // route gateways (routes.ts), so the config is written while that network is made.
  const [, known, egress] = await settleAll([
    docker.create(internal ? { ...spec, ip: internal.gate } : spec).then(() => created.containers.push(plan.containers.gate)),
    where.known,
    internal ? Promise.resolve(undefined) : docker.networkInspect(plan.networks.egress),
  ]);
  const hostAddresses = [...new Set([...known, ...localAddresses()])];
  // Every gate service (proxy, DNS, Claude Code's route) listens only on the
  // gate's address in the network the bottle reaches it on: the internal one,
  // or a VM's egress one (published on loopback only). On a docker bottle's
  // gate nothing answers from the egress side: the host and other containers there.
  let listen: string[];
  if (internal) listen = [internal.subnet];
  else if (egress) listen = (egress.IPAM.Config ?? []).map((config) => config.Subnet).filter((subnet): subnet is string => Boolean(subnet));
  else throw new BottleError(`the network ${plan.networks.egress} disappeared during the launch`, { fix: "run the launch again" });
  const config = egressGateConfig(plan, hostAddresses, options.secrets.length > 0, listen);
  const files: TarEntry[] = [
    { path: "etc/bottle", type: "dir", mode: 0o700, uid: 0, gid: 0 },
    { path: "etc/bottle/egress.json", content: `${JSON.stringify(config, null, 2)}\n`, mode: 0o600, uid: 0, gid: 0 },
  ];
  if (options.secrets.length)
    files.push({ path: "etc/bottle/secrets.json", content: JSON.stringify(options.secrets), mode: 0o600, uid: 0, gid: 0 });
  files.push(...custodyGateFiles(options.custody ?? {}));
  // The git gate: config, hooks, upstream keys and pinned host keys (root-only; its start script runs before the egress gate).
  files.push(...gitGateEntries(gitGateConfig(plan.name, plan.egress.limits.maxLogBytes, plan.git?.port), options.git ?? []));
  // The SSH gate: its keys (root-only), pinned host keys and daemon; its start script loads the agent.
  if (plan.ssh?.hosts.length) files.push(...sshGateEntries(sshGateConfig(plan.name, plan.ssh, sshPublicKeys(options.ssh ?? []), plan.egress.limits.maxLogBytes), options.ssh ?? []));
  if (internal)
    await where.egress
      .then(() => docker.networkConnect(plan.networks.egress, plan.containers.gate))
      .then(() => (created.joined ??= []).push({ network: plan.networks.egress, container: plan.containers.gate }));
  // The config goes in on the gate's stdin as it starts (no `docker cp`), and
  // its ready line names its addresses (no `docker inspect`) and its CA (no `docker exec`).
  const ready = await docker.startAttached(plan.containers.gate, { stdin: gateConfigStream(files), pattern: EGRESS_READY_LINE, timeoutMs: GATE_READY_TIMEOUT_MS });
  return gateAddresses(ready, internal?.gate, plan.containers.gate);
}

/**
 * What the gate's entrypoint reads on stdin: the archive's length in bytes on
 * a line, then the archive. It reads exactly that much, so it never waits for
 * stdin to close (the attached CLI closes it, but need not).
 */
export function gateConfigStream(files: TarEntry[]): Uint8Array {
  const archive = createTar(files);
  const head = new TextEncoder().encode(`${archive.length}\n`);
  const stream = new Uint8Array(head.length + archive.length);
  stream.set(head);
  stream.set(archive, head.length);
  return stream;
}

/**
 * What the gate's ready line says. Its addresses: on the internal network it
 * was given one; the other is the egress network's (Docker's choice). A VM's
 * gate is on the egress network only. And, with credential routes, their CA.
 */
export function gateAddresses(readyLine: string, internalIp: string | undefined, gate: string): GateAddresses {
  const addresses = readyLineAddresses(readyLine);
  const gateEgressIp = addresses.find((address) => address !== internalIp);
  const gateIp = internalIp ?? gateEgressIp;
  if (!gateIp || !gateEgressIp || (internalIp && !addresses.includes(internalIp)))
    throw new BottleError(`the gate ${gate} is missing an address on its networks (it reported: ${addresses.join(" ") || "none"})`, {
      fix: "run `bottle doctor`, then the launch again",
    });
  const ca = readyLineCa(readyLine);
  return { gateIp, gateEgressIp, ...(ca ? { ca } : {}) };
}

/**
 * The docker backend's launch: the internal network's addresses are chosen
 * up front, so the bottle is created and started while the gate is.
 */
export async function launchDocker(docker: Docker, plan: Plan, options: LaunchOptions): Promise<GateAddresses> {
  return launchGate(docker, plan, options, {
    alongside: (internal) =>
      docker
        .runDetached(bottleContainerSpec(plan, internal, bottleLabels(plan, "bottle", options.version)))
        .then(() => options.created.containers.push(plan.containers.bottle)),
  });
}

/**
 * Like Promise.all, but waits for every step to finish before throwing, so
 * nothing is still being created while teardown runs.
 */
export async function settleAll<T extends readonly unknown[]>(steps: [...{ [K in keyof T]: Promise<T[K]> }]): Promise<T> {
  const results = await Promise.allSettled(steps);
  const failed = results.find((result): result is PromiseRejectedResult => result.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((result) => (result as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

/** The container's /etc/passwd plus a line for the agent's uid when it is not the image's 1000. */
export async function passwdEntries(docker: Docker, plan: Plan): Promise<TarEntry[]> {
  const { uid, gid } = plan.workspace.user;
  if (uid === 1000) return [];
  // Both files in one exec (each exec is ~80 ms on the launch path), a NUL between them.
  const both = await docker.execIn(plan.containers.bottle, ["sh", "-c", "cat /etc/passwd; printf '\\000'; cat /etc/group"]);
  const [passwd = "", group = ""] = both.stdout.split("\0");
  const withoutAgent = (text: string) =>
    text
      .split("\n")
      .filter((line) => line && !line.startsWith(`${AGENT_USER}:`))
      .join("\n");
  return [
    { path: "etc/passwd", content: `${withoutAgent(passwd)}\n${AGENT_USER}:x:${uid}:${gid}::${AGENT_HOME}:/bin/bash\n`, mode: 0o644, uid: 0, gid: 0 },
    { path: "etc/group", content: `${withoutAgent(group)}\n${AGENT_USER}:x:${gid}:\n`, mode: 0o644, uid: 0, gid: 0 },
  ];
}

/**
 * Remove containers and networks; never throws (teardown must finish). A
 * network is removed once its containers are gone, or, when they joined it
 * later (the gate's egress network), once they are disconnected from it,
 * alongside their removal: the daemon then frees both networks' endpoints in
 * parallel instead of one after the other.
 */
export async function teardownDocker(docker: Docker, created: Created): Promise<void> {
  try {
    // One `rm` per container, concurrently: the daemon removes them in parallel.
    const containersGone = Promise.all(created.containers.map((container) => docker.containerRm([container])));
    const afterContainers = (network: string) => containersGone.then(() => docker.networkRm([network]));
    // Likewise one `network rm` per network (the CLI removes a list one by one).
    const networksGone = created.networks.map((network) => {
      const joined = (created.joined ?? []).filter((join) => join.network === network);
      if (joined.length === 0 || joined.some((join) => !created.containers.includes(join.container))) return afterContainers(network);
      return Promise.all(joined.map((join) => docker.networkDisconnect(network, join.container))).then(
        () => docker.networkRm([network]),
        // Gone already (removed first): remove the network after the containers.
        () => afterContainers(network),
      );
    });
    await Promise.all([containersGone, ...networksGone]);
  } catch (error) {
    log.warn(`teardown: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * Everything docker holds for bottles, by label. `own` (ls, down, cleanup)
 * keeps to bottles launched with this state dir, so another user's or another
 * sandbox's bottles on a shared daemon are never listed or removed; `all`
 * (name claiming) sees every bottle, since container names are global.
 */
export async function listBottleObjects(docker: Docker, options: { name?: string; scope: "own" | "all" }) {
  const filters = bottleFilters(options);
  const [containers, networks] = await Promise.all([docker.ps(filters), docker.networkLs(filters)]);
  return { containers, networks };
}

/** Only the containers (ls, name claiming): one docker call fewer per launch. */
export async function listBottleContainers(docker: Docker, options: { name?: string; scope: "own" | "all" }) {
  return docker.ps(bottleFilters(options));
}

function bottleFilters(options: { name?: string; scope: "own" | "all" }): string[] {
  const filters = [options.name ? `label=${LABELS.name}=${options.name}` : `label=${LABELS.name}`];
  if (options.scope === "own") filters.push(`label=${LABELS.state}=${stateDir()}`);
  return filters;
}

/** Remove every docker object and the state dir of the named bottle. */
export async function removeBottle(docker: Docker, name: string): Promise<{ containers: number; networks: number }> {
  const { containers, networks } = await listBottleObjects(docker, { name, scope: "own" });
  const bottles = containers.filter((c) => c.labels[LABELS.role] === "bottle").map((c) => c.name);
  const others = containers.filter((c) => c.labels[LABELS.role] !== "bottle").map((c) => c.name);
  await docker.containerRm([...bottles, ...others]);
  // One `network rm` each, concurrently (the CLI removes a list one by one).
  await Promise.all(networks.map((network) => docker.networkRm([network.name])));
  rmSync(bottleStateDir(name), { recursive: true, force: true });
  return { containers: containers.length, networks: networks.length };
}
