import { chmodSync, mkdirSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import type { ContainerSpec, Docker, EngineInfo, NetworkInspect } from "../docker.ts";
import { BottleError } from "../errors.ts";
import { custodyGateFiles } from "../gates/custody/index.ts";
import { EGRESS_READY_LINE, egressGateConfig, readyLineAddresses, readyLineCa } from "../gates/egress/config.ts";
import { gitGateConfig, gitGateEntries } from "../gates/git/config.ts";
import { sshGateConfig, sshGateEntries, sshPublicKeys } from "../gates/ssh/config.ts";
import { log } from "../log.ts";
import { bottleStateDir } from "../paths.ts";
import type { Plan } from "../plan.ts";
import type { ResourcesPlan } from "../resources-schema.ts";
import { dockerUnlimitable } from "./engine-limits.ts";
import { settleAll } from "../settle.ts";
import { createTar, type TarEntry } from "../tar.ts";
import { isSubnetConflict, randomInternalAddresses, type InternalAddresses } from "./internal-subnet.ts";
import { bottleLabels, removeNetwork } from "./objects.ts";
import { CLAUDE_HOME } from "../homes.ts";
import type { Created, GateAddresses, LaunchRequest } from "./types.ts";

/**
 * The gate, which every backend runs in Docker: a per-bottle egress network
 * (and, for a docker bottle, a per-bottle `--internal` network whose bridge
 * has no host address, so the host is unreachable from it), the gate
 * container on them, its config (egress, custody, git and SSH gates) on its
 * stdin as it starts, ready when it says so. And the removal of exactly what
 * a launch created.
 */

/** The gate's name on the bottle's network (and, on a VM, in its /etc/hosts). */
export const GATE_ALIAS = "gate";
/** The gate's process limit: its daemons, git's hooks and the splice helpers. */
export const GATE_PIDS_LIMIT = 512;
/**
 * The gate's memory (no swap) and CPUs, its own and fixed, whatever the
 * bottle's: its daemons use a few hundred MiB at most, gitleaks scanning a
 * large push the most; a bottle that floods its gate slows only that gate.
 * One CPU: every engine has one, and the gate's relay is mostly the kernel's.
 */
export const GATE_MEMORY_BYTES = 1024 ** 3;
export const GATE_CPUS = 1;

/** The gate's limits, less those the Docker engine cannot set (`--cpus` there would fail the launch). */
export function gateResources(info: EngineInfo): ResourcesPlan["gate"] {
  const cannot = dockerUnlimitable(info);
  return {
    ...(cannot.cpus ? {} : { cpus: GATE_CPUS }),
    ...(cannot.memory ? {} : { memory: GATE_MEMORY_BYTES }),
    ...(cannot.pids ? {} : { pids: GATE_PIDS_LIMIT }),
  };
}
const GATE_READY_TIMEOUT_MS = 30_000;

/** What launching a gate needs of a launch request (not how the bottle gets ready). */
export type GateRequest = Omit<LaunchRequest, "ready">;

export interface GateLaunch {
  /** A VM's gate: no internal network; these `address:port:port` publishes are the only way in. */
  publish?: string[];
  /**
   * The docker backend's bottle: runs as soon as the internal network exists,
   * given its chosen addresses and the gate's readiness, alongside the gate's
   * create, config, start and ready wait.
   */
  alongside?: (internal: InternalAddresses, gate: Promise<GateAddresses>) => Promise<unknown>;
}

/** The bottle's variables besides the proxy (both backends); values, never secrets. */
export function bottleVariables(plan: Plan): Record<string, string> {
  return {
    BOTTLE_NAME: plan.name,
    // Shell history in the kept home, so it survives `down` with the conversations.
    ...(plan.home ? { HISTFILE: `${CLAUDE_HOME}/bash_history` } : {}),
    // The SSH gate's agent, through the relay provisioning starts.
    ...(plan.ssh?.hosts.length ? { SSH_AUTH_SOCK: plan.ssh.agentSocket } : {}),
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
    // A remote engine cannot mount this machine's state dir: the logs go to a volume there, copied back (syncGateLogs).
    mounts: [plan.engine?.remote ? { target: GATE_LOG_DIR, volume: { labels } } : { source: logDir, target: GATE_LOG_DIR }],
    capDrop: ["ALL"],
    capAdd: ["NET_BIND_SERVICE"],
    securityOpt: ["no-new-privileges"],
    // Its own limits, whatever the bottle's (planned by gateResources).
    pidsLimit: plan.resources.gate.pids,
    memory: plan.resources.gate.memory,
    cpus: plan.resources.gate.cpus,
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

/** Where the gate writes its logs. */
export const GATE_LOG_DIR = "/var/log/bottle";

/**
 * A remote engine's gate logs to a volume there: copied into the bottle's
 * state dir, where `bottle logs`, `allow` and the teardown summary read them.
 * A local gate writes there itself.
 */
export async function syncGateLogs(docker: Docker, plan: Plan): Promise<void> {
  if (!plan.engine?.remote) return;
  const dir = join(bottleStateDir(plan.name), "logs");
  mkdirSync(dir, { recursive: true });
  await docker.cp(`${plan.containers.gate}:${GATE_LOG_DIR}/.`, dir).catch(() => undefined);
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
export async function dockerHostAddresses(docker: Docker, plan: Plan): Promise<string[]> {
  const [networks, own] = await Promise.all([docker.networkLs(), plan.engine?.remote ? engineHostInterfaces(docker, plan) : Promise.resolve(localAddresses())]);
  const inspects = await docker.networksInspect(networks.map((network) => network.id));
  return [...new Set([...inspects.flatMap(networkGateways), ...own])];
}

/**
 * A remote engine's host's own addresses (what the gate must refuse there,
 * not this machine's): its interfaces as a container in the host's network
 * namespace sees them (the gate image: Node.js; no network use, no mounts).
 */
async function engineHostInterfaces(docker: Docker, plan: Plan): Promise<string[]> {
  const script = 'const o=require("os").networkInterfaces();console.log(JSON.stringify(Object.values(o).flat().filter(i=>!i.internal).map(i=>i.address.split("%")[0])))';
  const out = await docker.run(["run", "--rm", "--network", "host", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--entrypoint", "node", plan.images.gate.tag, "-e", script], { timeoutMs: 30_000 });
  return JSON.parse(out.stdout.trim()) as string[];
}

/** The host's own interface addresses; loopback is refused by its own rule (with a clearer message). */
function localAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((info) => info && !info.internal)
    .map((info) => info?.address.split("%")[0])
    .filter((address): address is string => Boolean(address));
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
 * failure half-way can be undone by `removeCreated`.
 */
export async function launchGate(docker: Docker, plan: Plan, options: GateRequest, launch: GateLaunch = {}): Promise<GateAddresses> {
  const { created } = options;
  if (launch.publish && launch.alongside) throw new Error("launchGate: a published gate has no internal network for `alongside`");
  // Listed while the networks are created (the gate adds its egress network's gateway itself, see routes.ts).
  const known = dockerHostAddresses(docker, plan);
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
  // Resolves once the gate is ready (its listeners are up).
  const ready = startGate(docker, plan, options, { publish: launch.publish, internal, egress, known });
  // If the gate fails first, whoever waits on `ready` alongside sees it fail too (not an unhandled rejection).
  ready.catch(() => undefined);
  // The bottle needs only the internal network (so does the gate's create; its config and egress side wait for the egress one).
  const alongside = internal.then((addresses) => (addresses && launch.alongside ? launch.alongside(addresses, ready) : undefined));
  const [addresses] = await settleAll([ready, alongside, internal, egress]);
  return addresses;
}

/** Create, configure and start the gate container; resolves once its daemons are up. */
async function startGate(
  docker: Docker,
  plan: Plan,
  options: GateRequest,
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
  const hostAddresses = [...new Set([...known, ...(plan.engine?.remote ? [] : localAddresses())])];
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
 * Remove containers and networks; never throws (teardown must finish). A
 * network is removed once its containers are gone, or, when they joined it
 * later (the gate's egress network), once they are disconnected from it,
 * alongside their removal: the daemon then frees both networks' endpoints in
 * parallel instead of one after the other.
 */
export async function removeCreated(docker: Docker, created: Created): Promise<void> {
  try {
    // One `rm` per container, concurrently: the daemon removes them in parallel.
    const containersGone = Promise.all(created.containers.map((container) => docker.containerRm([container])));
    const afterContainers = (network: string) => containersGone.then(() => removeNetwork(docker, network));
    // Likewise one `network rm` per network (the CLI removes a list one by one).
    const networksGone = created.networks.map((network) => {
      const joined = (created.joined ?? []).filter((join) => join.network === network);
      if (joined.length === 0 || joined.some((join) => !created.containers.includes(join.container))) return afterContainers(network);
      return Promise.all(joined.map((join) => docker.networkDisconnect(network, join.container))).then(
        () => removeNetwork(docker, network),
        // Gone already (removed first): remove the network after the containers.
        () => afterContainers(network),
      );
    });
    await Promise.all([containersGone, ...networksGone]);
  } catch (error) {
    log.warn(`teardown: ${error instanceof Error ? error.message : String(error)}`);
  }
}

