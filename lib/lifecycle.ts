import { closeSync, existsSync, fstatSync, openSync, readSync, statSync, watch } from "node:fs";
import { listBottleContainers, listBottleObjects, removeBottle } from "./backends/docker.ts";
import { removeMachineQuietly } from "./backends/smolmachines/launch.ts";
import { MachineDocker } from "./backends/smolmachines/machine-docker.ts";
import { findPackLeftovers, removePackLeftovers, type PackLeftovers } from "./backends/smolmachines/prepare.ts";
import { machineListArgv, parseMachineList, smolvmBinary } from "./backends/smolmachines/smolvm.ts";
import { escapeControls, formatAuditLine, readAudit, type AuditLine } from "./audit.ts";
import { ROTATED_SUFFIX } from "./gates/common/capped-log.ts";
import { type ContainerSummary, Docker, type NetworkSummary } from "./docker.ts";
import { formatGitLogLine, type GitLogLine } from "./gates/git/config.ts";
import { formatSshLogLine, type SshLogLine } from "./gates/ssh/config.ts";
import { BottleError } from "./errors.ts";
import type { Exec } from "./exec.ts";
import { bottleStateDir } from "./paths.ts";
import { LABELS } from "./plan.ts";
import { agentCommand } from "./provision.ts";
import { auditLogPath, readPlan, stateNames } from "./state.ts";
import { bringBackCommits, bringBackOnTeardown, type BroughtBack } from "./git/bottle-branch.ts";
import { removeWorkspaceGitMountPoints } from "./git/workspace-git.ts";
import { attachTo, isOrphan } from "./up.ts";
import { didYouMean } from "./suggest.ts";
import { usageError } from "./cli/args.ts";

/** ls, attach, exec, logs, down, cleanup: bottles found by label and state dir. */

export interface BottleRow {
  name: string;
  agent: string;
  backend: string;
  status: string;
  createdAt: string;
  age: string;
  workspace: string;
}

function age(createdAt: string): string {
  const seconds = Math.max(0, (Date.now() - Date.parse(createdAt.replace(/ [A-Z]+$/, ""))) / 1000);
  if (!Number.isFinite(seconds)) return "?";
  if (seconds < 60) return `${Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

/** A smolmachines bottle has no container: its gate container stands for it in docker. */
function isSmolmachinesGate(container: ContainerSummary): boolean {
  return container.labels[LABELS.role] === "gate" && container.labels[LABELS.backend] === "smolmachines";
}

/** The container that stands for a bottle: the bottle container, or a smolmachines bottle's gate. */
function standsForBottle(container: ContainerSummary): boolean {
  return container.labels[LABELS.role] === "bottle" || isSmolmachinesGate(container);
}

/** smolvm's machines by name → state; undefined when smolvm cannot be asked (not installed). */
async function machineStates(exec: Exec): Promise<Map<string, string> | undefined> {
  try {
    const out = await exec.run(machineListArgv(smolvmBinary()), { check: false, timeoutMs: 10_000 });
    if (out.exitCode !== 0) return undefined;
    return new Map(parseMachineList(out.stdout).map((machine) => [machine.name, machine.state ?? "?"]));
  } catch {
    return undefined;
  }
}

export async function listBottles(exec: Exec): Promise<BottleRow[]> {
  const docker = new Docker(exec);
  const containers = await listBottleContainers(docker, { scope: "own" });
  const shown = containers.filter(standsForBottle);
  const machines = shown.some(isSmolmachinesGate) ? await machineStates(exec) : undefined;
  return shown
    .map((c) => {
      const name = c.labels[LABELS.name] ?? c.name;
      // A VM's state is smolvm's to tell; without smolvm, the gate's.
      const status = isSmolmachinesGate(c) ? (machines ? (machines.get(name) ?? "machine missing") : `gate ${c.state}`) : c.state;
      return {
        name,
        agent: c.labels[LABELS.agent] ?? "?",
        backend: c.labels[LABELS.backend] ?? "docker",
        status,
        createdAt: c.createdAt,
        age: age(c.createdAt),
        workspace: c.labels[LABELS.workspace] ?? "",
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

export function formatBottleTable(rows: BottleRow[]): string {
  if (rows.length === 0) return "no bottles running (start one with `bottle up`)";
  const header: BottleRow = { name: "NAME", agent: "AGENT", backend: "BACKEND", status: "STATUS", createdAt: "", age: "AGE", workspace: "WORKSPACE" };
  const keys = ["name", "agent", "backend", "status", "age", "workspace"] as const;
  const widths = keys.map((key) => Math.max(...[header, ...rows].map((row) => row[key].length)));
  return [header, ...rows].map((row) => keys.map((key, i) => row[key].padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

/**
 * The running bottle's Docker: the docker one for a bottle container; for a
 * smolmachines bottle (its state says so and its gate runs) one whose exec
 * on the bottle goes to the VM.
 */
async function requireRunning(docker: Docker, name: string): Promise<Docker> {
  const running = await runningBottle(docker, name);
  if (running) return running;
  const names = (await listBottles(docker.exec)).map((row) => row.name);
  throw new BottleError(`no running bottle named ${name}${didYouMean(name, names)}`, { fix: "see `bottle ls`" });
}

/** The running bottle's Docker (see requireRunning), or undefined. */
async function runningBottle(docker: Docker, name: string): Promise<Docker | undefined> {
  const inspect = await docker.containerInspect(name);
  if (inspect?.Config.Labels?.[LABELS.role] === "bottle" && inspect.State.Running) return docker;
  const plan = readPlan(name);
  if (plan?.backend === "smolmachines") {
    const gate = await docker.containerInspect(plan.containers.gate);
    if (gate?.Config.Labels?.[LABELS.backend] === "smolmachines" && gate.State.Running)
      return new MachineDocker(docker.exec, plan.containers.bottle, smolvmBinary(), docker.binary);
  }
  return undefined;
}

export async function attachBottle(exec: Exec, name: string, command: string[]): Promise<number> {
  const bottle = await requireRunning(new Docker(exec), name);
  const plan = readPlan(name);
  if (!plan) throw new BottleError(`the state of ${name} is missing`, { fix: `remove it with \`bottle down ${name}\` and start a new one` });
  return attachTo(bottle, plan, agentCommand(plan, command));
}

