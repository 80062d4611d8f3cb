import type { ArgDef, ArgsDef, CommandDef } from "citty";
import { BottleError } from "./errors.ts";
import { didYouMean } from "./suggest.ts";

/**
 * Argument handling citty leaves to us: splitting pass-through args at `--`,
 * global verbosity flags, and refusing unknown commands and flags.
 */

export const GLOBAL_FLAGS = ["--verbose", "--quiet", "-q"] as const;

export interface SplitArgs {
  own: string[];
  passthrough: string[];
  verbosity: "quiet" | "normal" | "verbose";
}

export function splitArgs(argv: string[]): SplitArgs {
  const dashes = argv.indexOf("--");
  const own = dashes === -1 ? argv : argv.slice(0, dashes);
  const passthrough = dashes === -1 ? [] : argv.slice(dashes + 1);
  let verbosity: SplitArgs["verbosity"] = "normal";
  const kept: string[] = [];
  for (const arg of own) {
    if (arg === "--verbose") verbosity = "verbose";
    else if (arg === "--quiet" || arg === "-q") verbosity = "quiet";
    else kept.push(arg);
  }
  return { own: kept, passthrough, verbosity };
}

async function resolve<T>(value: T | Promise<T> | (() => T) | (() => Promise<T>) | undefined): Promise<T | undefined> {
  return typeof value === "function" ? await (value as () => T | Promise<T>)() : await value;
}

function aliases(def: ArgDef): string[] {
  if (def.type === "positional" || !("alias" in def) || !def.alias) return [];
  return Array.isArray(def.alias) ? def.alias : [def.alias];
}

function flagNames(args: ArgsDef): Set<string> {
  const names = new Set<string>(["--help", "-h"]);
  for (const [name, def] of Object.entries(args)) {
    if (def.type === "positional") continue;
    const all = [name, ...aliases(def)];
    for (const n of all) {
      names.add(n.length === 1 ? `-${n}` : `--${n}`);
      if (def.type === "boolean") names.add(`--no-${n}`);
    }
  }
  return names;
}

export interface ResolvedCommand {
  path: string[];
  command: CommandDef;
}

/**
 * Walk the command tree the way citty will, and fail on an unknown command
 * or flag with a hint, before anything runs.
 */
export async function checkCommandLine(root: CommandDef, argv: string[]): Promise<ResolvedCommand> {
  let command = root;
  const path: string[] = [];
  let rest = argv;
  for (;;) {
    const subCommands = await resolve(command.subCommands);
    const args = (await resolve(command.args)) ?? {};
    const known = flagNames(args);
    const positionalDefs = Object.values(args).filter((def) => def.type === "positional");
    // A positional whose valueHint ends in "…" takes any number of values (`bottle down NAME…`).
    const positionals = positionalDefs.some((def) => def.valueHint?.endsWith("…")) ? Infinity : positionalDefs.length;
    let seenPositionals = 0;
    let next: { name: string; index: number } | undefined;
    for (let i = 0; i < rest.length; i++) {
      const arg = rest[i]!;
      if (arg.startsWith("-") && arg !== "-") {
        const flag = arg.split("=")[0]!;
        if (/^-[a-zA-Z]{2,}$/.test(flag)) continue; // short flag bundle, citty expands it
        if (!known.has(flag)) {
          const where = path.length ? `bottle ${path.join(" ")}` : "bottle";
          throw new BottleError(`unknown flag ${flag} for ${where}${didYouMean(flag, known)}`, {
            fix: `run \`${where} --help\` to see its flags`,
            exitCode: 2,
          });
        }
        const def = args[flag.replace(/^-+(no-)?/, "")] ?? Object.values(args).find((d) => aliases(d).includes(flag.replace(/^-+/, "")));
        if (def && def.type !== "boolean" && !arg.includes("=")) i++; // skip the flag's value
        continue;
      }
      if (subCommands && Object.keys(subCommands).length && !next) {
        next = { name: arg, index: i };
        break;
      }
      seenPositionals++;
    }
    if (next && subCommands) {
      const sub = await resolve(subCommands[next.name]);
      if (!sub) {
        throw new BottleError(`unknown command "${next.name}"${didYouMean(next.name, Object.keys(subCommands), (s) => `\`bottle ${s}\``)}`, {
          fix: "run `bottle --help` to list the commands",
          exitCode: 2,
        });
      }
      path.push(next.name);
      command = sub;
      rest = rest.slice(next.index + 1);
      continue;
    }
    if (seenPositionals > positionals) {
      const where = path.length ? `bottle ${path.join(" ")}` : "bottle";
      throw new BottleError(`too many arguments for ${where}`, { fix: `run \`${where} --help\`; pass a command after \`--\``, exitCode: 2 });
    }
    return { path, command };
  }
}
