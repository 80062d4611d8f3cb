import { existsSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { dirname } from "node:path";
import { HOST_OBJECTS_MOUNT } from "../../git/private-gitdir.ts";
import { PRIVATE_GITDIR, submoduleAncestors, workspaceGitFiles } from "../../git/workspace-git.ts";
import { bottleVariables, launchGate, removeCreated, type GateRequest } from "../gate.ts";
import type { BottleHandle, Created, LaunchRequest } from "../types.ts";
import { machineHandle } from "./handle.ts";
import type { Docker } from "../../docker.ts";
import { BottleError } from "../../errors.ts";
import type { Exec } from "../../exec.ts";
import { log } from "../../log.ts";
import type { Plan } from "../../plan.ts";
import {
  type Endpoint,
  gateLoopbackAddress,
  isLoopbackIPv4,
  launchMachine,
  machineExecArgv,
  type MachineSpec,
  removeMachine,
  smolvmBinary,
  type Volume,
  withCanary,
} from "./smolvm.ts";

/**
 * Launch for the smolmachines backend: the gate container in Docker on the
 * bottle's egress network only, its ports published on a loopback address of
 * its own; the bottle a smolvm VM created from the cached `.smolmachine`,
 * allowed to reach exactly that address (`--allow-cidr <it>/32`), checked
 * from inside before anything else runs. smolvm forwards the VM's DNS
 * queries unfiltered (docs/smolmachines.md, "DNS"): said at every launch.
 */

type Env = Record<string, string | undefined>;

/** What `--backend smolmachines` needs from this host; injectable for tests. */
export interface SmolvmHost {
  platform: NodeJS.Platform;
  which(binary: string): string | null;
  exists(path: string): boolean;
}

export const realSmolvmHost: SmolvmHost = { platform: process.platform, which: (binary) => Bun.which(binary), exists: existsSync };

/** Why this host cannot run smolmachines bottles (one error naming everything missing), or undefined. */
export function smolvmUnavailable(env: Env, host: SmolvmHost = realSmolvmHost): BottleError | undefined {
  const binary = smolvmBinary(env);
  const missing: string[] = [];
  const fixes: string[] = [];
  if (!host.which(binary)) {
    missing.push(env.BOTTLE_SMOLVM ? `smolvm at BOTTLE_SMOLVM=${binary}` : "smolvm (not on PATH)");
    fixes.push("install smolvm (https://github.com/smol-machines/smolvm) or point BOTTLE_SMOLVM at it");
  }
  // smolvm runs its VMs on KVM on Linux (Hypervisor.framework on macOS).
  if (host.platform === "linux" && !host.exists("/dev/kvm")) {
    missing.push("/dev/kvm");
    fixes.push("enable KVM (virtualization in the firmware, the kvm module loaded)");
  }
  if (missing.length === 0) return undefined;
  return new BottleError(`the smolmachines backend cannot run here: ${missing.join(" and ")} missing`, {
    fix: `${fixes.join("; ")} — \`bottle doctor\` checks both — or use --backend docker`,
  });
}

/** Where the VM reaches the egress proxy: the bottle's own loopback address (see gateLoopbackAddress). */
export function machineGate(plan: Plan, platform: NodeJS.Platform = process.platform): Endpoint {
  return { host: gateLoopbackAddress(plan.name, platform), port: plan.egress.proxyPort };
}

/** The gate ports a bottle uses: the proxy, Claude Code's route, the git daemon, the SSH agent and forwarders. */
export function gatePorts(plan: Plan): number[] {
  const ports = [plan.egress.proxyPort];
  if (plan.custody?.claude) ports.push(plan.custody.port);
  if (plan.git?.remotes.length) ports.push(plan.git.port);
  if (plan.ssh?.hosts.length) ports.push(plan.ssh.agentPort, ...plan.ssh.hosts.map((host) => host.gatePort));
  return [...new Set(ports)];
}

/**
 * `ADDRESS:PORT:PORT` for each gate port, on the loopback address only: the
 * VM then reaches `gate:PORT` exactly as a docker bottle does (same gitconfig,
 * ssh_config and ANTHROPIC_BASE_URL), with `gate` → ADDRESS in its /etc/hosts.
 */
export function gatePublish(plan: Plan, address: string): string[] {
  if (!isLoopbackIPv4(address)) throw new BottleError(`refusing to publish the gate on ${address}: not a loopback address`);
  return gatePorts(plan).map((port) => `${address}:${port}:${port}`);
}

/** Where the bottle's host files for the git mounts (its gitfile, an empty directory) appear in the VM. */
export const MACHINE_GIT_FILES = "/run/bottle-git-files";

/** The VM: the cached .smolmachine, the plan's CPUs and memory, the workspace (mount mode) as a virtiofs volume, non-secret variables only. */
export function machineSpec(plan: Plan, smolmachine: string, gate: Endpoint): MachineSpec {
  const volumes: Volume[] = [];
  const { hostPath, containerPath, git } = plan.workspace;
  if (plan.workspace.mode === "mount" && hostPath) {
    volumes.push({ host: hostPath, guest: containerPath });
    // smolvm mounts directories only: the gitfile and empty directory come in as one read-only directory, bound in place by machineGitScript.
    if (git) {
      volumes.push({ host: dirname(workspaceGitFiles(plan.name).gitfile), guest: MACHINE_GIT_FILES, readonly: true });
      if (git.objects) volumes.push({ host: git.objects, guest: HOST_OBJECTS_MOUNT, readonly: true });
    }
  } else if (git?.objects) {
    // A copy or branch of a repository: its private git dir (in the VM's own disk) borrows the host's objects, read-only.
    volumes.push({ host: git.objects, guest: HOST_OBJECTS_MOUNT, readonly: true });
  }
  const { cpus, memory } = plan.resources;
  return {
    name: plan.containers.bottle,
    smolmachine,
    gate,
    env: bottleVariables(plan),
    volumes,
    // Planning allows whole CPUs only on a VM; smolvm takes its memory in MiB.
    ...(cpus ? { cpus: Math.ceil(cpus.value) } : {}),
    ...(memory ? { memoryMib: Math.floor(memory.value / 1024 ** 2) } : {}),
  };
}

/**
 * Run as root in the VM before provisioning: the same shadows the docker
 * backend makes with mounts — /workspace/.git the private git dir (a tmpfs
 * owned by the agent) or a read-only gitfile pointing at one, and each
 * submodule's `.git` read-only — as mount points the agent cannot rename.
 */
export function machineGitScript(plan: Plan): string | undefined {
  const { git, containerPath, user } = plan.workspace;
  if (plan.workspace.mode !== "mount" || !git) return undefined;
  const q = (path: string) => `'${path.replace(/'/g, `'\\''`)}'`;
  const readonlyBind = (source: string, target: string) => `mount --bind ${q(source)} ${q(target)} && mount -o remount,bind,ro ${q(target)}`;
  const tmpfs = (target: string) => `mkdir -p ${q(target)} && mount -t tmpfs -o mode=0755,uid=${user.uid},gid=${user.gid} bottle-git ${q(target)}`;
  const lines = ["set -e"];
  if (git.shape === "file") lines.push(tmpfs(PRIVATE_GITDIR), readonlyBind(`${MACHINE_GIT_FILES}/gitfile`, `${containerPath}/.git`));
  else lines.push(tmpfs(`${containerPath}/.git`));
  for (const dir of submoduleAncestors(git.submodules)) lines.push(`mount --bind ${q(`${containerPath}/${dir}`)} ${q(`${containerPath}/${dir}`)}`);
  for (const submodule of git.submodules) {
    const target = `${containerPath}/${submodule.path}/.git`;
    lines.push(readonlyBind(submodule.gitfile ? target : `${MACHINE_GIT_FILES}/empty`, target));
  }
  return lines.join("\n");
}

/**
 * A host address outside the gate's /32 for the canary the VM must not
 * reach: 127.0.0.1 on Linux (the gate has its own 127.x address); elsewhere
 * the gate is on 127.0.0.1, so one of the host's other addresses.
 */
export function canaryHost(platform: NodeJS.Platform = process.platform): string {
  if (platform === "linux") return "127.0.0.1";
  const address = Object.values(networkInterfaces())
    .flat()
    .find((info) => info && !info.internal && info.family === "IPv4")?.address;
  if (!address)
    throw new BottleError("cannot check the VM's egress policy: this host has no address besides loopback to put a canary on", {
      fix: "connect a network interface, or use --backend docker",
    });
  return address;
}

export interface MachineLaunchOptions extends LaunchRequest {
  /** The cached `.smolmachine` of the bottle's image. */
  smolmachine: string;
  /** The smolvm binary (smolvmBinary(env)). */
  binary: string;
  platform?: NodeJS.Platform;
}

/**
 * Gate up (published on the bottle's loopback address), then the VM:
 * create → start → the egress check against a canary (launchMachine removes
 * the VM when any of them fails), its git shadows, `gate` in its
 * /etc/hosts; then the request's provisioning and self-test.
 */
export async function launchSmolmachine(docker: Docker, plan: Plan, options: MachineLaunchOptions): Promise<BottleHandle> {
  const platform = options.platform ?? process.platform;
  // Said at every launch: the one egress channel this backend leaves open (see the DNS note above).
  log.warn("smolvm forwards the VM's DNS queries to the host's resolver unfiltered: names looked up inside can carry data out (the docker backend's gate answers DNS itself)");
  const gate = machineGate(plan, platform);
  const request: GateRequest = options;
  const addresses = await launchGate(docker, plan, request, { publish: gatePublish(plan, gate.host) });
  const spec = machineSpec(plan, options.smolmachine, gate);
  await withCanary(canaryHost(platform), (canary) => launchMachine(docker.exec, spec, { denied: [canary], binary: options.binary }));
  options.created.machine = spec.name;
  const gitScript = machineGitScript(plan);
  if (gitScript) await docker.exec.run(machineExecArgv({ name: spec.name, command: ["sh", "-c", gitScript] }, options.binary));
  await docker.exec.run(
    machineExecArgv({ name: spec.name, command: ["sh", "-c", 'printf "%s gate\\n" "$1" >> /etc/hosts', "hosts", gate.host] }, options.binary),
  );
  const bottle = machineHandle(docker.exec, spec.name, options.binary);
  await options.ready(bottle, Promise.resolve(addresses));
  return bottle;
}

/** The machine first (it is what reaches the gate), then the gate and its network. Never throws. */
export async function teardownSmolmachine(docker: Docker, created: Created, binary: string): Promise<void> {
  if (created.machine) await removeMachineQuietly(docker.exec, created.machine, binary);
  await removeCreated(docker, created);
}

/** removeMachine, but a missing smolvm (or any failure) is a warning: teardown and `down` must go on. */
export async function removeMachineQuietly(exec: Exec, name: string, binary: string): Promise<void> {
  try {
    await removeMachine(exec, name, binary);
  } catch (error) {
    log.warn(`removing the smolvm machine ${name}: ${error instanceof Error ? error.message : String(error)}`);
  }
}
