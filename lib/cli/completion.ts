import type { CommandDef } from "citty";
import { BACKEND_NAMES } from "../backends/names.ts";
import { allCommands, commandNode, type CommandNode } from "./tree.ts";

/**
 * Shell completions (bash, zsh, fish) generated from the citty command tree:
 * every visible command, its flags (with aliases) and its positional. Agent
 * names are looked up when completing, by running `bottle agents --json` and
 * picking the names out with sed (no jq needed).
 */

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

export function isShell(value: string): value is Shell {
  return (SHELLS as readonly string[]).includes(value);
}

/** What a flag's value or a positional completes to. */
export type ValueHint =
  | { kind: "none" }
  | { kind: "choices"; choices: string[] }
  | { kind: "dir" }
  | { kind: "file" }
  | { kind: "agents" }
  | { kind: "bottles" };

export interface CompletionFlag {
  /** Long name without dashes, e.g. "dry-run". */
  name: string;
  /** One-letter alias without the dash, e.g. "d". */
  short?: string;
  description: string;
  /** Boolean flags take no value. */
  value?: ValueHint;
}

export interface CompletionCommand {
  name: string;
  description: string;
  flags: CompletionFlag[];
  /** Completion for the first positional, when the command has one. */
  positional?: { name: string; hint: ValueHint };
}

export interface CompletionTree {
  program: string;
  globalFlags: CompletionFlag[];
  commands: CompletionCommand[];
}

/**
 * How values complete, by argument name (`command.arg` wins over `arg`).
 * Names not listed complete to nothing (free text).
 */
export const VALUE_HINTS: Record<string, ValueHint> = {
  "up.agent": { kind: "agents" },
  "run.agent": { kind: "agents" },
  "info.agent": { kind: "agents" },
  "attach.name": { kind: "bottles" },
  "exec.name": { kind: "bottles" },
  "logs.name": { kind: "bottles" },
  "fetch.name": { kind: "bottles" },
  "down.names": { kind: "bottles" },
  "allow.name": { kind: "bottles" },
  "logs.gate": { kind: "choices", choices: ["egress", "git", "ssh"] },
  "completion.shell": { kind: "choices", choices: [...SHELLS] },
  "update.target": { kind: "file" },
  backend: { kind: "choices", choices: [...BACKEND_NAMES] },
  workspace: { kind: "dir" },
};

/** Flags the root command takes before any subcommand (see cmd/bottle.ts and lib/cli/args.ts). */
export const ROOT_FLAGS: CompletionFlag[] = [
  { name: "verbose", description: "Show commands and details" },
  { name: "quiet", short: "q", description: "Only show errors" },
  { name: "help", short: "h", description: "Show help" },
  { name: "version", short: "v", description: "Print the version" },
];

/**
 * Shell pipelines printing one name per line: `--json` output is an array of
 * flat objects, so every `"name": "…"` line is one entry.
 */
const NAME_SED = `sed -n 's/^ *"name": *"\\([^"]*\\)".*/\\1/p'`;
export const AGENT_NAMES_PIPELINE = `bottle agents --json 2>/dev/null | ${NAME_SED}`;
export const BOTTLE_NAMES_PIPELINE = `bottle ls --json 2>/dev/null | ${NAME_SED}`;

function hintFor(command: string, arg: string): ValueHint {
  return VALUE_HINTS[`${command}.${arg}`] ?? VALUE_HINTS[arg] ?? { kind: "none" };
}

function completionCommand(node: CommandNode): CompletionCommand {
  const name = node.path.join(" ");
  const flags: CompletionFlag[] = node.flags.map((flag) => {
    const short = flag.aliases.find((alias) => alias.length === 1);
    const value: ValueHint | undefined = flag.choices ? { kind: "choices", choices: flag.choices } : flag.boolean ? undefined : hintFor(name, flag.name);
    return { name: flag.name, description: flag.description, ...(short ? { short } : {}), ...(value ? { value } : {}) };
  });
  flags.push({ name: "help", short: "h", description: "Show help" });
  const positional = node.positionals[0];
  return { name, description: node.meta.description ?? "", flags, ...(positional ? { positional: { name: positional.name, hint: hintFor(name, positional.name) } } : {}) };
}

/** The root's visible sub-commands (see lib/cli/tree.ts) as the data the scripts are rendered from. */
export async function completionTree(root: CommandDef): Promise<CompletionTree> {
  const node = await commandNode(root);
  const commands = (await allCommands(node)).filter((command) => command.path.length === 1 && !command.meta.hidden).map(completionCommand);
  return { program: node.meta.name ?? "bottle", globalFlags: ROOT_FLAGS, commands };
}

export function renderCompletion(shell: Shell, tree: CompletionTree): string {
  return shell === "bash" ? renderBash(tree) : shell === "zsh" ? renderZsh(tree) : renderFish(tree);
}

// ---------------------------------------------------------------- bash

