import type { BottleHandle } from "./backends/types.ts";
import { formatSize } from "./bytes.ts";
import { log } from "./log.ts";
import { BUILTIN } from "./manifest/defaults.ts";
import { displayPath, ManifestError, type ManifestIssue } from "./manifest/errors.ts";
import type { ResourceChoice } from "./manifest/types.ts";
import type { Plan } from "./plan.ts";
import { type Capacity, DEFAULT_PIDS, RESOURCE_FIELDS, type ResourceField, type ResourcesPlan } from "./resources-schema.ts";

/**
 * What a bottle may use of the machine (`resources:`): its limits resolved
 * at planning from what the engine has, and, at teardown, the one warning a
 * bottle that ran out of memory gets instead of a silent exit.
 */

type Env = Record<string, string | undefined>;


function cpuCount(cpus: number): string {
  return `${cpus} CPU${cpus === 1 ? "" : "s"}`;
}

/**
 * The bottle's limits: what its files set, checked against the machine,
 * else the defaults: all of its CPUs (the scheduler shares them, so a busy
 * bottle slows the machine but cannot take it down), half its memory (what
 * it lacks, it cannot borrow), 4096 processes. Every problem in one
 * ManifestError naming file, line and field.
 */
export function planResources(choice: ResourceChoice, engine: Capacity, gate: ResourcesPlan["gate"], env: Env = process.env): ResourcesPlan {
  const issues: ManifestIssue[] = [];
  let overEngine = false;
  const problem = (field: ResourceField, message: string) => {
    const at = choice[field]!;
    issues.push({ file: at.file, line: at.line, col: at.col, path: at.path, message });
  };
  const { cpus, memory } = choice;
  for (const field of RESOURCE_FIELDS) if (choice[field] && engine.cannot[field]) problem(field, `${engine.cannot[field]} — remove it`);
  if (cpus && !engine.cannot.cpus && cpus.value > engine.cpus) {
    overEngine = true;
    problem("cpus", `${cpuCount(cpus.value)} is more than ${engine.of} has (${engine.cpus}) — use at most ${engine.cpus}`);
  } else if (cpus && engine.wholeCpus && !Number.isInteger(cpus.value)) problem("cpus", `${engine.wholeCpus} takes whole CPUs — write ${Math.ceil(cpus.value)}`);
  if (memory && !engine.cannot.memory && memory.value > engine.memory) {
    overEngine = true;
    problem("memory", `${formatSize(memory.value)} is more memory than ${engine.of} has (${formatSize(engine.memory)}) — use less`);
  }
  if (issues.length)
    throw new ManifestError(issues.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col), {
      env,
      ...(overEngine ? { fix: `lower it, or give ${engine.of} more (Docker Desktop: Settings → Resources)` } : {}),
    });
  const from = (field: ResourceField, otherwise: string) => {
    const file = choice[field]?.file;
    return file === undefined ? otherwise : file === BUILTIN ? BUILTIN : displayPath(file, env);
  };
  const defaults: Record<ResourceField, { value: number; from: string }> = {
    cpus: { value: engine.cpus, from: `default: all of ${engine.of}'s` },
    memory: { value: Math.floor(engine.memory / 2 / 1024 ** 2) * 1024 ** 2, from: `default: half of ${engine.of}'s ${formatSize(engine.memory)}` },
    pids: { value: DEFAULT_PIDS, from: "default" },
  };
  const limits: Partial<Record<ResourceField, { value: number; from: string }>> = {};
  const notes: string[] = [];
  for (const field of RESOURCE_FIELDS) {
    const why = engine.cannot[field];
    if (why) notes.push(why);
    else limits[field] = { value: choice[field]?.value ?? defaults[field].value, from: from(field, defaults[field].from) };
  }
  if (engine.cannot.swap && limits.memory) notes.push(engine.cannot.swap);
  return { ...limits, noSwap: !engine.cannot.swap, notes, engine: { cpus: engine.cpus, memory: engine.memory, of: engine.of }, gate };
}

/** The preflight's rows: the bottle's limits with where each came from, what it has none of and why, then the gate's. */
export function resourceRows(resources: ResourcesPlan): Array<[string, string]> {
  const { cpus, memory, pids, gate } = resources;
  const bottle = [
    cpus ? `${cpuCount(cpus.value)} (${cpus.from})` : "no CPU limit",
    memory ? `${formatSize(memory.value)} memory${resources.noSwap ? ", no swap" : ""} (${memory.from})` : "no memory limit",
    pids ? `${pids.value} processes (${pids.from})` : "no process limit",
  ];
  const own = [
    ...(gate.cpus ? [cpuCount(gate.cpus)] : []),
    ...(gate.memory ? [`${formatSize(gate.memory)} memory`] : []),
    ...(gate.pids ? [`${gate.pids} processes`] : []),
  ];
  return [
    ["resources", bottle.join(", ")],
    ["", `the gate: ${own.length ? own.join(", ") : "no limits"} (its own)`],
    ...resources.notes.map((note): [string, string] => ["note", note]),
  ];
}

/** The kernel's OOM kill count in cgroup v2's memory.events, v1's memory.oom_control or /proc/vmstat: their `oom_kill N` line. */
export function oomKillCount(text: string): number | undefined {
  const counts = [...text.matchAll(/^oom_kill (\d+)$/gm)].map((match) => Number(match[1]));
  return counts.length ? Math.max(...counts) : undefined;
}

/** Where to raise the memory limit: the file that set it, else the bottle's own file. */
function memoryFix(plan: Plan, from: string, env: Env): string {
  if (!from.startsWith("default")) return `raise resources.memory in ${from}`;
  const file = plan.bottle.sources.at(-1);
  return file && file !== BUILTIN
    ? `set resources.memory in ${displayPath(file, env)} (it has the ${from})`
    : `give it a bottle file with resources.memory (\`bottle init\`; it has the ${from})`;
}

/** The one warning a bottle that ran out of memory gets. */
export function outOfMemoryWarning(plan: Plan, kills: number, env: Env = process.env): string {
  const processes = `${kills} process${kills === 1 ? "" : "es"}`;
  const { memory } = plan.resources;
  if (!memory) return `${plan.name}: the kernel killed ${processes} in it for lack of memory (it has no memory limit: ${plan.resources.engine.of} ran out)`;
  return `${plan.name} was OOM-killed at ${formatSize(memory.value)} (the kernel killed ${processes} in it for lack of memory) — ${memoryFix(plan, memory.from, env)}`;
}

/** Before a bottle goes: say so when the kernel killed any of its processes for lack of memory. Never throws. */
export async function reportOutOfMemory(bottle: BottleHandle, plan: Plan, env: Env = process.env): Promise<void> {
  const kills = await bottle.outOfMemoryKills().catch(() => undefined);
  if (kills) log.warn(outOfMemoryWarning(plan, kills, env));
}
