import { existsSync } from "node:fs";
import { BACKENDS, backendOf } from "./backends/index.ts";
import { forwardedPorts, listBottleObjects } from "./backends/objects.ts";
import type { BottleHandle, BottleRow, Leftovers } from "./backends/types.ts";
import { Docker } from "./docker.ts";
import { BottleError } from "./errors.ts";
import type { Exec } from "./exec.ts";
import { bringBackCommits, bringBackOnTeardown, type BroughtBack } from "./git/bottle-branch.ts";
import { removeWorkspaceGitMountPoints } from "./git/workspace-git.ts";
import { forgetMissing, keptHomes, type KeptHome, removeHomes } from "./homes.ts";
import { bottleStateDir } from "./paths.ts";
import { LABELS, type Plan } from "./plan.ts";
import { attachSession, sessionStateFrom } from "./session.ts";
import { isOrphan, readPlan, stateNames } from "./state.ts";
import { didYouMean } from "./suggest.ts";
import { formatOpenPort } from "./ports/format.ts";

/**
 * ls, attach, exec, down, cleanup, fetch: bottles found by label and state
 * dir; whatever is backend-specific (a VM's machine, its state) the
 * bottle's backend answers.
 */

export type { BottleRow };

export async function listBottles(exec: Exec): Promise<BottleRow[]> {
  const docker = new Docker(exec);
  const containers = await listBottleObjects(docker, { scope: "own" }).then((objects) => objects.containers);
  const rows = await Promise.all(
    Object.values(BACKENDS).map((backend) =>
      backend.rows(
        exec,
        containers.filter((c) => backendOf(c.labels[LABELS.backend]) === backend && backend.standsFor(c)),
        process.env,
      ),
    ),
  );
  const sorted = rows.flat().sort((a, b) => a.name.localeCompare(b.name));
  // Each bottle's ports, from its relays (already listed: they carry its name).
  for (const row of sorted) row.ports = forwardedPorts(containers, row.name).map(formatOpenPort);
  // Each running bottle's session, from its processes (docker top: no exec inside), all at once.
  await Promise.all(
    sorted.map(async (row) => {
      const plan = readPlan(row.name);
      if (!plan || row.status !== "running") return;
      try {
        const processes = await backendOf(plan.backend).handle(docker, plan, process.env).processes();
        const state = sessionStateFrom(processes, plan);
        row.session = state.state === "none" ? "-" : state.state;
      } catch {
        row.session = "?";
      }
    }),
  );
  return sorted;
}

