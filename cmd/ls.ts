import { defineCommand } from "citty";
import { realExec } from "../lib/exec.ts";
import { formatBottleTable, listBottles } from "../lib/lifecycle.ts";
import { jsonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "ls", description: "List running bottles" },
  args: { ...jsonArgs },
  async run({ args }) {
    const bottles = await listBottles(realExec);
    if (args.json) printJson(bottles);
    else process.stdout.write(`${formatBottleTable(bottles)}\n`);
  },
});
