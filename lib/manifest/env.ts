import { ManifestError, type ManifestIssue } from "./errors.ts";
import type { ResolvedBottle } from "./types.ts";
import { askHidden } from "../prompt.ts";

export type { EnvSource } from "./env-value.ts";

type Env = Record<string, string | undefined>;

export interface ResolveEnvOptions {
  hostEnv: Env;
  /** Ask a question without echo; defaults to reading the terminal in raw mode. */
  ask?: (question: string, name: string) => Promise<string>;
  /** Whether questions may be asked (a TTY is attached). */
  interactive: boolean;
}

/**
 * The env values a bottle gets at launch. Every unset host variable and
 * every question that cannot be asked is reported at once, before anything
 * is asked. Errors name variables, never values.
 */
export async function resolveEnvValues(bottle: ResolvedBottle, options: ResolveEnvOptions): Promise<Record<string, string>> {
  const issues: ManifestIssue[] = [];
  const unset: string[] = [];
  let cannotAsk = false;
  for (const [name, entry] of Object.entries(bottle.env)) {
    const where = { file: entry.file, line: entry.line, col: entry.col, path: `env.${name}` };
    if (entry.source.kind === "host") {
      if (options.hostEnv[entry.source.variable] === undefined) {
        unset.push(entry.source.variable);
        issues.push({ ...where, message: `copies \${${entry.source.variable}} from the host environment, but ${entry.source.variable} is not set` });
      }
    } else if (entry.source.kind === "ask" && !options.interactive) {
      cannotAsk = true;
      issues.push({
        ...where,
        message: `is asked at launch, but there is no terminal to ask on — set it another way: write \${${name}} to copy it from the host environment, and export ${name} before running bottle`,
      });
    }
  }
  if (issues.length > 0) {
    const fixes: string[] = [];
    if (unset.length) fixes.push(`export ${[...new Set(unset)].join(", ")} before running bottle`);
    if (cannotAsk) fixes.push("run bottle from a terminal, or use ${VAR} for values asked with ?question");
    throw new ManifestError(issues, { env: options.hostEnv, fix: fixes.join("; ") });
  }
  const ask = options.ask ?? askHidden;
  const values: Record<string, string> = {};
  for (const [name, entry] of Object.entries(bottle.env)) {
    const source = entry.source;
    if (source.kind === "literal") values[name] = source.value;
    else if (source.kind === "host") values[name] = options.hostEnv[source.variable] ?? "";
    else values[name] = await ask(source.question || name, name);
  }
  return values;
}