/** JSON escapes C0 controls itself; C1 (and DEL) pass through raw unless escaped here. */
function jsonLine(line: AuditLine): string {
  return JSON.stringify(line).replace(/[\x7f-\x9f]/g, (ch) => `\\u00${ch.charCodeAt(0).toString(16)}`);
}

export async function showLogs(exec: Exec, name: string, options: { gate?: string; follow: boolean; json: boolean }): Promise<number> {
  const docker = new Docker(exec);
  if (!options.gate) return (await requireRunning(docker, name)).logs(name, options.follow);
  if (options.gate !== "egress" && options.gate !== "git" && options.gate !== "ssh")
    throw usageError(`unknown gate "${options.gate}"${didYouMean(options.gate, ["egress", "git", "ssh"])}`, "use --gate egress, --gate git or --gate ssh");
  if (!existsSync(bottleStateDir(name))) throw new BottleError(`no bottle named ${name}`, { fix: "see `bottle ls`" });
  const path = auditLogPath(name, options.gate);
  const format =
    options.gate === "git"
      ? (line: AuditLine) => formatGitLogLine(line as GitLogLine)
      : options.gate === "ssh"
        ? (line: AuditLine) => formatSshLogLine(line as SshLogLine)
        : formatAuditLine;
  const print = (lines: AuditLine[]) => {
    for (const line of lines) process.stdout.write(`${options.json ? jsonLine(line) : escapeControls(format(line))}\n`);
  };
  print(readAudit(path));
  if (!options.follow) return 0;
  return followFile(path, (text) => {
    for (const line of text.split("\n").filter(Boolean)) {
      try {
        print([JSON.parse(line) as AuditLine]);
      } catch {
        // partial line
      }
    }
  });
}

/** What a file holds past `from` (empty when nothing). */
function readFrom(file: string, from: number): Buffer {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    if (size <= from) return Buffer.alloc(0);
    const buffer = Buffer.alloc(size - from);
    return buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, from));
  } finally {
    closeSync(fd);
  }
}

/** Resolves on Ctrl-C or SIGTERM. */
function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
}

/** Print what is appended to a file (a gate log under the state dir) until `until` resolves (Ctrl-C). */
export function followFile(path: string, onText: (text: string) => void, until: Promise<unknown> = interrupted()): Promise<number> {
  const stat = existsSync(path) ? statSync(path) : undefined;
  let offset = stat?.size ?? 0;
  let inode = stat?.ino;
  let pending = Buffer.alloc(0);
  // Whole lines only; a partial one waits for its end.
  const emit = (chunk: Buffer) => {
    const all = Buffer.concat([pending, chunk]);
    const cut = all.lastIndexOf(10);
    pending = all.subarray(cut + 1);
    if (cut >= 0) onText(all.subarray(0, cut + 1).toString("utf8"));
  };
  return new Promise((resolve) => {
    const readNew = () => {
      if (!existsSync(path)) return;
      const { ino } = statSync(path);
      if (ino !== inode) {
        // The gate rotated its log (capped-log.ts): the old file's rest is in its `.1`, the new file is read from its start.
        const rotated = path + ROTATED_SUFFIX;
        if (inode !== undefined && existsSync(rotated) && statSync(rotated).ino === inode) emit(readFrom(rotated, offset));
        inode = ino;
        offset = 0;
      }
      const chunk = readFrom(path, offset);
      offset += chunk.length;
      emit(chunk);
    };
    const watcher = watch(bottleStateDir(path.split("/logs/")[0]!.split("/").pop()!), { recursive: true }, readNew);
    void until.then(() => {
      watcher.close();
      resolve(0);
    });
  });
}

