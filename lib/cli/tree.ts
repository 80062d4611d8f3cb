import type { ArgDef, ArgsDef, CommandDef, CommandMeta, Resolvable } from "citty";

/**
 * The citty command tree as plain data, read one command at a time (citty's
 * sub-commands load lazily, and `bottle up` must not load every other
 * command). The one reading of commands, flags, aliases and positionals that
 * both the strict argument check and the shell completions use.
 */

export interface FlagSpec {
  /** Long name without dashes, e.g. "dry-run". */
  name: string;
  /** Other names without dashes (one letter: a short flag). */
  aliases: string[];
  description: string;
  /** Booleans take no value (and accept --no-NAME). */
  boolean: boolean;
  /** An enum flag's choices. */
  choices?: string[];
}

export interface PositionalSpec {
  name: string;
  description: string;
  required: boolean;
  /** Takes any number of values: its valueHint ends in "…" (`bottle down NAME…`). */
  variadic: boolean;
  valueHint?: string;
}

export interface CommandNode {
  /** The words after the program name (`["up"]`; `[]` for the root). */
  path: string[];
  def: CommandDef;
  meta: CommandMeta;
  flags: FlagSpec[];
  positionals: PositionalSpec[];
  subCommands: string[];
  /** The named sub-command, loaded on demand; undefined when there is none by that name. */
  sub(name: string): Promise<CommandNode | undefined>;
}

async function resolve<T>(value: Resolvable<T> | undefined): Promise<T | undefined> {
  return typeof value === "function" ? await (value as () => T | Promise<T>)() : await value;
}

function aliasesOf(def: ArgDef): string[] {
  if (def.type === "positional" || !("alias" in def) || !def.alias) return [];
  return Array.isArray(def.alias) ? def.alias : [def.alias];
}

function flagsOf(args: ArgsDef): FlagSpec[] {
  return Object.entries(args)
    .filter(([, def]) => def.type !== "positional")
    .map(([name, def]) => ({
      name,
      aliases: aliasesOf(def),
      description: def.description ?? "",
      boolean: def.type === "boolean",
      ...(def.type === "enum" ? { choices: [...(def.options ?? [])] } : {}),
    }));
}

function positionalsOf(args: ArgsDef): PositionalSpec[] {
  return Object.entries(args)
    .filter(([, def]) => def.type === "positional")
    .map(([name, def]) => ({
      name,
      description: def.description ?? "",
      // citty's positionals are required unless they say otherwise.
      required: def.required !== false,
      variadic: Boolean(def.valueHint?.endsWith("…")),
      ...(def.valueHint ? { valueHint: def.valueHint } : {}),
    }));
}

/** One command of the tree (its sub-commands stay unloaded until asked for). */
export async function commandNode(def: CommandDef, path: string[] = []): Promise<CommandNode> {
  const [meta, args, subCommands] = await Promise.all([resolve(def.meta), resolve(def.args), resolve(def.subCommands)]);
  return {
    path,
    def,
    meta: meta ?? {},
    flags: flagsOf(args ?? {}),
    positionals: positionalsOf(args ?? {}),
    subCommands: Object.keys(subCommands ?? {}),
    async sub(name) {
      const loader = subCommands?.[name];
      const child = loader ? await resolve(loader) : undefined;
      return child ? commandNode(child, [...path, name]) : undefined;
    },
  };
}

/** Every command below `root`, depth first, in declaration order (loads them all: completions only). */
export async function allCommands(root: CommandNode): Promise<CommandNode[]> {
  const found: CommandNode[] = [];
  for (const name of root.subCommands) {
    const child = await root.sub(name);
    if (!child) continue;
    found.push(child, ...(await allCommands(child)));
  }
  return found;
}

/** Every spelling of a flag on the command line: --name, -a / --alias, and --no-name for booleans. */
export function flagSpellings(flag: FlagSpec): string[] {
  const names = [flag.name, ...flag.aliases].map((name) => (name.length === 1 ? `-${name}` : `--${name}`));
  return flag.boolean ? [...names, `--no-${flag.name}`] : names;
}
