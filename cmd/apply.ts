import { defineCommand } from "citty";
import { realExec } from "../lib/exec.ts";
import { applyWork } from "../lib/git/review.ts";
import { bottleWork, gateScan } from "../lib/lifecycle.ts";
import { log } from "../lib/log.ts";
import { jsonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "apply", description: "Take a bottle branch's changes as uncommitted changes in your tree (secrets scanned; all or nothing)" },
  args: {
    name: { type: "positional", required: true, description: "Bottle or branch name (see bottle branches)" },
    ...jsonArgs,
  },
  async run({ args }) {
    const work = await bottleWork(realExec, process.cwd(), args.name);
    const applied = await applyWork(realExec, work, { scan: gateScan(realExec) });
    if (args.json) printJson({ branch: work.branch, ...applied });
    else log.success(`applied ${work.branch}'s changes to ${applied.files.length} file${applied.files.length === 1 ? "" : "s"} (uncommitted): git diff`);
  },
});
