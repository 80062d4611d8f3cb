import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AGENT_HOME } from "./agent-user.ts";
import type { Docker, VolumeSummary } from "./docker.ts";
import { BottleError } from "./errors.ts";
import { stateDir } from "./paths.ts";
import { LABELS } from "./plan.ts";

/**
 * Claude's home: the agent's ~/.claude (conversations, todos, the memory it
 * wrote, its shell history) in a docker volume per workspace and agent, kept
 * across `down`, so a later `bottle up --continue` in the same workspace
 * picks the conversation up. It never holds a credential: the bottle only
 * ever has placeholders. Labelled like every other bottle object;
 * `bottle down --forget` and `bottle cleanup --homes` remove it.
 */

export const CLAUDE_HOME = `${AGENT_HOME}/.claude`;
/** What a home's contents look like; a volume labelled otherwise was made by another bottle version. */
export const HOME_FORMAT = "1";
export const HOME_LABELS = { home: "bottle.home", format: "bottle.home-format" } as const;

/** A home as `bottle ls --all` lists it. */
export interface KeptHome {
  volume: string;
  workspace: string;
  agent: string;
  /** When a bottle last started with it (ISO), if this state dir saw it. */
  lastUsed?: string;
}

/** One volume per launching user, workspace and agent. */
export function homeVolumeName(workspace: string, agent: string, state: string = stateDir()): string {
  return `bottle-home-${createHash("sha256").update(`${state}\0${workspace}\0${agent}`).digest("hex").slice(0, 16)}`;
}

export function homeLabels(workspace: string, agent: string): Record<string, string> {
  return {
    [HOME_LABELS.home]: "1",
    [HOME_LABELS.format]: HOME_FORMAT,
    [LABELS.agent]: agent,
    [LABELS.workspace]: workspace,
    [LABELS.state]: stateDir(),
  };
}

/** This state dir's homes. */
export async function listHomeVolumes(docker: Docker): Promise<VolumeSummary[]> {
  return docker.volumeLs([`label=${HOME_LABELS.home}`, `label=${LABELS.state}=${stateDir()}`]);
}

/** A kept home another bottle version made is refused, never reused with contents it does not understand. */
export function checkHomeFormat(volume: VolumeSummary | undefined): void {
  if (!volume) return;
  const format = volume.labels[HOME_LABELS.format];
  if (format === HOME_FORMAT) return;
  throw new BottleError(`the kept home ${volume.name} was made by another version of bottle (home format ${format ?? "unknown"}, this one reads ${HOME_FORMAT})`, {
    fix: `remove it with \`docker volume rm ${volume.name}\` (or \`bottle cleanup --homes\`); its conversations go with it`,
  });
}

function lastUseFile(volume: string): string {
  return join(stateDir(), "homes", volume);
}

/** Records that a bottle started with the home now. */
export function touchHome(volume: string, at = new Date()): void {
  mkdirSync(join(stateDir(), "homes"), { recursive: true });
  writeFileSync(lastUseFile(volume), `${at.toISOString()}\n`);
}

function lastUse(volume: string): string | undefined {
  try {
    return readFileSync(lastUseFile(volume), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

export async function keptHomes(docker: Docker): Promise<KeptHome[]> {
  return (await listHomeVolumes(docker))
    .map((volume) => {
      const used = lastUse(volume.name);
      return {
        volume: volume.name,
        workspace: volume.labels[LABELS.workspace] ?? "?",
        agent: volume.labels[LABELS.agent] ?? "?",
        ...(used ? { lastUsed: used } : {}),
      };
    })
    .sort((a, b) => (b.lastUsed ?? "").localeCompare(a.lastUsed ?? ""));
}

/** Removes homes (a home still mounted by a bottle is left: docker refuses). Returns the ones removed. */
export async function removeHomes(docker: Docker, volumes: string[]): Promise<string[]> {
  await docker.volumeRm(volumes);
  const left = new Set((await listHomeVolumes(docker)).map((volume) => volume.name));
  const removed = volumes.filter((volume) => !left.has(volume));
  for (const volume of removed) rmSync(lastUseFile(volume), { force: true });
  return removed;
}

/** Last-use records whose volume is gone (removed by hand), cleaned so they do not linger. */
export function forgetMissing(present: Set<string>): void {
  let names: string[] = [];
  try {
    names = readdirSync(join(stateDir(), "homes"));
  } catch {
    return;
  }
  for (const name of names) if (!present.has(name)) rmSync(lastUseFile(name), { force: true });
}
