import type { ContainerSpec, Docker } from "../../docker.ts";
import { BottleError, errorMessage, isBottleError } from "../../errors.ts";
import { RELAY_READY_LINE } from "../../gates/ports/daemon/ready-line.ts";
import { log } from "../../log.ts";
import { LABELS, type Plan, type PortForward } from "../../plan.ts";
import { hostAddress } from "../../ports/host.ts";
import { openPortMessage } from "../../ports/format.ts";
import { takenFix, takenHostPorts } from "../../ports/plan.ts";
import { settleAll } from "../../settle.ts";
import { type InternalAddresses, MAX_PORT_RELAYS, relayAddress } from "../internal-subnet.ts";
import { removeCreated } from "../gate.ts";
import { bottleLabels, isNameConflict, listBottleContainers, removeNetwork } from "../objects.ts";
import type { Created, LaunchRequest, OpenPort, PortForwarding } from "../types.ts";

/**
 * A forwarded port on the docker backend: one small relay container per
 * port, `<bottle>-port-<N>`, on two networks — the bottle's internal one,
 * where it listens on nothing, and a per-bottle ports network, where it
 * listens on the one port Docker publishes on the host (127.0.0.1 unless
 * `--bind`) — forwarding each connection, byte for byte, to the bottle's
 * address and that port, and nowhere else (lib/gates/ports/daemon/).
 *
 * Why a relay container, and not the gate or a process on the host:
 * - the host cannot reach the bottle at all: its internal network's bridge
 *   has no address on the host, and must keep none (docs/security.md);
 * - Docker publishes ports only when a container is created, so ports
 *   added to a running bottle (`bottle port`) need a container of their
 *   own; one per port also lets each be removed alone;
 * - the gate's services listen only on the internal network, so neither the
 *   host nor the egress network can use them; a published listener on the
 *   gate would end that, and give the gate's process a second job;
 * - a container outlives the launcher, so a detached bottle keeps its ports,
 *   and it is labelled like every bottle object, so `down` and `cleanup`
 *   remove it.
 *
 * The relay runs as nobody, with every capability dropped, no new
 * privileges, a read-only root, a pids and a memory limit, and IP forwarding
 * off, so the bottle cannot route through it even from a namespace that
 * regained CAP_NET_ADMIN. Its ports network lets no container talk to
 * another and masquerades nothing, so the relay itself has no way out to
 * the internet either; the bottle never joins it.
 */

/** Node's threads (libuv, V8) and nothing else. */
export const RELAY_PIDS_LIMIT = 64;
export const RELAY_MEMORY = 96 * 1024 ** 2;
/** The relay's script in the gate image (assets/gate.Dockerfile). */
export const RELAY_SCRIPT = "/opt/bottle/port-relay.mjs";
/** nobody:nogroup: the relay needs no user of its own. */
const RELAY_USER = "65534:65534";
const RELAY_READY_TIMEOUT_MS = 20_000;

export function portsNetwork(bottle: string): string {
  return `${bottle}-ports`;
}

export function relayName(bottle: string, port: number): string {
  return `${bottle}-port-${port}`;
}

/** docker's `--publish` value: `127.0.0.1:3000:3000`, or with no host port (`127.0.0.1::3000`) any free one. */
export function publishArg(forward: Pick<PortForward, "hostIp" | "hostPort" | "port">): string {
  const ip = forward.hostIp.includes(":") ? `[${forward.hostIp}]` : forward.hostIp;
  return `${ip}:${forward.hostPort ?? ""}:${forward.port}`;
}

/**
 * The relay of one forward to `bottleIp`: created on the ports network (the
 * published one); the launch then connects it to the internal network. It
 * listens on the bottle's port number (a namespaced sysctl lets nobody bind
 * a low one there), so `docker ps` reads `127.0.0.1:3000->3000/tcp`.
 */
