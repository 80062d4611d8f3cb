import { existsSync } from "node:fs";
import { syncGateLogs } from "./backends/gate.ts";
import { BACKENDS, backendOf } from "./backends/index.ts";
import { forwardedPorts, listBottleObjects } from "./backends/objects.ts";
import type { BottleHandle, BottleRow, Leftovers } from "./backends/types.ts";
import { Docker, dockerFor } from "./docker.ts";
import { findStaleImages, removeStaleImages, type StaleImage } from "./image-cleanup.ts";
import { checkEngineAnswers, type Engine, engineName, listContexts, rememberedEngines, resolveEngine } from "./engine.ts";
import { log } from "./log.ts";
import { BottleError } from "./errors.ts";
import type { Exec } from "./exec.ts";
import { bringBackCommits, bringBackOnTeardown, type BroughtBack } from "./git/bottle-branch.ts";
import { releaseBranch } from "./git/branch-workspace.ts";
import type { BottleBranch } from "./git/registry.ts";
import { type BranchRow, currentRepo, listBranches, type Scan, workOf } from "./git/review.ts";
import { scanCommits } from "./gates/git/scan.ts";
import { removeWorkspaceGitMountPoints } from "./git/workspace-git.ts";
import { forgetMissing, keptHomes, type KeptHome, removeHomes } from "./homes.ts";
import { bottleStateDir } from "./paths.ts";
import { LABELS, type Plan } from "./plan.ts";
import { reportOutOfMemory } from "./resources.ts";
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

/**
 * The engines this state dir has bottles on (each bottle's plan records its
 * own), the local default first; `all`: also every docker context there is.
 */
export async function knownEngines(exec: Exec, options: { all?: boolean } = {}): Promise<Array<Engine | undefined>> {
  const engines = new Map<string, Engine | undefined>([["local", undefined]]);
  for (const engine of rememberedEngines()) engines.set(engineName(engine), engine);
  for (const name of stateNames()) {
    const engine = readPlan(name)?.engine;
    if (engine) engines.set(engineName(engine), engine);
  }
  if (options.all)
    for (const context of await listContexts(exec)) if (!engines.has(context.context ?? "")) engines.set(context.context ?? "", context);
  return [...engines.values()];
}

const firstLine = (error: unknown): string => (error instanceof Error ? error.message.split("\n")[0]! : String(error));

/**
 * Per command (its exec): whether each engine answers, asked once. A command
 * that looks at the engines more than once (cleanup: orphans, images, homes)
 * waits for one that does not, and says so, only the first time.
 */
const answered = new WeakMap<Exec, Map<string, Promise<boolean>>>();

function engineAnswers(exec: Exec, engine: Engine): Promise<boolean> {
  let known = answered.get(exec);
  if (!known) answered.set(exec, (known = new Map()));
  const key = engineName(engine);
  let check = known.get(key);
  if (!check) {
    check = checkEngineAnswers(exec, engine).then(
      () => true,
      (error: unknown) => {
        log.warn(`${firstLine(error)}; what is on it is left out`);
        return false;
      },
    );
    known.set(key, check);
  }
  return check;
}

/** `fn` on each engine that answers; one that does not is said once and skipped, as is one `fn` fails on; the local one's failure is the error. */
async function onEachEngine<T>(
  exec: Exec,
  engines: Array<Engine | undefined>,
  what: string,
  fn: (docker: Docker, engine: Engine | undefined) => Promise<T>,
): Promise<Array<{ engine: Engine | undefined; docker: Docker; value: T }>> {
  const found = await Promise.all(
    engines.map(async (engine) => {
      const docker = dockerFor(exec, engine);
      if (engine && !(await engineAnswers(exec, engine))) return undefined;
      try {
        return { engine, docker, value: await fn(docker, engine) };
      } catch (error) {
        if (!engine) throw error;
        log.warn(`${firstLine(error)}; ${what} are left out`);
        return undefined;
      }
    }),
  );
  return found.filter((entry) => entry !== undefined);
}

/** Each engine's bottle objects (this state dir's); an engine that does not answer is said once and skipped. */
async function objectsByEngine(exec: Exec, engines: Array<Engine | undefined>) {
  const found = await onEachEngine(exec, engines, "its bottles", (docker) => listBottleObjects(docker, { scope: "own" }));
  return found.map(({ engine, docker, value }) => ({ engine, docker, ...value }));
}

/** bottle's unused images on every engine it has run bottles on (`cleanup --images`); `leaving`: containers about to go. */
export async function staleImagesEverywhere(exec: Exec, env: Record<string, string | undefined>, leaving: string[] = []): Promise<StaleImage[]> {
  const found = await onEachEngine(exec, await knownEngines(exec), "its images", (_docker, engine) => findStaleImages(exec, env, leaving, engine));
  return found.flatMap((entry) => entry.value);
}