/**
 * The smolvm machine of a smolmachines bottle (its objects' labels or its
 * state say so), else undefined. The machine is named like the bottle
 * container would be.
 */
function bottleMachine(name: string, objects: Array<ContainerSummary | NetworkSummary>): string | undefined {
  const plan = readPlan(name);
  if (plan) return plan.backend === "smolmachines" ? plan.containers.bottle : undefined;
  return objects.some((o) => o.labels[LABELS.name] === name && o.labels[LABELS.backend] === "smolmachines") ? name : undefined;
}

/**
 * The bottle's commits first (a mounted workspace's, while the bottle still
 * runs), then the VM (if any), the docker objects, the state dir, and the
 * mount points the launch made in the workspace.
 */
async function removeBottleAndMachine(docker: Docker, name: string, machine: string | undefined): Promise<void> {
  const plan = readPlan(name);
  if (plan?.workspace.git) {
    const running = await runningBottle(docker, name).catch(() => undefined);
    if (running) await bringBackOnTeardown(running, plan);
  }
  if (machine) await removeMachineQuietly(docker.exec, machine, smolvmBinary());
  await removeBottle(docker, name);
  if (plan?.workspace.git) removeWorkspaceGitMountPoints(plan.workspace.git);
}

export async function downBottles(exec: Exec, names: string[] | undefined): Promise<string[]> {
  const docker = new Docker(exec);
  const { containers, networks } = await listBottleObjects(docker, { scope: "own" });
  const objects = [...containers, ...networks];
  const known = new Set(objects.map((o) => o.labels[LABELS.name] ?? "").filter(Boolean));
  const targets = names ?? [...known];
  for (const name of targets)
    if (!known.has(name) && !existsSync(bottleStateDir(name)))
      throw new BottleError(`no bottle named ${name}${didYouMean(name, known)}`, { fix: "see `bottle ls`" });
  await Promise.all(targets.map((name) => removeBottleAndMachine(docker, name, bottleMachine(name, objects))));
  return targets;
}

export interface Orphan {
  name: string;
  containers: string[];
  networks: string[];
  stateDir: boolean;
  /** The smolvm machine of a smolmachines bottle (removed first). */
  machine?: string;
  /** Registry/crane objects and staging dirs of a killed smolmachines prepare. */
  pack?: PackLeftovers;
}

/** Bottles whose launching process is gone (SIGKILL) and detached bottles that stopped. */
export async function findOrphans(exec: Exec): Promise<Orphan[]> {
  const docker = new Docker(exec);
  const { containers, networks } = await listBottleObjects(docker, { scope: "own" });
  const names = new Set([...containers, ...networks].map((o) => o.labels[LABELS.name] ?? "").filter(Boolean));
  for (const name of stateNames()) names.add(name);
  const orphans: Orphan[] = [];
  for (const name of names) {
    const own = containers.filter((c) => c.labels[LABELS.name] === name);
    const running = own.some((c) => standsForBottle(c) && c.state === "running");
    if (!isOrphan(name, running)) continue;
    const machine = bottleMachine(name, [...containers, ...networks]);
    orphans.push({
      name,
      containers: own.map((c) => c.name),
      networks: networks.filter((n) => n.labels[LABELS.name] === name).map((n) => n.name),
      stateDir: existsSync(bottleStateDir(name)),
      ...(machine ? { machine } : {}),
    });
  }
  const pack = await findPackLeftovers(docker);
  if (pack.containers.length || pack.networks.length || pack.stagingDirs.length)
    orphans.push({ name: "(smolmachines prepare)", containers: pack.containers, networks: pack.networks, stateDir: false, pack });
  return orphans.sort((a, b) => a.name.localeCompare(b.name));
}

export async function removeOrphans(exec: Exec, orphans: Orphan[]): Promise<void> {
  const docker = new Docker(exec);
  await Promise.all(orphans.map((orphan) => (orphan.pack ? removePackLeftovers(docker, orphan.pack) : removeBottleAndMachine(docker, orphan.name, orphan.machine))));
}

/** `bottle fetch NAME`: the running bottle's new commits onto its branch now. */
export async function fetchBottleCommits(exec: Exec, name: string): Promise<BroughtBack | undefined> {
  const bottle = await requireRunning(new Docker(exec), name);
  const plan = readPlan(name);
  if (!plan) throw new BottleError(`the state of ${name} is missing`, { fix: `remove it with \`bottle down ${name}\` and start a new one` });
  if (plan.workspace.mode !== "mount" || !plan.workspace.git?.repo)
    throw new BottleError(`${name} has no mounted git repository to bring commits back to`, {
      fix: plan.workspace.mode === "copy" ? "a copy workspace's work is saved when the bottle stops" : "start the bottle from a repository's top level with `workspace: mount`",
    });
  return bringBackCommits(bottle, plan);
}
