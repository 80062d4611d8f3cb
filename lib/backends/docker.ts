import { chmodSync, mkdirSync, rmSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import type { ContainerSpec, Docker, NetworkInspect } from "../docker.ts";
import { BottleError } from "../errors.ts";
import { proxyEnvironment } from "../proxy-env.ts";
import { custodyGateFiles } from "../gates/custody/index.ts";
import { EGRESS_READY_LINE, egressGateConfig } from "../gates/egress-config.ts";
import { gitGateConfig, gitGateEntries, type GitGateRemote } from "../gates/git/config.ts";
import { sshGateConfig, sshGateEntries, type SshGateHost } from "../gates/ssh/config.ts";
import { log } from "../log.ts";
import { bottleStateDir, stateDir } from "../paths.ts";
import { LABELS, type Plan } from "../plan.ts";
import { createTar, type TarEntry } from "../tar.ts";

/**
 * The docker backend: the bottle sits only on a per-bottle `--internal`
 * network whose bridge has no host address (so the host is unreachable); the
 * gate sits on that network and on a per-bottle egress network.
 */

export const GATE_ALIAS = "gate";
const GATE_READY_TIMEOUT_MS = 30_000;

/** Objects a launch created, in creation order, so teardown can undo exactly them. */
export interface Created {
  networks: string[];
  containers: string[];
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

export function bottleContainerSpec(plan: Plan, gateIp: string, labels: Record<string, string>): ContainerSpec {
  const proxy = `http://${GATE_ALIAS}:${plan.egress.proxyPort}`;
  const mounts: ContainerSpec["mounts"] = [];
  if (plan.workspace.mode === "mount" && plan.workspace.hostPath) {
    mounts.push({ source: plan.workspace.hostPath, target: plan.workspace.containerPath });
    // Hooks and config the host would later execute stay read-only.
    for (const path of plan.workspace.readonlyPaths)
      mounts.push({ source: join(plan.workspace.hostPath, path), target: `${plan.workspace.containerPath}/${path}`, readonly: true });
  }
  return {
    name: plan.containers.bottle,
    image: plan.bottleImage,
    labels,
    network: plan.networks.internal,
    dns: [gateIp],
    env: { ...proxyEnvironment(proxy), ...bottleVariables(plan) },
    mounts,
    user: `${plan.workspace.user.uid}:${plan.workspace.user.gid}`,
    capDrop: ["ALL"],
    securityOpt: ["no-new-privileges"],
    pidsLimit: 2048,
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
    network: gateHomeNetwork(plan, publish),
    networkAliases: [GATE_ALIAS],
    ...(publish ? { publish } : {}),
    mounts: [{ source: logDir, target: "/var/log/bottle" }],
    capDrop: ["ALL"],
    capAdd: ["NET_BIND_SERVICE"],
    securityOpt: ["no-new-privileges"],
    pidsLimit: 512,
    // The gate joins two networks; it must never route packets between them.
    sysctls: { "net.ipv4.ip_forward": "0", "net.ipv4.conf.all.forwarding": "0" },
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
  // Loopback is refused by its own rule (with a clearer message).
  const local = Object.values(networkInterfaces())
    .flat()
    .filter((info) => info && !info.internal)
    .map((info) => info?.address.split("%")[0])
    .filter((address): address is string => Boolean(address));
  return [...new Set([...inspects.flatMap(networkGateways), ...local])];
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
}

/** The network where the gate's alias `gate` lives, so where its listeners bind: the internal one, or for a VM's gate the egress one. */
function gateHomeNetwork(plan: Plan, publish: string[] | undefined): string {
  return publish ? plan.networks.egress : plan.networks.internal;
}

/** The gate's addresses: where its listeners bind (the `gate` alias) and on the egress network. */
export interface GateAddresses {
  gateIp: string;
  gateEgressIp: string;
}

export interface GateLaunch {
  /** A VM's gate: no internal network; these `address:port:port` publishes are the only way in. */
  publish?: string[];
  /** Runs while the gate's daemons come up (a docker bottle starts then). */
  alongside?: (gate: GateAddresses) => Promise<unknown>;
}

/**
 * The gate both backends share: networks, the gate container with its
 * config (egress, custody, git and SSH gates) copied in, start, ready.
 * Everything created is recorded in `created` as soon as it exists, so a
 * failure half-way can be undone by `teardownDocker`.
 */
export async function launchGate(docker: Docker, plan: Plan, options: LaunchOptions, launch: GateLaunch = {}): Promise<GateAddresses> {
  const { created } = options;
  const home = gateHomeNetwork(plan, launch.publish);
  const networkLabels = bottleLabels(plan, "network", options.version);
  await settleAll([
    ...(launch.publish
      ? []
      : [
          docker
            .networkCreate(plan.networks.internal, {
              internal: true,
              labels: networkLabels,
              // No address on the host side of the bridge: the host is unreachable.
              driverOptions: { "com.docker.network.bridge.inhibit_ipv4": "true" },
            })
            .then(() => created.networks.push(plan.networks.internal)),
        ]),
    docker.networkCreate(plan.networks.egress, { labels: networkLabels }).then(() => created.networks.push(plan.networks.egress)),
  ]);

  const logDir = join(bottleStateDir(plan.name), "logs");
  mkdirSync(logDir, { recursive: true });
  // The gate's root has no CAP_DAC_OVERRIDE: it can write the logs only if the
  // dir is writable for it. The state root itself is 0700, so no one else can.
  chmodSync(logDir, 0o777);
  const [, hostAddresses, homeNetwork] = await settleAll([
    docker.create(gateContainerSpec(plan, bottleLabels(plan, "gate", options.version), logDir, launch.publish)).then(() => created.containers.push(plan.containers.gate)),
    dockerHostAddresses(docker),
    docker.networkInspect(home),
  ]);
  // Claude Code's route listens only on the gate's address in the network the bottle reaches it on.
  const routeSubnets = (homeNetwork?.IPAM.Config ?? []).map((config) => config.Subnet).filter((subnet): subnet is string => Boolean(subnet));
  const config = egressGateConfig(plan, hostAddresses, options.secrets.length > 0, routeSubnets);
  const files: TarEntry[] = [
    { path: "etc/bottle", type: "dir", mode: 0o700, uid: 0, gid: 0 },
    { path: "etc/bottle/egress.json", content: `${JSON.stringify(config, null, 2)}\n`, mode: 0o600, uid: 0, gid: 0 },
  ];
  if (options.secrets.length)
    files.push({ path: "etc/bottle/secrets.json", content: JSON.stringify(options.secrets), mode: 0o600, uid: 0, gid: 0 });
  files.push(...custodyGateFiles(options.custody ?? {}));
  // The git gate: config, hooks, upstream keys and pinned host keys (root-only; its start script runs before the egress gate).
  files.push(...gitGateEntries(gitGateConfig(plan.name, plan.git?.port), options.git ?? []));
  // The SSH gate: its keys (root-only), pinned host keys and daemon; its start script loads the agent.
  if (plan.ssh?.hosts.length) files.push(...sshGateEntries(sshGateConfig(plan.name, plan.ssh), options.ssh ?? []));
  await docker.copyArchiveIn(plan.containers.gate, "/", createTar(files));
  if (!launch.publish) await docker.networkConnect(plan.networks.egress, plan.containers.gate);
  await docker.start(plan.containers.gate);

  // Addresses are assigned at start, so the bottle can start while the gate's daemons come up.
  const gate = await docker.containerInspect(plan.containers.gate);
  const gateIp = gate?.NetworkSettings.Networks[home]?.IPAddress;
  const gateEgressIp = gate?.NetworkSettings.Networks[plan.networks.egress]?.IPAddress;
  if (!gateIp || !gateEgressIp) throw new BottleError(`the gate ${plan.containers.gate} is missing an address on its networks`);
  const addresses = { gateIp, gateEgressIp };
  await settleAll([docker.waitForLog(plan.containers.gate, EGRESS_READY_LINE, GATE_READY_TIMEOUT_MS), launch.alongside ? launch.alongside(addresses) : Promise.resolve()]);
  return addresses;
}

/** The docker backend's launch: the gate, and the bottle on the internal network while the gate comes up. */
export async function launchDocker(docker: Docker, plan: Plan, options: LaunchOptions): Promise<GateAddresses> {
  return launchGate(docker, plan, options, {
    alongside: (gate) =>
      docker
        .runDetached(bottleContainerSpec(plan, gate.gateIp, bottleLabels(plan, "bottle", options.version)))
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
  const passwd = await docker.execIn(plan.containers.bottle, ["cat", "/etc/passwd"]);
  const group = await docker.execIn(plan.containers.bottle, ["cat", "/etc/group"]);
  const withoutAgent = (text: string) =>
    text
      .split("\n")
      .filter((line) => line && !line.startsWith("agent:"))
      .join("\n");
  return [
    { path: "etc/passwd", content: `${withoutAgent(passwd.stdout)}\nagent:x:${uid}:${gid}::/home/agent:/bin/bash\n`, mode: 0o644, uid: 0, gid: 0 },
    { path: "etc/group", content: `${withoutAgent(group.stdout)}\nagent:x:${gid}:\n`, mode: 0o644, uid: 0, gid: 0 },
  ];
}

/** Remove containers then networks; never throws (teardown must finish). */
export async function teardownDocker(docker: Docker, created: Created): Promise<void> {
  try {
    // One `rm` per container, concurrently: the daemon removes them in parallel.
    await Promise.all(created.containers.map((container) => docker.containerRm([container])));
    await docker.networkRm([...created.networks].reverse());
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
  const filters = [options.name ? `label=${LABELS.name}=${options.name}` : `label=${LABELS.name}`];
  if (options.scope === "own") filters.push(`label=${LABELS.state}=${stateDir()}`);
  const [containers, networks] = await Promise.all([docker.ps(filters), docker.networkLs(filters)]);
  return { containers, networks };
}

/** Remove every docker object and the state dir of the named bottle. */
export async function removeBottle(docker: Docker, name: string): Promise<{ containers: number; networks: number }> {
  const { containers, networks } = await listBottleObjects(docker, { name, scope: "own" });
  const bottles = containers.filter((c) => c.labels[LABELS.role] === "bottle").map((c) => c.name);
  const others = containers.filter((c) => c.labels[LABELS.role] !== "bottle").map((c) => c.name);
  await docker.containerRm([...bottles, ...others]);
  await docker.networkRm(networks.map((n) => n.name));
  rmSync(bottleStateDir(name), { recursive: true, force: true });
  return { containers: containers.length, networks: networks.length };
}
