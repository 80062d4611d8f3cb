import { defineCommand } from "citty";
import { realExec } from "../lib/exec.ts";
import { mergeWork } from "../lib/git/review.ts";
import { bottleWork, gateScan } from "../lib/lifecycle.ts";
import { log } from "../lib/log.ts";
import { jsonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "merge", description: "Merge a bottle's branch into your current branch (secrets scanned; a dirty tree or a conflict changes nothing)" },
  args: {
    name: { type: "positional", required: true, description: "Bottle or branch name (see bottle branches)" },
    squash: { type: "boolean", description: "As one commit" },
    ...jsonArgs,
  },
  async run({ args }) {
    const work = await bottleWork(realExec, process.cwd(), args.name);
    const merged = await mergeWork(realExec, work, { squash: Boolean(args.squash), scan: gateScan(realExec) });
    if (args.json) printJson({ branch: work.branch, ...merged });
    else log.success(`merged ${work.branch} (${merged.commits} commit${merged.commits === 1 ? "" : "s"}${args.squash ? ", squashed" : ""}): HEAD is ${merged.head.slice(0, 12)}`);
  },
});
