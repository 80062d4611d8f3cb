import { createHash } from "node:crypto";
import { BottleError } from "../../errors.ts";
import type { Exec } from "../../exec.ts";
import { log } from "../../log.ts";
import { proxyEnvironment } from "../../proxy-env.ts";

/**
 * argv builders for the smolvm CLI — pure functions, unit-tested; everything
 * runs through `Exec`. Where each form comes from in smolvm's own sources, and
 * why the VM gets exactly `--allow-cidr <gate>/32`: docs/smolmachines.md.
 */

type Env = Record<string, string | undefined>;

export function smolvmBinary(env: Env = process.env): string {
  return env.BOTTLE_SMOLVM || "smolvm";
}

export interface Endpoint {
  host: string;
  port: number;
}

/** The persistent workload a bottle VM runs so `machine exec` has a live container. */
export const IDLE_COMMAND = ["sleep", "infinity"];

const NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

function checkName(name: string): string {
  if (!NAME_RE.test(name)) throw new BottleError(`invalid smolvm machine name "${name}"`, { fix: "use lower-case letters, digits, '-', '_' or '.'" });
  return name;
}

function checkEnvName(name: string): string {
  if (!ENV_NAME_RE.test(name)) throw new BottleError(`invalid environment variable name "${name}"`);
  return name;
}

/** An IPv4 literal in 127.0.0.0/8 (what the gate is published on). */
export function isLoopbackIPv4(host: string): boolean {
  const parts = host.split(".");
  return parts.length === 4 && parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) <= 255) && parts[0] === "127";
}

function checkGate(gate: Endpoint): Endpoint {
  if (!isLoopbackIPv4(gate.host))
    throw new BottleError(`the gate address ${gate.host} is not a loopback IPv4 address`, {
      fix: "publish the gate on 127.0.0.0/8 only; the VM's allowlist is exactly that address",
    });
  if (!Number.isInteger(gate.port) || gate.port < 1 || gate.port > 65535) throw new BottleError(`invalid gate port ${gate.port}`);
  return gate;
}

/**
 * The loopback address to publish a bottle's gate on. On Linux every
 * 127.0.0.0/8 address is local, so each bottle gets its own (derived from
 * its name, never 127.0.0.1), and `--allow-cidr <it>/32` admits nothing else
 * on the host's loopback. macOS configures only 127.0.0.1 by default, so there
 * the allowlist necessarily covers the host's other 127.0.0.1 services too.
 */
export function gateLoopbackAddress(name: string, platform: NodeJS.Platform = process.platform): string {
  if (platform !== "linux") return "127.0.0.1";
  const digest = createHash("sha256").update(name).digest();
  // 127.200.0.0 – 127.254.255.254: clear of 127.0.0.1 and 127.0.0.53 (systemd-resolved).
  const second = 200 + (digest[0]! % 55);
  const fourth = 1 + (digest[2]! % 254);
  return `127.${second}.${digest[1]!}.${fourth}`;
}

export function proxyUrl(gate: Endpoint): string {
  return `http://${checkGate(gate).host}:${gate.port}`;
}

/** The proxy variables a bottle VM gets, set explicitly (TSI has no transparent proxy here). */
export function proxyEnv(gate: Endpoint): Record<string, string> {
  return proxyEnvironment(proxyUrl(gate));
}

// ---- pack ----

export interface PackCreateOptions {
  image: string;
  /** The stub path; smolvm writes `<output>.smolmachine` beside it. */
  output: string;
  binary?: string;
}

export function packCreateArgv(options: PackCreateOptions): string[] {
  if (options.output.endsWith(".smolmachine"))
    throw new BottleError(`--output names the stub, not the sidecar: ${options.output}`, { fix: "pass the path without .smolmachine" });
  return [options.binary ?? "smolvm", "pack", "create", "--image", options.image, "--output", options.output];
}

// ---- machines ----

export interface Volume {
  host: string;
  guest: string;
  readonly?: boolean;
}