export function relayContainerSpec(plan: Plan, forward: PortForward, bottleIp: string, version: string): ContainerSpec {
  return {
    name: relayName(plan.name, forward.port),
    image: plan.images.gate.tag,
    labels: { ...bottleLabels(plan, "port", version), [LABELS.port]: String(forward.port) },
    network: portsNetwork(plan.name),
    publish: [publishArg(forward)],
    user: RELAY_USER,
    capDrop: ["ALL"],
    securityOpt: ["no-new-privileges"],
    readOnly: true,
    pidsLimit: RELAY_PIDS_LIMIT,
    memory: RELAY_MEMORY,
    init: true,
    sysctls: { "net.ipv4.ip_forward": "0", "net.ipv4.conf.all.forwarding": "0", "net.ipv4.ip_unprivileged_port_start": "0" },
    entrypoint: "node",
    command: [RELAY_SCRIPT, String(forward.port), `${bottleIp}:${forward.port}`],
    // Started attached, to read its ready line (it reads no input).
    interactive: true,
  };
}

/**
 * The bottle's ports network, made when its first port is: a bridge that
 * Docker can publish from, where containers cannot talk to each other and
 * nothing is masqueraded out. False when it existed already.
 */
export async function createPortsNetwork(docker: Docker, plan: Plan, version: string): Promise<boolean> {
  try {
    await docker.networkCreate(portsNetwork(plan.name), {
      labels: bottleLabels(plan, "network", version),
      driverOptions: { "com.docker.network.bridge.enable_icc": "false", "com.docker.network.bridge.enable_ip_masquerade": "false" },
    });
    return true;
  } catch (error) {
    if (isNameConflict(error)) return false;
    throw error;
  }
}

/** Did Docker refuse to publish because the host port is in use? */
function isPortTaken(error: unknown): boolean {
  const text = `${errorMessage(error)}\n${isBottleError(error) ? (error.details ?? "") : ""}`;
  return /address already in use|port is already allocated/i.test(text);
}

/** Create the relay, join it to the internal network (at `ip`, or where Docker puts it), start it and wait for its ready line. */
export async function startRelay(docker: Docker, spec: ContainerSpec, internal: { network: string; ip?: string }, created: string[]): Promise<void> {
  await docker.create(spec);
  created.push(spec.name);
  await docker.networkConnect(internal.network, spec.name, internal.ip ? { ip: internal.ip } : {});
  await docker.startAttached(spec.name, { stdin: "", pattern: RELAY_READY_LINE, timeoutMs: RELAY_READY_TIMEOUT_MS });
}

/** The host port Docker chose for a relay published on any free one. */
async function publishedHostPort(docker: Docker, relay: string, port: number): Promise<number> {
  const bound = (await docker.containerInspect(relay))?.NetworkSettings.Ports?.[`${port}/tcp`]?.[0]?.HostPort;
  if (!bound) throw new BottleError(`the relay ${relay} is published on no host port`, { fix: "run `bottle doctor`, then forward the port again" });
  return Number(bound);
}

/**
 * One forward's relay, up; the host port it answers on. An implicit host
 * port taken since planning moves to a free one; an explicit one is an
 * error naming its holder. `created` lists the relay while it exists.
 */
async function openForward(
  docker: Docker,
  plan: Plan,
  forward: PortForward,
  target: { bottleIp: string; network: string; ip?: string },
  version: string,
  created: string[],
): Promise<{ open: OpenPort; forward: PortForward }> {
  const spec = relayContainerSpec(plan, forward, target.bottleIp, version);
  try {
    await startRelay(docker, spec, target, created);
  } catch (error) {
    if (!isPortTaken(error)) throw error;
    await docker.containerRm([spec.name]);
    created.splice(created.indexOf(spec.name), 1);
    const holder = (await takenHostPorts(docker, [forward], async () => "taken")).get(forward.hostPort ?? 0) ?? "another process";
    if (forward.explicit || forward.hostPort === undefined)
      throw new BottleError(`the host port ${hostAddress(forward.hostIp, forward.hostPort)} is taken by ${holder}`, { fix: takenFix({ port: forward.port, hostPort: forward.hostPort }) });
    const { hostPort: _taken, ...moved } = forward;
    return openForward(docker, plan, { ...moved, takenBy: holder }, target, version, created);
  }
  const hostPort = forward.hostPort ?? (await publishedHostPort(docker, spec.name, forward.port));
  return { open: { port: forward.port, hostIp: forward.hostIp, hostPort }, forward };
}

/**
 * At launch, as soon as the internal network exists: the ports network and
 * a relay per planned port, at the addresses after the bottle's (chosen
 * before the gate and the bottle exist, so none can take another's).
 */
