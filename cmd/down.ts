import { defineCommand } from "citty";
import { usageError } from "../lib/cli/args.ts";
import { realExec } from "../lib/exec.ts";
import { downBottles } from "../lib/lifecycle.ts";
import { log } from "../lib/log.ts";

export default defineCommand({
  meta: { name: "down", description: "Stop and remove bottles: bottle down NAME… | --all" },
  args: {
    all: { type: "boolean", description: "Remove every bottle" },
    forget: { type: "boolean", description: "Also remove their kept homes (Claude's conversations and memory for that workspace)" },
    names: { type: "positional", required: false, valueHint: "NAME…", description: "Bottle names" },
  },
  async run({ args }) {
    const names = args._.length ? args._ : [];
    if (!args.all && names.length === 0) throw usageError("missing NAME… for bottle down", "run `bottle down NAME…` (see `bottle ls`), or `bottle down --all`");
    const removed = await downBottles(realExec, args.all ? undefined : names, { forget: Boolean(args.forget) });
    for (const name of removed) log.success(`removed ${name}`);
  },
});