function flagWords(flags: CompletionFlag[]): string[] {
  return flags.flatMap((flag) => [`--${flag.name}`, ...(flag.short ? [`-${flag.short}`] : [])]);
}

/** Bash commands that fill COMPREPLY for a hint; "" when it completes nothing. */
function bashComplete(hint: ValueHint, p: string): string {
  switch (hint.kind) {
    case "choices":
      return `COMPREPLY=($(compgen -W "${hint.choices.join(" ")}" -- "$cur"))`;
    case "dir":
      return `local IFS=$'\\n'; COMPREPLY=($(compgen -d -- "$cur"))`;
    case "file":
      return `local IFS=$'\\n'; COMPREPLY=($(compgen -f -- "$cur"))`;
    case "agents":
      return `COMPREPLY=($(compgen -W "$(_${p}_agents)" -- "$cur"))`;
    case "bottles":
      return `COMPREPLY=($(compgen -W "$(_${p}_bottles)" -- "$cur"))`;
    case "none":
      return "";
  }
}

function renderBash(tree: CompletionTree): string {
  const p = tree.program;
  const valueFlagCases = tree.commands
    .map((command) => ({ command, words: flagWords(command.flags.filter((flag) => flag.value)) }))
    .filter(({ words }) => words.length > 0)
    .map(({ command, words }) => `    ${command.name}) valueflags=" ${words.join(" ")} " ;;`);
  const cases = tree.commands.map((command) => {
    const valueCases = command.flags
      .filter((flag) => flag.value)
      .map((flag) => {
        const body = bashComplete(flag.value!, p);
        return `        ${flagWords([flag]).join("|")}) ${body ? `${body}; ` : ""}return 0 ;;`;
      });
    const positional = command.positional ? bashComplete(command.positional.hint, p) : "";
    return [
      `    ${command.name})`,
      ...(valueCases.length ? [`      case "$prev" in`, ...valueCases, `      esac`] : []),
      `      if [[ "$cur" == -* ]]; then`,
      `        COMPREPLY=($(compgen -W "${flagWords(command.flags).join(" ")}" -- "$cur"))`,
      ...(positional ? [`      elif [[ $positionals -eq 0 ]]; then`, `        ${positional}`] : []),
      `      fi`,
      `      ;;`,
    ].join("\n");
  });
  return `# bash completion for ${p}. Generated by \`${p} completion bash\`; load it with
#   source <(${p} completion bash)
# or save it as ~/.local/share/bash-completion/completions/${p}
# Works with bash 3.2 (macOS), hence no mapfile.
# shellcheck disable=SC2207

_${p}_agents() {
  ${AGENT_NAMES_PIPELINE}
}

_${p}_bottles() {
  ${BOTTLE_NAMES_PIPELINE}
}

_${p}() {
  local cur prev cmd="" at=0 i word valueflags=" " positionals=0
  COMPREPLY=()
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev=""
  [[ $COMP_CWORD -gt 0 ]] && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  # The command is the first word that is not a flag (root flags take no value).
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case "$word" in
      --) return 0 ;;
      -*) ;;
      *) cmd="$word"; at=$i; break ;;
    esac
  done
  case "$cmd" in
${valueFlagCases.join("\n")}
  esac
  # Count the positionals after the command, skipping flag values; after -- the words belong to the bottle.
  if [[ -n "$cmd" ]]; then
    for ((i = at + 1; i < COMP_CWORD; i++)); do
      word="\${COMP_WORDS[i]}"
      case "$word" in
        --) return 0 ;;
        -*) [[ "$valueflags" == *" $word "* ]] && i=$((i + 1)) ;;
        *) positionals=$((positionals + 1)) ;;
      esac
    done
  fi
  case "$cmd" in
    "")
      COMPREPLY=($(compgen -W "${[...tree.commands.map((c) => c.name), ...flagWords(tree.globalFlags)].join(" ")}" -- "$cur"))
      ;;
${cases.join("\n")}
  esac
  return 0
}

complete -F _${p} ${p}
`;
}

// ---------------------------------------------------------------- zsh

/** Inside single quotes. */
function zshQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Text for an _arguments `[description]`. */
function zshBracket(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/([[\]])/g, "\\$1");
}

function zshAction(hint: ValueHint, p: string): string {
  switch (hint.kind) {
    case "choices":
      return `(${hint.choices.join(" ")})`;
    case "dir":
      return "_files -/";
    case "file":
      return "_files";
    case "agents":
      return `_${p}_agents`;
    case "bottles":
      return `_${p}_bottles`;
    case "none":
      return " ";
  }
}