export function formatBottleTable(rows: BottleRow[]): string {
  if (rows.length === 0) return "no bottles running (start one with `bottle up`)";
  const header = { name: "NAME", agent: "AGENT", backend: "BACKEND", status: "STATUS", session: "CLAUDE", age: "AGE", ports: "PORTS", workspace: "WORKSPACE" };
  const cells = rows.map((row) => ({ ...row, ports: row.ports.join(",") || "-" }));
  // The ports column only when a bottle forwards one.
  const keys = (["name", "agent", "backend", "status", "session", "age", "ports", "workspace"] as const).filter((key) => key !== "ports" || rows.some((row) => row.ports.length));
  const widths = keys.map((key) => Math.max(...[header, ...cells].map((row) => row[key].length)));
  return [header, ...cells].map((row) => keys.map((key, i) => row[key].padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

/** The running bottle's handle, or undefined; its backend is the one its state (or labels) name. */
async function runningBottle(docker: Docker, name: string, plan: Plan | undefined): Promise<BottleHandle | undefined> {
  if (plan) return backendOf(plan.backend).open(docker, plan, name, process.env);
  const inspect = await docker.containerInspect(name);
  return backendOf(inspect?.Config.Labels?.[LABELS.backend]).open(docker, undefined, name, process.env);
}

/** A running bottle and its plan, or an error naming the bottles that do run. */
export async function requireRunning(exec: Exec, name: string): Promise<{ bottle: BottleHandle; plan: Plan }> {
  const docker = new Docker(exec);
  const plan = readPlan(name);
  const bottle = await runningBottle(docker, name, plan);
  if (!bottle) {
    const names = (await listBottles(exec)).map((row) => row.name);
    throw new BottleError(`no running bottle named ${name}${didYouMean(name, names)}`, { fix: "see `bottle ls`" });
  }
  if (!plan) throw new BottleError(`the state of ${name} is missing`, { fix: `remove it with \`bottle down ${name}\` and start a new one` });
  return { bottle, plan };
}

export async function attachBottle(exec: Exec, name: string, command: string[]): Promise<number> {
  const { bottle, plan } = await requireRunning(exec, name);
  return attachSession(bottle, plan, command);
}

/**
 * The bottle's commits first (a mounted workspace's, while the bottle still
 * runs), then whatever its backend holds (a VM), the docker objects, the
 * state dir, and the mount points the launch made in the workspace.
 */
async function removeBottle(docker: Docker, name: string, backendName: string | undefined): Promise<void> {
  const plan = readPlan(name);
  const backend = backendOf(plan?.backend ?? backendName);
  if (plan?.workspace.git) {
    const running = await backend.open(docker, plan, name, process.env).catch(() => undefined);
    if (running) await bringBackOnTeardown(running, docker.exec, plan);
  }
  await backend.remove(docker, name, plan, process.env);
  if (plan?.workspace.git) removeWorkspaceGitMountPoints(plan.workspace.git);
}

/** `forget`: also remove each bottle's kept home (its conversations go with it). */
export async function downBottles(exec: Exec, names: string[] | undefined, options: { forget?: boolean } = {}): Promise<string[]> {
  const docker = new Docker(exec);
  const { containers, networks } = await listBottleObjects(docker, { scope: "own" });
  const objects = [...containers, ...networks];
  const known = new Set(objects.map((o) => o.labels[LABELS.name] ?? "").filter(Boolean));
  const targets = names ?? [...known];
  for (const name of targets)
    if (!known.has(name) && !existsSync(bottleStateDir(name)))
      throw new BottleError(`no bottle named ${name}${didYouMean(name, known)}`, { fix: "see `bottle ls`" });
  const backendLabel = (name: string) => objects.find((o) => o.labels[LABELS.name] === name)?.labels[LABELS.backend];
  const homes = options.forget ? targets.map((name) => readPlan(name)?.home?.volume).filter((volume): volume is string => Boolean(volume)) : [];
  await Promise.all(targets.map((name) => removeBottle(docker, name, backendLabel(name))));
  if (homes.length) await removeHomes(docker, homes);
  return targets;
}

export interface Orphan {
  name: string;
  containers: string[];
  networks: string[];
  stateDir: boolean;
  /** The backend whose bottle it is (a VM's machine is removed first). */
  backend?: string;
  /** What a killed launch left outside any bottle (a smolmachines pack session). */
  leftovers?: Leftovers;
}

/** Bottles whose launching process is gone (SIGKILL) and detached bottles that stopped; and what killed launches left. */
export async function findOrphans(exec: Exec): Promise<Orphan[]> {
  const docker = new Docker(exec);
  const { containers, networks } = await listBottleObjects(docker, { scope: "own" });
  const names = new Set([...containers, ...networks].map((o) => o.labels[LABELS.name] ?? "").filter(Boolean));
  for (const name of stateNames()) names.add(name);
  const orphans: Orphan[] = [];
  for (const name of names) {
    const own = containers.filter((c) => c.labels[LABELS.name] === name);
    const backendName = readPlan(name)?.backend ?? [...own, ...networks].find((o) => o.labels[LABELS.name] === name)?.labels[LABELS.backend];
    const backend = backendOf(backendName);
    const running = own.some((c) => backend.standsFor(c) && c.state === "running");
    if (!isOrphan(name, running)) continue;
    orphans.push({
      name,
      containers: own.map((c) => c.name),
      networks: networks.filter((n) => n.labels[LABELS.name] === name).map((n) => n.name),
      stateDir: existsSync(bottleStateDir(name)),
      ...(backendName ? { backend: backendName } : {}),
    });
  }
  for (const backend of Object.values(BACKENDS)) {
    const leftovers = await backend.leftovers(docker);
    if (leftovers) orphans.push({ name: leftovers.describe, containers: leftovers.containers, networks: leftovers.networks, stateDir: false, leftovers });
  }
  return orphans.sort((a, b) => a.name.localeCompare(b.name));
}

export async function removeOrphans(exec: Exec, orphans: Orphan[]): Promise<void> {
  const docker = new Docker(exec);
  await Promise.all(orphans.map((orphan) => (orphan.leftovers ? orphan.leftovers.remove() : removeBottle(docker, orphan.name, orphan.backend))));
}

/** `bottle fetch NAME`: the running bottle's new commits onto its branch now. */
export async function fetchBottleCommits(exec: Exec, name: string): Promise<BroughtBack | undefined> {
  const { bottle, plan } = await requireRunning(exec, name);
  if (plan.workspace.mode !== "mount" || !plan.workspace.git?.repo)
    throw new BottleError(`${name} has no mounted git repository to bring commits back to`, {
      fix: plan.workspace.mode === "copy" ? "a copy workspace's work is saved when the bottle stops" : "start the bottle from a repository's top level with `workspace: mount`",
    });
  return bringBackCommits(bottle, exec, plan);
}

/** A kept home and the running bottles that use it now. */
export interface HomeRow extends KeptHome {
  usedBy: string[];
}

/** Every home this state dir keeps (`bottle ls --all`), with the running bottles that use it. */
export async function listHomes(exec: Exec): Promise<HomeRow[]> {
  const homes = await keptHomes(new Docker(exec));
  forgetMissing(new Set(homes.map((home) => home.volume)));
  const users = stateNames()
    .map((name) => ({ name, volume: readPlan(name)?.home?.volume }))
    .filter((user): user is { name: string; volume: string } => Boolean(user.volume));
  return homes.map((home) => ({ ...home, usedBy: users.filter((user) => user.volume === home.volume).map((user) => user.name) }));
}

export function formatHomeTable(homes: HomeRow[]): string {
  if (homes.length === 0) return "no kept homes";
  const rows = homes.map((home) => [home.volume, home.agent, home.lastUsed ?? "?", home.usedBy.join(",") || "-", home.workspace]);
  const all = [["HOME", "AGENT", "LAST USED", "IN USE BY", "WORKSPACE"], ...rows];
  const widths = all[0]!.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  return all.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

/** `bottle cleanup --homes`: the kept homes no running bottle uses; removes them when asked. */
export async function unusedHomes(exec: Exec): Promise<HomeRow[]> {
  return (await listHomes(exec)).filter((home) => home.usedBy.length === 0);
}

export async function removeUnusedHomes(exec: Exec, homes: HomeRow[]): Promise<string[]> {
  return removeHomes(new Docker(exec), homes.map((home) => home.volume));
}
