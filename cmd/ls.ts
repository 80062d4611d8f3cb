import { defineCommand } from "citty";
import { realExec } from "../lib/exec.ts";
import { formatBottleTable, formatHomeTable, listBottles, listHomes } from "../lib/lifecycle.ts";
import { jsonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "ls", description: "List running bottles (--all: and the kept homes of Claude Code, with workspace and last use)" },
  args: {
    all: { type: "boolean", alias: "a", description: "Also list kept homes (Claude's ~/.claude per workspace and agent)" },
    "all-contexts": { type: "boolean", description: "Also look on every docker context you have (bottles started elsewhere are always listed)" },
    ...jsonArgs,
  },
  async run({ args }) {
    const [bottles, homes] = await Promise.all([listBottles(realExec, { allContexts: Boolean(args["all-contexts"]) }), args.all ? listHomes(realExec) : Promise.resolve([])]);
    // Without --all the JSON stays the list of bottles it always was.
    if (args.json) printJson(args.all ? { bottles, homes } : bottles);
    else process.stdout.write(`${formatBottleTable(bottles)}\n${args.all ? `\n${formatHomeTable(homes)}\n` : ""}`);
  },
});
