import { defineCommand } from "citty";
import { realExec } from "../lib/exec.ts";
import { fetchBottleCommits } from "../lib/lifecycle.ts";
import { log } from "../lib/log.ts";
import { jsonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "fetch", description: "Bring a running bottle's commits onto its branch (bottle/<name>) now" },
  args: {
    name: { type: "positional", required: true, description: "Bottle name (see bottle ls)" },
    ...jsonArgs,
  },
  async run({ args }) {
    const brought = await fetchBottleCommits(realExec, args.name);
    if (args.json) printJson(brought ?? null);
    else if (brought) log.success(`${brought.commits} new commit${brought.commits === 1 ? "" : "s"} on ${brought.branch} (${brought.commit.slice(0, 12)}): git log ${brought.branch}`);
    else log.info(`${args.name} has no commits the host does not have`);
  },
});