export interface MachineSpec {
  name: string;
  /** The cached `.smolmachine` to create from (no registry pull at launch). */
  smolmachine: string;
  /** The egress gate as published on the host's loopback; the VM may reach only this address. */
  gate: Endpoint;
  /** Non-secret variables only: they persist in smolvm's machine record. */
  env?: Record<string, string>;
  /** Directories only (smolvm mounts no single files). */
  volumes?: Volume[];
  cpus?: number;
  memoryMib?: number;
  /** The persistent workload (default: sleep infinity). */
  command?: string[];
}

export function machineCreateArgv(spec: MachineSpec, binary = "smolvm"): string[] {
  const gate = checkGate(spec.gate);
  const argv = [binary, "machine", "create", "--name", checkName(spec.name), "--from", spec.smolmachine];
  // The whole egress policy: one /32 on the host's loopback, where the gate listens.
  argv.push("--allow-cidr", `${gate.host}/32`);
  if (spec.cpus !== undefined) argv.push("--cpus", String(spec.cpus));
  if (spec.memoryMib !== undefined) argv.push("--mem", String(spec.memoryMib));
  for (const volume of spec.volumes ?? []) {
    if (volume.host.includes(":") || volume.guest.includes(":")) throw new BottleError(`a volume path may not contain ':' (${volume.host} → ${volume.guest})`);
    argv.push("-v", `${volume.host}:${volume.guest}${volume.readonly ? ":ro" : ""}`);
  }
  const env = { ...(spec.env ?? {}), ...proxyEnv(gate) };
  for (const [key, value] of Object.entries(env)) argv.push("-e", `${checkEnvName(key)}=${value}`);
  argv.push("--", ...(spec.command ?? IDLE_COMMAND));
  return argv;
}

export function machineStartArgv(name: string, binary = "smolvm"): string[] {
  return [binary, "machine", "start", "--name", checkName(name)];
}

export interface MachineExecOptions {
  name: string;
  command: string[];
  interactive?: boolean;
  tty?: boolean;
  workdir?: string;
  /** Non-secret variables for this exec (they appear in argv). */
  env?: Record<string, string>;
  /** Secret variable NAMES: `--secret-env NAME=NAME`, the values come from smolvm's own environment. */
  secretEnv?: string[];
  /** Drop to this uid:gid inside the VM (exec runs as root; smolvm has no --user). */
  user?: { uid: number; gid: number };
}

export function machineExecArgv(options: MachineExecOptions, binary = "smolvm"): string[] {
  if (options.command.length === 0) throw new BottleError("machine exec needs a command");
  const argv = [binary, "machine", "exec", "--name", checkName(options.name)];
  if (options.interactive) argv.push("-i");
  if (options.tty) argv.push("-t");
  if (options.workdir) argv.push("-w", options.workdir);
  for (const [key, value] of Object.entries(options.env ?? {})) argv.push("-e", `${checkEnvName(key)}=${value}`);
  for (const name of options.secretEnv ?? []) argv.push("--secret-env", `${checkEnvName(name)}=${name}`);
  argv.push("--");
  if (options.user) argv.push("setpriv", `--reuid=${options.user.uid}`, `--regid=${options.user.gid}`, "--clear-groups", "--");
  argv.push(...options.command);
  return argv;
}

/** Host → VM copy (`machine cp SRC NAME:PATH`). */
export function machineCopyInArgv(name: string, source: string, destination: string, binary = "smolvm"): string[] {
  if (source.includes(":")) throw new BottleError(`a host path given to smolvm cp may not contain ':' (${source})`);
  return [binary, "machine", "cp", source, `${checkName(name)}:${destination}`];
}

/** VM → host copy (`machine cp NAME:PATH DST`). */
export function machineCopyOutArgv(name: string, source: string, destination: string, binary = "smolvm"): string[] {
  if (destination.includes(":")) throw new BottleError(`a host path given to smolvm cp may not contain ':' (${destination})`);
  return [binary, "machine", "cp", `${checkName(name)}:${source}`, destination];
}

export function machineStopArgv(name: string, binary = "smolvm"): string[] {
  return [binary, "machine", "stop", "--name", checkName(name)];
}

export function machineDeleteArgv(name: string, binary = "smolvm"): string[] {
  return [binary, "machine", "delete", "--name", checkName(name), "-f"];
}

export function machineListArgv(binary = "smolvm"): string[] {
  return [binary, "machine", "ls", "--json"];
}