/** Removes stale images, each on its own engine; returns the ones that are gone. */
export async function removeStaleImagesEverywhere(exec: Exec, images: StaleImage[]): Promise<StaleImage[]> {
  const engines = await knownEngines(exec);
  const removed = await Promise.all(engines.map((engine) => removeStaleImages(exec, images.filter((image) => image.engine === engineName(engine)), engine)));
  return removed.flat();
}

export async function listBottles(exec: Exec, options: { allContexts?: boolean } = {}): Promise<BottleRow[]> {
  const perEngine = await objectsByEngine(exec, await knownEngines(exec, { all: options.allContexts }));
  const rows = await Promise.all(
    perEngine.flatMap(({ engine, containers }) =>
      Object.values(BACKENDS).map(async (backend) =>
        (await backend.rows(exec, containers.filter((c) => backendOf(c.labels[LABELS.backend]) === backend && backend.standsFor(c)), process.env)).map((row) => ({
          ...row,
          engine: engineName(engine),
        })),
      ),
    ),
  );
  const sorted = rows.flat().sort((a, b) => a.name.localeCompare(b.name));
  // Each bottle's ports, from its relays (already listed: they carry its name).
  const containers = perEngine.flatMap((entry) => entry.containers);
  for (const row of sorted) row.ports = forwardedPorts(containers, row.name).map(formatOpenPort);
  // Each running bottle's session, from its processes (docker top: no exec inside), all at once.
  await Promise.all(
    sorted.map(async (row) => {
      const plan = readPlan(row.name);
      if (!plan || row.status !== "running") return;
      try {
        const processes = await backendOf(plan.backend).handle(dockerFor(exec, plan.engine), plan, process.env).processes();
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
  const header: BottleRow = { name: "NAME", agent: "AGENT", backend: "BACKEND", status: "STATUS", session: "CLAUDE", createdAt: "", age: "AGE", ports: [], workspace: "WORKSPACE", engine: "ENGINE" };
  const cells = [header, ...rows].map((row) => ({ ...row, ports: row === header ? "PORTS" : row.ports.join(",") || "-", engine: row.engine ?? "local" }));
  // The ports column only when a bottle forwards one; the engine column only once a bottle runs somewhere else.
  const keys = (["name", "agent", "backend", "engine", "status", "session", "age", "ports", "workspace"] as const).filter(
    (key) => (key !== "ports" || rows.some((row) => row.ports.length)) && (key !== "engine" || rows.some((row) => row.engine && row.engine !== "local")),
  );
  const widths = keys.map((key) => Math.max(...cells.map((row) => row[key].length)));
  return cells.map((row) => keys.map((key, i) => row[key].padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

/** The running bottle's handle, or undefined; its backend is the one its state (or labels) name. */
async function runningBottle(docker: Docker, name: string, plan: Plan | undefined): Promise<BottleHandle | undefined> {
  if (plan) return backendOf(plan.backend).open(docker, plan, name, process.env);
  const inspect = await docker.containerInspect(name);
  return backendOf(inspect?.Config.Labels?.[LABELS.backend]).open(docker, undefined, name, process.env);
}

/** A running bottle and its plan, or an error naming the bottles that do run. */
export async function requireRunning(exec: Exec, name: string): Promise<{ bottle: BottleHandle; plan: Plan }> {
  const plan = readPlan(name);
  const docker = dockerFor(exec, plan?.engine);
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
 * Whether it ran out of memory and the bottle's commits first (a mounted
 * workspace's, while the bottle still runs), then whatever its backend holds
 * (a VM), the docker objects, the state dir, and the mount points the launch
 * made in the workspace.
 */
async function removeBottle(docker: Docker, name: string, backendName: string | undefined): Promise<void> {
  const plan = readPlan(name);
  const backend = backendOf(plan?.backend ?? backendName);
  // Asked of a stopped bottle too: it may have stopped for lack of memory.
  const outOfMemory = plan ? reportOutOfMemory(backend.handle(docker, plan, process.env), plan) : undefined;
  if (plan?.workspace.git) {
    const running = await backend.open(docker, plan, name, process.env).catch(() => undefined);
    if (running) await bringBackOnTeardown(running, docker.exec, plan);
    await releaseBranch(docker.exec, plan);
  }
  await outOfMemory;
  if (plan) await syncGateLogs(docker, plan);
  await backend.remove(docker, name, plan, process.env);
  if (plan?.workspace.git) removeWorkspaceGitMountPoints(plan.workspace.git);
}

/** `forget`: also remove each bottle's kept home (its conversations go with it). */
export async function downBottles(exec: Exec, names: string[] | undefined, options: { forget?: boolean } = {}): Promise<string[]> {
  const perEngine = await objectsByEngine(exec, await knownEngines(exec));
  const objects = perEngine.flatMap(({ containers, networks }) => [...containers, ...networks]);
  const known = new Set(objects.map((o) => o.labels[LABELS.name] ?? "").filter(Boolean));
  const targets = names ?? [...known];
  for (const name of targets)
    if (!known.has(name) && !existsSync(bottleStateDir(name)))
      throw new BottleError(`no bottle named ${name}${didYouMean(name, known)}`, { fix: "see `bottle ls`" });
  const backendLabel = (name: string) => objects.find((o) => o.labels[LABELS.name] === name)?.labels[LABELS.backend];
  // Each on the engine it was started on (its plan says), with its kept home there.
  await Promise.all(
    targets.map(async (name) => {
      const plan = readPlan(name);
      const docker = dockerFor(exec, plan?.engine);
      await removeBottle(docker, name, backendLabel(name));
      if (options.forget && plan?.home) await removeHomes(docker, [plan.home.volume]);
    }),
  );
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
  const perEngine = await objectsByEngine(exec, await knownEngines(exec));
  const containers = perEngine.flatMap((entry) => entry.containers);
  const networks = perEngine.flatMap((entry) => entry.networks);
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
  await Promise.all(
    orphans.map((orphan) => (orphan.leftovers ? orphan.leftovers.remove() : removeBottle(dockerFor(exec, readPlan(orphan.name)?.engine), orphan.name, orphan.backend))),
  );
}

/** `bottle fetch NAME`: the running bottle's new commits onto its branch now. */
export async function fetchBottleCommits(exec: Exec, name: string): Promise<BroughtBack | undefined> {
  const { bottle, plan } = await requireRunning(exec, name);
  if (!plan.workspace.git?.repo)
    throw new BottleError(`${name} has no git repository to bring commits back to`, {
      fix: "start the bottle from a repository's top level (workspace: mount, copy or branch)",
    });
  return bringBackCommits(bottle, exec, plan);
}

/**
 * The bottle branch `name` names in the repository at `cwd` (by bottle or
 * branch name), with a running bottle's newest commits brought onto it first,
 * so the verbs see its work as it stands (files it has not committed aside).
 */
export async function bottleWork(exec: Exec, cwd: string, name: string): Promise<BottleBranch> {
  const repo = await currentRepo(exec, cwd);
  const plan = readPlan(name);
  if (plan?.workspace.git?.repo === repo) {
    const running = await runningBottle(dockerFor(exec, plan.engine), name, plan).catch(() => undefined);
    if (running) await bringBackCommits(running, exec, plan);
  }
  return workOf(repo, name);
}

/** `bottle branches`: this repository's bottle branches, each with whether its bottle still runs. */
export async function repositoryBranches(exec: Exec, cwd: string): Promise<BranchRow[]> {
  const repo = await currentRepo(exec, cwd);
  const running = new Set((await listBottles(exec)).map((row) => row.name));
  return listBranches(exec, repo, running);
}

/** The git gate's secret scan, for merge and apply, on the engine the Docker CLI's rules choose (a remote one gets the repository as a bundle). */
export function gateScan(exec: Exec, env: Record<string, string | undefined> = process.env): Scan {
  return async (gitDir, tip, exclude) => {
    const engine = await resolveEngine(exec, undefined, env);
    return scanCommits(dockerFor(exec, engine), gitDir, tip, exclude, engine.remote, env);
  };
}

/** A kept home and the running bottles that use it now. */
export interface HomeRow extends KeptHome {
  usedBy: string[];
  /** The engine it is on ("local", or a context's name / DOCKER_HOST). */
  engine: string;
}

/** Every home this state dir keeps (`bottle ls --all`), on every engine it knows, with the running bottles that use it. */
export async function listHomes(exec: Exec): Promise<HomeRow[]> {
  const perEngine = await objectsByEngine(exec, await knownEngines(exec));
  const homes = (await Promise.all(perEngine.map(async ({ engine, docker }) => (await keptHomes(docker)).map((home) => ({ ...home, engine: engineName(engine) }))))).flat();
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
  const engines = new Map((await knownEngines(exec)).map((engine) => [engineName(engine), engine]));
  const byEngine = Map.groupBy(homes, (home) => home.engine);
  const removed = await Promise.all([...byEngine].map(([name, list]) => removeHomes(dockerFor(exec, engines.get(name)), list.map((home) => home.volume))));
  return removed.flat();
}
