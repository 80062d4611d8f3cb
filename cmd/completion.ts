import { defineCommand, type CommandDef } from "citty";
import { BottleError } from "../lib/errors.ts";
import { completionTree, isShell, renderCompletion, SHELLS } from "../lib/release/completion.ts";
import { didYouMean } from "../lib/suggest.ts";
import { main } from "./commands.ts";

const completion = defineCommand({
  meta: {
    name: "completion",
    description: "Print shell completions: bash, zsh or fish (e.g. `source <(bottle completion bash)`)",
  },
  args: {
    shell: { type: "positional", required: true, description: "bash | zsh | fish" },
  },
  async run({ args }) {
    const shell = String(args.shell);
    if (!isShell(shell))
      throw new BottleError(`no completions for "${shell}"${didYouMean(shell, [...SHELLS])}`, {
        fix: "use one of: bash, zsh, fish",
        exitCode: 2,
      });
    process.stdout.write(renderCompletion(shell, await completionTree(main as CommandDef)));
  },
});

export default completion;
