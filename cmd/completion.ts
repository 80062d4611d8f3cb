import { defineCommand } from "citty";
import { usageError } from "../lib/cli/args.ts";
import { completionTree, isShell, renderCompletion, SHELLS } from "../lib/cli/completion.ts";
import { didYouMean } from "../lib/suggest.ts";
import { cli } from "./_shared.ts";

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
    if (!isShell(shell)) throw usageError(`no completions for "${shell}"${didYouMean(shell, [...SHELLS])}`, "use one of: bash, zsh, fish");
    if (!cli.root) throw new Error("the command tree is not set (cmd/bottle.ts sets it)");
    process.stdout.write(renderCompletion(shell, await completionTree(cli.root)));
  },
});

export default completion;
