import { defineCommand } from "citty";
import { realExec } from "../lib/exec.ts";
import { diffWork } from "../lib/git/review.ts";
import { bottleWork } from "../lib/lifecycle.ts";
import { cli } from "./_shared.ts";

export default defineCommand({
  meta: { name: "diff", description: "What a bottle's branch changes against where it started (-- PATH… to narrow it)" },
  args: {
    name: { type: "positional", required: true, description: "Bottle or branch name (see bottle branches)" },
    stat: { type: "boolean", description: "Only the files and how much changed" },
  },
  async run({ args }) {
    const work = await bottleWork(realExec, process.cwd(), args.name);
    process.stdout.write(await diffWork(realExec, work, { stat: Boolean(args.stat), paths: cli.passthrough }));
  },
});
