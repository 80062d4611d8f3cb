import { defineCommand } from "citty";
import { realExec } from "../lib/exec.ts";
import { formatBranches } from "../lib/git/review.ts";
import { repositoryBranches } from "../lib/lifecycle.ts";
import { jsonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "branches", description: "This repository's bottle branches: their bottle (running or not), commits ahead, last change" },
  args: { ...jsonArgs },
  async run({ args }) {
    const rows = await repositoryBranches(realExec, process.cwd());
    if (args.json) printJson(rows);
    else process.stdout.write(`${formatBranches(rows)}\n`);
  },
});
