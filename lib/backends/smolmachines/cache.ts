import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import { BottleError } from "../../errors.ts";
import { cacheDir } from "../../paths.ts";

/**
 * The `.smolmachine` cache: `<cache dir>/smolmachines/<key>.smolmachine`,
 * keyed by the docker image ID, so an unchanged image skips the whole
 * save → registry → crane → pack pipeline. Entries appear only by an atomic
 * rename from a staging dir in the same directory: a crash never leaves a
 * half-written file under a name that counts as a hit.
 */

type Env = Record<string, string | undefined>;

export const SMOLMACHINE_EXTENSION = ".smolmachine";
/** Staging dirs (tarball, pack output) live beside the entries so the final rename stays on one filesystem. */
export const STAGING_PREFIX = ".staging-";

export function smolmachinesDir(env: Env = process.env): string {
  return join(cacheDir(env), "smolmachines");
}

/** The first 16 hex characters of a docker image ID (`sha256:…`). */
export function cacheKey(imageId: string): string {
  const match = /^(?:sha256:)?([0-9a-f]{64})$/.exec(imageId.trim());
  if (!match) throw new BottleError(`unexpected docker image ID "${imageId}"`, { fix: "run `bottle doctor`; the docker engine returned an ID that is not a sha256 digest" });
  return match[1]!.slice(0, 16);
}

export function smolmachinePath(key: string, env: Env = process.env): string {
  return join(smolmachinesDir(env), `${key}${SMOLMACHINE_EXTENSION}`);
}

export function stagingDirFor(session: string, env: Env = process.env): string {
  return join(smolmachinesDir(env), `${STAGING_PREFIX}${session}`);
}

/** A hit is a non-empty regular file under the final name. */
export function isCached(key: string, env: Env = process.env): boolean {
  try {
    const stat = statSync(smolmachinePath(key, env));
    return stat.isFile() && stat.size > 0;
  } catch {
    return false;
  }
}

/**
 * Move a finished `.smolmachine` to its cache name: fsync, then one rename
 * within the cache dir (atomic on POSIX), replacing any previous entry.
 */
export function commitCacheEntry(source: string, destination: string): number {
  let size: number;
  try {
    const stat = statSync(source);
    if (!stat.isFile() || stat.size === 0) throw new Error("empty or not a regular file");
    size = stat.size;
  } catch (error) {
    throw new BottleError(`the pack step did not produce ${source}`, {
      fix: "run with --verbose to see the `smolvm pack create` output",
      details: String(error),
    });
  }
  const fd = openSync(source, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  mkdirSync(join(destination, ".."), { recursive: true });
  renameSync(source, destination);
  return size;
}

export interface CacheEntry {
  key: string;
  path: string;
  size: number;
  modified: Date;
}

/** Committed entries (for doctor / cleanup); staging dirs are not entries. */
export function listSmolmachineCache(env: Env = process.env): CacheEntry[] {
  const dir = smolmachinesDir(env);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const entries: CacheEntry[] = [];
  for (const name of names) {
    const match = /^([0-9a-f]{16})\.smolmachine$/.exec(name);
    if (!match) continue;
    try {
      const stat = statSync(join(dir, name));
      if (stat.isFile()) entries.push({ key: match[1]!, path: join(dir, name), size: stat.size, modified: stat.mtime });
    } catch {
      // Removed meanwhile.
    }
  }
  return entries.sort((a, b) => a.key.localeCompare(b.key));
}