function zshFlagSpecs(flags: CompletionFlag[], p: string): string[] {
  return flags.map((flag) => {
    const description = `[${zshBracket(flag.description)}]`;
    const value = flag.value ? `:${flag.name}:${zshAction(flag.value, p)}` : "";
    const equals = flag.value ? "=" : "";
    if (flag.short) {
      return `${zshQuote(`(-${flag.short} --${flag.name})`)}{-${flag.short},--${flag.name}${equals}}${zshQuote(`${description}${value}`)}`;
    }
    return zshQuote(`--${flag.name}${equals}${description}${value}`);
  });
}

function renderZsh(tree: CompletionTree): string {
  const p = tree.program;
  const commandList = tree.commands.map((c) => `    ${zshQuote(`${c.name}:${c.description}`)}`);
  const cases = tree.commands.map((command) => {
    const specs = zshFlagSpecs(command.flags, p);
    if (command.positional) specs.push(zshQuote(`1:${command.positional.name}:${zshAction(command.positional.hint, p)}`));
    return [`        ${command.name})`, `          _arguments -s \\`, ...specs.map((s) => `            ${s} \\`), `            '*:: :_normal'`, `          ;;`].join("\n");
  });
  return `#compdef ${p}
# zsh completion for ${p}. Generated by \`${p} completion zsh\`; save it as
# _${p} in a directory on $fpath, or load it with  source <(${p} completion zsh)

_${p}_agents() {
  local -a names
  names=(\${(f)"$(${AGENT_NAMES_PIPELINE})"})
  compadd -a names
}

_${p}_bottles() {
  local -a names
  names=(\${(f)"$(${BOTTLE_NAMES_PIPELINE})"})
  compadd -a names
}

_${p}_commands() {
  local -a commands
  commands=(
${commandList.join("\n")}
  )
  _describe -t commands '${p} command' commands
}

_${p}() {
  local curcontext="$curcontext" state line
  typeset -A opt_args
  _arguments -C -s \\
${zshFlagSpecs(tree.globalFlags, p)
  .map((s) => `    ${s} \\`)
  .join("\n")}
    '1: :_${p}_commands' \\
    '*:: :->args'
  case $state in
    args)
      curcontext="\${curcontext%:*:*}:${p}-$words[1]:"
      case $words[1] in
${cases.join("\n")}
      esac
      ;;
  esac
}

if [[ "$funcstack[1]" == "_${p}" ]]; then
  _${p} "$@"
else
  compdef _${p} ${p}
fi
`;
}

// ---------------------------------------------------------------- fish

function fishQuote(text: string): string {
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** Candidates for a value or positional: `-a …` / `-F`; "" for free text. */
function fishCandidates(hint: ValueHint, p: string): string {
  switch (hint.kind) {
    case "choices":
      return `-a ${fishQuote(hint.choices.join(" "))}`;
    case "dir":
      return `-a '(__fish_complete_directories)'`;
    case "file":
      return "-F";
    case "agents":
      return `-a '(__${p}_agents)'`;
    case "bottles":
      return `-a '(__${p}_bottles)'`;
    case "none":
      return "";
  }
}

function fishFlag(condition: string, flag: CompletionFlag, p: string): string {
  const parts = [`complete -c ${p}`];
  if (condition) parts.push(`-n ${fishQuote(condition)}`);
  if (flag.short) parts.push(`-s ${flag.short}`);
  parts.push(`-l ${flag.name}`);
  if (flag.value) {
    const candidates = fishCandidates(flag.value, p);
    // -r: takes a value; -x: and it is not a file.
    parts.push(candidates === "-F" ? "-r -F" : candidates ? `-x ${candidates}` : "-x");
  }
  if (flag.description) parts.push(`-d ${fishQuote(flag.description)}`);
  return parts.join(" ");
}

function renderFish(tree: CompletionTree): string {
  const p = tree.program;
  const lines = [
    `# fish completion for ${p}. Generated by \`${p} completion fish\`; save it as`,
    `# ~/.config/fish/completions/${p}.fish`,
    "",
    `function __${p}_agents`,
    `    ${AGENT_NAMES_PIPELINE}`,
    "end",
    "",
    `function __${p}_bottles`,
    `    ${BOTTLE_NAMES_PIPELINE}`,
    "end",
    "",
    `complete -c ${p} -f`,
  ];
  for (const flag of tree.globalFlags) lines.push(fishFlag(flag.name === "version" ? "__fish_use_subcommand" : "", flag, p));
  for (const command of tree.commands) {
    lines.push(`complete -c ${p} -n __fish_use_subcommand -a ${command.name} -d ${fishQuote(command.description)}`);
  }
  for (const command of tree.commands) {
    lines.push("");
    const when = `__fish_seen_subcommand_from ${command.name}`;
    for (const flag of command.flags) if (flag.name !== "help") lines.push(fishFlag(when, flag, p));
    const candidates = command.positional ? fishCandidates(command.positional.hint, p) : "";
    if (command.positional && candidates) lines.push(`complete -c ${p} -n ${fishQuote(when)} ${candidates} -d ${fishQuote(command.positional.name)}`);
  }
  return `${lines.join("\n")}\n`;
}
