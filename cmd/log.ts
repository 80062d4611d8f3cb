import { defineCommand } from "citty";
import { realExec } from "../lib/exec.ts";
import { logWork } from "../lib/git/review.ts";
import { bottleWork } from "../lib/lifecycle.ts";
import { jsonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "log", description: "A bottle branch's commits since it started (the gates' logs: bottle logs)" },
  args: {
    name: { type: "positional", required: true, description: "Bottle or branch name (see bottle branches)" },
    ...jsonArgs,
  },
  async run({ args }) {
    const work = await bottleWork(realExec, process.cwd(), args.name);
    const commits = await logWork(realExec, work);
    if (args.json) printJson(commits);
    else process.stdout.write(commits.length ? commits.map((c) => `${c.commit.slice(0, 12)}  ${c.date.slice(0, 16).replace("T", " ")}  ${c.author}  ${c.subject}\n`).join("") : `${work.branch} has no commits since ${work.base.slice(0, 12)}\n`);
  },
});
