import type { CommandDef } from "citty";
import { BottleError } from "../errors.ts";
import { didYouMean } from "../suggest.ts";
import { type CommandNode, commandNode, type FlagSpec, flagSpellings } from "./tree.ts";

/**
 * Argument handling citty leaves to us: splitting pass-through args at `--`,
 * global verbosity flags, and refusing unknown commands, unknown flags and
 * wrong numbers of arguments — all usage errors: exit code 2, one line, a fix.
 */

export interface SplitArgs {
  own: string[];
  passthrough: string[];
  verbosity: "quiet" | "normal" | "verbose";
}

/** Flags whose value may be left out (`--branch`, `--resume`: then "", the command's default). */
const OPTIONAL_VALUE = new Set(["--branch", "--resume"]);

export function splitArgs(argv: string[]): SplitArgs {
  const dashes = argv.indexOf("--");
  const own = dashes === -1 ? argv : argv.slice(0, dashes);
  const passthrough = dashes === -1 ? [] : argv.slice(dashes + 1);
  let verbosity: SplitArgs["verbosity"] = "normal";
  const kept: string[] = [];
  own.forEach((arg, index) => {
    if (arg === "--verbose") verbosity = "verbose";
    else if (arg === "--quiet" || arg === "-q") verbosity = "quiet";
    // Without a value before the next flag (or the end), it gets an empty one rather than the next flag as its value.
    else if (OPTIONAL_VALUE.has(arg) && (index + 1 >= own.length || own[index + 1]!.startsWith("-"))) kept.push(`${arg}=`);
    else kept.push(arg);
  });
  return { own: kept, passthrough, verbosity };
}

export interface ResolvedCommand {
  path: string[];
  command: CommandDef;
}

/** A usage error: exit code 2, the command line's fault, with how to get it right. */
export function usageError(message: string, fix: string): BottleError {
  return new BottleError(message, { fix, exitCode: 2 });
}

/**
 * Every value of a repeatable string flag, `--preset a --preset b,c` or
 * `--preset=a` (citty keeps only the last): each once, in order.
 */
export function flagValues(rawArgs: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    let value: string | undefined;
    if (arg.startsWith(`--${name}=`)) value = arg.slice(name.length + 3);
    else if (arg === `--${name}`) {
      value = rawArgs[++i];
      if (value === undefined || value.startsWith("-")) throw usageError(`--${name} needs a value`, `write --${name} VALUE (repeat it, or give a comma-separated list)`);
    } else continue;
    values.push(...value.split(",").map((part) => part.trim()));
  }
  if (values.includes("")) throw usageError(`--${name} has an empty value`, `write --${name} VALUE (repeat it, or give a comma-separated list)`);
  return [...new Set(values)];
}

function where(node: CommandNode): string {
  return ["bottle", ...node.path].join(" ");
}

function findFlag(node: CommandNode, spelling: string): FlagSpec | undefined {
  return node.flags.find((flag) => flagSpellings(flag).includes(spelling));
}

/**
 * Walk the command tree the way citty will, and fail on an unknown command
 * or flag, or a wrong number of arguments, with a hint, before anything runs.
 * A required positional may be missing when --help is asked for.
 */
/** String flags read with flagValues, every value of them: given twice is meant. */
const REPEATABLE = new Set(["preset"]);

export async function checkCommandLine(root: CommandDef, argv: string[]): Promise<ResolvedCommand> {
  let node = await commandNode(root);
  let rest = argv;
  const help = argv.includes("--help") || argv.includes("-h");
  for (;;) {
    let positionals = 0;
    let next: { name: string; index: number } | undefined;
    // citty keeps only the last value of a flag given twice: the first would be ignored.
    const given = new Set<string>();
    for (let i = 0; i < rest.length; i++) {
      const arg = rest[i]!;
      if (arg.startsWith("-") && arg !== "-") {
        const spelling = arg.split("=")[0]!;
        if (/^-[a-zA-Z]{2,}$/.test(spelling)) continue; // short flag bundle, citty expands it
        if (spelling === "--help" || spelling === "-h") continue;
        const flag = findFlag(node, spelling);
        if (!flag) {
          const known = ["--help", "-h", ...node.flags.flatMap(flagSpellings)];
          throw usageError(`unknown flag ${spelling} for ${where(node)}${didYouMean(spelling, known)}`, `run \`${where(node)} --help\` to see its flags`);
        }
        if (!flag.boolean && given.has(flag.name) && !REPEATABLE.has(flag.name))
          throw usageError(`${spelling} is given twice for ${where(node)}; only one value would count`, "give it once (a flag that takes several values takes them comma-separated, like -p 3000,8080:80)");
        given.add(flag.name);
        if (!flag.boolean && !arg.includes("=")) i++; // skip the flag's value
        continue;
      }
      if (node.subCommands.length && !next) {
        next = { name: arg, index: i };
        break;
      }
      positionals++;
    }
    if (next) {
      const sub = await node.sub(next.name);
      if (!sub)
        throw usageError(
          `unknown command "${next.name}"${didYouMean(next.name, node.subCommands, (s) => `\`bottle ${s}\``)}`,
          "run `bottle --help` to list the commands",
        );
      node = sub;
      rest = rest.slice(next.index + 1);
      continue;
    }
    const allowed = node.positionals.some((p) => p.variadic) ? Infinity : node.positionals.length;
    if (positionals > allowed) throw usageError(`too many arguments for ${where(node)}`, `run \`${where(node)} --help\`; pass a command after \`--\``);
    const missing = node.positionals.filter((p) => p.required).slice(positionals);
    if (missing.length && !help) {
      const names = missing.map((p) => p.valueHint ?? p.name.toUpperCase()).join(" ");
      throw usageError(`missing ${names} for ${where(node)}`, `run \`${where(node)} ${node.positionals.map((p) => p.valueHint ?? p.name.toUpperCase()).join(" ")}\` (see \`${where(node)} --help\`)`);
    }
    return { path: node.path, command: node.def };
  }
}
