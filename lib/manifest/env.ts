import { ManifestError, type ManifestIssue } from "./errors.ts";
import type { ResolvedBottle, ResolvedEnvEntry } from "./types.ts";
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

/** What stands between a launch and its values: each problem where it is written, the unset host variables, whether a question cannot be asked. */
export interface ValueIssues {
  issues: ManifestIssue[];
  unset: string[];
  cannotAsk: boolean;
}

/** One error for every problem of every part of a launch (the bottle's env, the gate's credentials), or undefined. */
export function valueIssuesError(parts: readonly ValueIssues[], hostEnv: Env): ManifestError | undefined {
  const issues = parts.flatMap((part) => part.issues);
  if (issues.length === 0) return undefined;
  const unset = [...new Set(parts.flatMap((part) => part.unset))];
  const fixes: string[] = [];
  if (unset.length) fixes.push(`export ${unset.join(", ")} before running bottle`);
  if (parts.some((part) => part.cannotAsk)) fixes.push("run bottle from a terminal, or use ${VAR} for values asked with ?question");
  return new ManifestError(issues, { env: hostEnv, fix: fixes.join("; ") });
}

/** How one kind of value reports what it lacks. */
export interface ValueRules {
  /** An empty host variable counts as unset (a credential must have a value; an env value may be ""). */
  emptyIsUnset: boolean;
  /** The end of the message for a question with no terminal to ask on: how to give the value instead. */
  askFix: (name: string) => string;
}

/** Entries (each with its name and where it is written) that cannot get a value: unset host variables, and questions with no terminal to ask on. */
export function valueIssues(
  entries: Iterable<{ name: string; entry: ResolvedEnvEntry; path: string }>,
  options: Pick<ResolveEnvOptions, "hostEnv" | "interactive">,
  rules: ValueRules,
): ValueIssues {
  const found: ValueIssues = { issues: [], unset: [], cannotAsk: false };
  for (const { name, entry, path } of entries) {
    const where = { file: entry.file, line: entry.line, col: entry.col, path };
    if (entry.source.kind === "host") {
      const value = options.hostEnv[entry.source.variable];
      if (value === undefined || (rules.emptyIsUnset && value === "")) {
        found.unset.push(entry.source.variable);
        const unset = rules.emptyIsUnset ? "is not set (or empty)" : "is not set";
        found.issues.push({ ...where, message: `copies \${${entry.source.variable}} from the host environment, but ${entry.source.variable} ${unset}` });
      }
    } else if (entry.source.kind === "ask" && !options.interactive) {
      found.cannotAsk = true;
      found.issues.push({ ...where, message: `is asked at launch, but there is no terminal to ask on — ${rules.askFix(name)}` });
    }
  }
  return found;
}

/** The bottle's env entries that cannot get a value. */
export function envValueIssues(bottle: Pick<ResolvedBottle, "env">, options: Pick<ResolveEnvOptions, "hostEnv" | "interactive">): ValueIssues {
  const entries = Object.entries(bottle.env).map(([name, entry]) => ({ name, entry, path: `env.${name}` }));
  return valueIssues(entries, options, {
    emptyIsUnset: false,
    askFix: (name) => `set it another way: write \${${name}} to copy it from the host environment, and export ${name} before running bottle`,
  });
}

/**
 * The env values a bottle gets at launch. Every unset host variable and
 * every question that cannot be asked is reported at once, before anything
 * is asked. Errors name variables, never values.
 */
export async function resolveEnvValues(bottle: ResolvedBottle, options: ResolveEnvOptions): Promise<Record<string, string>> {
  const error = valueIssuesError([envValueIssues(bottle, options)], options.hostEnv);
  if (error) throw error;
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