/** Machine names from `machine ls --json` (an array, or an object holding one). */
export function parseMachineList(text: string): Array<{ name: string; state?: string }> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  const rows = Array.isArray(parsed)
    ? parsed
    : parsed && typeof parsed === "object"
      ? (Object.values(parsed).find(Array.isArray) ?? [])
      : [];
  return (rows as unknown[])
    .filter((row): row is Record<string, unknown> => Boolean(row) && typeof row === "object")
    .filter((row) => typeof row.name === "string")
    .map((row) => ({ name: row.name as string, ...(typeof row.state === "string" ? { state: row.state } : {}) }));
}

// ---- the post-start egress check ----

/** `timeout 5 bash -c 'exec 3<>/dev/tcp/HOST/PORT'` inside the VM: exit 0 iff a TCP connect succeeds. */
export function probeArgv(name: string, target: Endpoint, binary = "smolvm", seconds = 5): string[] {
  return machineExecArgv(
    { name, command: ["timeout", String(seconds), "bash", "-c", 'exec 3<>"/dev/tcp/$1/$2"', "probe", target.host, String(target.port)] },
    binary,
  );
}

export interface EgressCheck {
  name: string;
  gate: Endpoint;
  /**
   * Endpoints that answer on the host but are outside the allowlist (e.g. a
   * canary listener on another loopback address). At least one: a check
   * that only proves the gate is reachable proves nothing about the policy.
   */
  denied: Endpoint[];
  binary?: string;
}

/**
 * After `machine start`: the gate must be reachable and every `denied`
 * endpoint must not be. A smolvm that silently ignored `--allow-cidr`
 * fails here, before the agent runs.
 */
export async function verifyMachineEgress(exec: Exec, check: EgressCheck): Promise<void> {
  if (check.denied.length === 0) throw new Error("verifyMachineEgress needs at least one endpoint that must be unreachable");
  const binary = check.binary ?? "smolvm";
  const reach = async (target: Endpoint) => (await exec.run(probeArgv(check.name, target, binary), { check: false })).exitCode === 0;
  if (!(await reach(check.gate)))
    throw new BottleError(`the VM ${check.name} cannot reach its gate at ${check.gate.host}:${check.gate.port}`, {
      fix: "run `bottle doctor`; check that the gate is published on that loopback address",
    });
  for (const target of check.denied) {
    if (await reach(target))
      throw new BottleError(`egress policy not applied: the VM ${check.name} reached ${target.host}:${target.port} directly`, {
        fix: "upgrade smolvm (some releases ignore --allow-cidr for machines created --from a .smolmachine); the VM has been removed",
      });
  }
  log.debug(`egress policy of ${check.name} holds: only ${check.gate.host}/32 is reachable`);
}

/**
 * A TCP listener the VM must NOT reach, for `verifyMachineEgress`. It must sit
 * on an address outside the gate's /32 (on Linux: 127.0.0.1 while the gate
 * uses its own 127.x address).
 */
export async function withCanary<T>(hostname: string, work: (canary: Endpoint) => Promise<T>): Promise<T> {
  const listener = Bun.listen({ hostname, port: 0, socket: { open: (socket) => void socket.end(), data: () => {} } });
  try {
    return await work({ host: hostname, port: listener.port });
  } finally {
    listener.stop(true);
  }
}

/** create → start → verify the egress policy; removes the machine when any step fails. */
export async function launchMachine(exec: Exec, spec: MachineSpec, options: { denied: Endpoint[]; binary?: string }): Promise<void> {
  const binary = options.binary ?? "smolvm";
  let created = false;
  try {
    await exec.run(machineCreateArgv(spec, binary));
    created = true;
    await exec.run(machineStartArgv(spec.name, binary));
    await verifyMachineEgress(exec, { name: spec.name, gate: spec.gate, denied: options.denied, binary });
  } catch (error) {
    if (created) await removeMachine(exec, spec.name, binary);
    throw error;
  }
}

/** Stop (best effort) and delete a machine. */
export async function removeMachine(exec: Exec, name: string, binary = "smolvm"): Promise<void> {
  await exec.run(machineStopArgv(name, binary), { check: false });
  await exec.run(machineDeleteArgv(name, binary), { check: false });
}
