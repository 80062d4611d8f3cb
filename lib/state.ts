import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BottleError } from "./errors.ts";
import { bottleStateDir, stateDir } from "./paths.ts";
import { parsePlan, type Plan } from "./plan.ts";

/**
 * One state dir per running bottle (plan without secrets, owner, gate logs),
 * removed on a clean teardown. Creating it is also how a launch claims its
 * name: `mkdir` is atomic, so parallel launches never pick the same one.
 */

export const MAX_SUFFIX = 99;

export interface Owner {
  pid: number;
  detach: boolean;
  startedAt: string;
}

export function candidateNames(base: string): string[] {
  return [base, ...Array.from({ length: MAX_SUFFIX - 1 }, (_, i) => `${base}-${i + 2}`)];
}

/** The first name not claimed on disk and not used by docker. */
export function peekName(base: string, taken: Set<string>): string {
  const name = candidateNames(base).find((candidate) => !taken.has(candidate) && !existsSync(bottleStateDir(candidate)));
  if (!name) throw tooManyBottles(base);
  return name;
}

function tooManyBottles(base: string): BottleError {
  return new BottleError(`${MAX_SUFFIX} bottles named ${base} already exist`, {
    fix: "stop some with `bottle down NAME` or `bottle cleanup`, or pick another base with --name",
  });
}

/** Claim a name by creating its state dir; skips names docker already uses. */
export function claimName(base: string, taken: Set<string>, skip: Set<string> = new Set()): string {
  mkdirSync(join(stateDir(), "bottles"), { recursive: true });
  // Gate logs inside are world-writable (see launchDocker); the root keeps others out.
  chmodSync(stateDir(), 0o700);
  for (const candidate of candidateNames(base)) {
    if (taken.has(candidate) || skip.has(candidate)) continue;
    try {
      mkdirSync(bottleStateDir(candidate));
      return candidate;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  }
  throw tooManyBottles(base);
}

export function writeState(plan: Plan, owner: Owner): void {
  const dir = bottleStateDir(plan.name);
  mkdirSync(join(dir, "logs"), { recursive: true });
  writeFileSync(join(dir, "plan.json"), `${JSON.stringify(plan, null, 2)}\n`, { mode: 0o600 });
  writeFileSync(join(dir, "owner.json"), `${JSON.stringify(owner)}\n`, { mode: 0o600 });
}

/** The launch left its bottle running (its terminal detached): `cleanup` must not count it an orphan while it runs. */
export function markDetached(name: string): void {
  const owner = readOwner(name);
  if (owner) writeFileSync(join(bottleStateDir(name), "owner.json"), `${JSON.stringify({ ...owner, detach: true })}\n`, { mode: 0o600 });
}

export function readPlan(name: string): Plan | undefined {
  try {
    return parsePlan(JSON.parse(readFileSync(join(bottleStateDir(name), "plan.json"), "utf8")));
  } catch {
    return undefined;
  }
}

export function readOwner(name: string): Owner | undefined {
  try {
    return JSON.parse(readFileSync(join(bottleStateDir(name), "owner.json"), "utf8")) as Owner;
  } catch {
    return undefined;
  }
}

export function removeState(name: string): void {
  rmSync(bottleStateDir(name), { recursive: true, force: true });
}

export function stateNames(): string[] {
  try {
    return readdirSync(join(stateDir(), "bottles"));
  } catch {
    return [];
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function auditLogPath(name: string, gate: string): string {
  return join(bottleStateDir(name), "logs", `${gate}.jsonl`);
}

/** Is a launch's owner gone (SIGKILLed) while its objects remain, or a detached bottle no longer running? */
export function isOrphan(name: string, running: boolean): boolean {
  const owner = readOwner(name);
  if (!owner) return true;
  if (owner.detach) return !running;
  return !processAlive(owner.pid);
}