export async function openPlannedPorts(docker: Docker, plan: Plan, internal: InternalAddresses, request: LaunchRequest): Promise<void> {
  const forwards = plan.ports ?? [];
  if (forwards.length === 0) return;
  if (await createPortsNetwork(docker, plan, request.version)) request.created.networks.push(portsNetwork(plan.name));
  const opened = await settleAll(
    forwards.map((forward, index) =>
      openForward(docker, plan, forward, { bottleIp: internal.bottle, network: plan.networks.internal, ip: relayAddress(internal, index) }, request.version, request.created.containers),
    ),
  );
  for (const { open, forward } of opened) {
    const message = openPortMessage(plan.name, open, forward);
    if (forward.takenBy) log.warn(message);
    else log.info(message);
  }
}

/** The relays a bottle has (running or not), by label. */
async function relaysOf(docker: Docker, bottle: string): Promise<string[]> {
  const containers = await listBottleContainers(docker, { name: bottle, scope: "own" });
  return containers.filter((container) => container.labels[LABELS.role] === "port").map((container) => container.name);
}

/**
 * What `bottle port` added to a bottle while its launcher ran, which the
 * launcher's teardown did not create itself: those relays, then the ports
 * network. The relays removed; never throws (teardown must finish).
 */
export async function removeLaterRelays(docker: Docker, created: Created): Promise<string[]> {
  if (!created.name) return [];
  try {
    const later = (await relaysOf(docker, created.name)).filter((relay) => !created.containers.includes(relay));
    if (later.length === 0) return [];
    await docker.containerRm(later);
    if (!created.networks.includes(portsNetwork(created.name))) await removeNetwork(docker, portsNetwork(created.name));
    return later;
  } catch (error) {
    log.warn(`teardown: ${errorMessage(error)}`);
    return [];
  }
}

/**
 * The docker backend's teardown: what the launch created, and what `bottle
 * port` added meanwhile, looked up while the rest is removed (no time added
 * when there is none). A later relay may have held the internal network as
 * it went: then its networks go once more.
 */
export async function teardownWithRelays(docker: Docker, created: Created): Promise<void> {
  const [, later] = await Promise.all([removeCreated(docker, created), removeLaterRelays(docker, created)]);
  if (later.length) await Promise.all(created.networks.map((network) => removeNetwork(docker, network).catch(() => undefined)));
}

/** The docker backend's `bottle port`: a relay more or less on a running bottle. */
export const dockerPorts: PortForwarding = {
  max: MAX_PORT_RELAYS,

  async open(docker, plan, forward, version) {
    const relay = relayName(plan.name, forward.port);
    const [bottle, existing, relays] = await Promise.all([docker.containerInspect(plan.containers.bottle), docker.containerInspect(relay), relaysOf(docker, plan.name)]);
    const bottleIp = bottle?.NetworkSettings.Networks[plan.networks.internal]?.IPAddress;
    if (!bottleIp) throw new BottleError(`${plan.name} has no address on its network ${plan.networks.internal}`, { fix: `start it again: bottle down ${plan.name}, then bottle up` });
    if (existing) throw new BottleError(`port ${forward.port} of ${plan.name} is forwarded already`, { fix: `see \`bottle port ${plan.name}\`; to move it, \`bottle port ${plan.name} --rm ${forward.port}\` first` });
    if (relays.length >= MAX_PORT_RELAYS) throw new BottleError(`${plan.name} forwards ${relays.length} ports, the most a bottle can`, { fix: `remove one first: bottle port ${plan.name} --rm PORT` });
    await createPortsNetwork(docker, plan, version);
    const created: string[] = [];
    try {
      // The gate and the bottle have their addresses: Docker may place the relay.
      return (await openForward(docker, plan, forward, { bottleIp, network: plan.networks.internal }, version, created)).open;
    } catch (error) {
      await docker.containerRm(created);
      throw error;
    }
  },

  async close(docker, plan, port) {
    const relay = relayName(plan.name, port);
    if (!(await docker.containerInspect(relay))) return false;
    await docker.containerRm([relay]);
    if ((await relaysOf(docker, plan.name)).length === 0) await removeNetwork(docker, portsNetwork(plan.name));
    return true;
  },
};
