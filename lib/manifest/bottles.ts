import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { BottleError } from "../errors.ts";
import { userBottlesDir } from "../paths.ts";
import { didYouMean } from "../suggest.ts";
import { BUILTIN, DEFAULT_NAME, builtinBottle } from "./defaults.ts";
import { ManifestError, displayPath, formatPath, type ManifestIssue } from "./errors.ts";
import { loadBottleFile, type LoadResult } from "./load.ts";
import { mergeLayers, type BottleLayer } from "./merge.ts";
import { NAME_PATTERN, type BottleFileManifest } from "./schema.ts";
import type { ResolvedBottle } from "./types.ts";
import type { Position } from "./yaml-positions.ts";

type Env = Record<string, string | undefined>;

/** Where a bottle name was asked for (an agent's `bottle:`), for errors. */
export interface BottleRequester extends Position {
  file: string;
  path: string;
}

export function bottleFile(name: string, env: Env = process.env): string {
  return join(userBottlesDir(env), `${name}.yaml`);
}

/** Names of the user's bottles (file names only; nothing is parsed), plus `default`. */
export function listBottleNames(env: Env = process.env): string[] {
  const names = new Set<string>();
  try {
    for (const entry of readdirSync(userBottlesDir(env))) {
      if (entry.endsWith(".yaml") && NAME_PATTERN.test(entry.slice(0, -5))) names.add(entry.slice(0, -5));
    }
  } catch {
    // no bottles dir: only the built-in default exists
  }
  names.add(DEFAULT_NAME);
  return [...names].sort();
}

function missingHint(name: string, env: Env): string {
  const yml = join(userBottlesDir(env), `${name}.yml`);
  if (existsSync(yml)) return ` — found ${displayPath(yml, env)}; bottles end in .yaml, rename it`;
  return didYouMean(name, listBottleNames(env), (s) => `"${s}"`);
}

/** `extends` of a file that failed validation, when it is well-formed itself. */
function rawExtends(raw: unknown): string | string[] | undefined {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return undefined;
  const value = (raw as Record<string, unknown>).extends;
  const valid = (name: unknown): name is string => typeof name === "string" && NAME_PATTERN.test(name);
  if (valid(value)) return value;
  if (Array.isArray(value) && value.every(valid)) return value;
  return undefined;
}

/**
 * Resolve a bottle by name: read its file and its `extends` chain (only
 * those files), merge, and make paths absolute. The built-in default stands
 * in for `default` when the user has no default.yaml. Every problem in every
 * file of the chain is reported in one ManifestError.
 */
export function resolveBottle(name: string, options: { env?: Env; requester?: BottleRequester } = {}): ResolvedBottle {
  const env = options.env ?? process.env;
  const dir = displayPath(userBottlesDir(env), env);
  if (!NAME_PATTERN.test(name)) {
    throw new BottleError(`"${name}" is not a valid bottle name — use lower-case letters, digits and -, starting with a letter`);
  }
  if (!options.requester && name !== DEFAULT_NAME && !existsSync(bottleFile(name, env))) {
    throw new BottleError(`no bottle named "${name}" in ${dir}/; bottles: ${listBottleNames(env).join(", ")}${missingHint(name, env)}`, {
      fix: `create ${dir}/${name}.yaml (bottle init --bottle ${name}), or pick one of the bottles above`,
    });
  }

  const issues: ManifestIssue[] = [];
  const loaded = new Map<string, LoadResult<BottleFileManifest>>();
  const layers: BottleLayer[] = [];
  const included = new Set<string>();
  let missing: string | undefined;

  const walk = (current: string, chain: string[], from: BottleRequester | undefined): void => {
    if (chain.includes(current)) {
      const cycle = [...chain.slice(chain.indexOf(current)), current].join(" → ");
      const message = chain.length === 1 ? `bottle "${current}" extends itself (${cycle})` : `extends cycle: ${cycle}`;
      if (from) issues.push({ ...from, message });
      return;
    }
    const file = bottleFile(current, env);
    if (!existsSync(file)) {
      if (current === DEFAULT_NAME) {
        if (!included.has(current)) {
          included.add(current);
          layers.push({ file: BUILTIN, value: {}, locate: () => ({ line: 0, col: 0 }) });
        }
        return;
      }
      missing ??= current;
      const via = chain.length ? ` (${[...chain, current].join(" → ")})` : "";
      const message = `no bottle named "${current}" in ${dir}/${via}${missingHint(current, env)}`;
      if (from) issues.push({ ...from, message });
      return;
    }
    let result = loaded.get(current);
    if (!result) {
      result = loadBottleFile(file);
      loaded.set(current, result);
      if (!result.ok) issues.push(...result.issues);
    }
    // Follow `extends` even from a broken file, so the errors of the whole chain come at once.
    const extendsValue = result.ok ? result.loaded.value.extends : rawExtends(result.raw);
    const locate = result.ok ? result.loaded.locate : result.locate;
    const parents = extendsValue === undefined ? [] : typeof extendsValue === "string" ? [extendsValue] : extendsValue;
    parents.forEach((parent, index) => {
      const segments = typeof extendsValue === "string" ? ["extends"] : ["extends", index];
      const position = locate ? locate(segments) : { line: 0, col: 0 };
      walk(parent, [...chain, current], { file, ...position, path: formatPath(segments) });
    });
    if (!result.ok) return;
    const { value } = result.loaded;
    if (!included.has(current)) {
      included.add(current);
      layers.push({ file, value, locate: result.loaded.locate });
    }
  };
  walk(name, [], options.requester);

  if (issues.length > 0) {
    const fix = missing ? `create ${dir}/${missing}.yaml or fix the name; bottles: ${listBottleNames(env).join(", ")}` : undefined;
    throw new ManifestError(issues, { env, ...(fix ? { fix } : {}) });
  }
  if (layers.length === 1 && layers[0]!.file === BUILTIN) return { ...builtinBottle(), name };
  return mergeLayers(name, layers, env);
}
