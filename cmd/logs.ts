import { defineCommand } from "citty";
import { realExec } from "../lib/exec.ts";
import { showLogs } from "../lib/logs.ts";
import { jsonArgs } from "./_shared.ts";

export default defineCommand({
  meta: { name: "logs", description: "Show a bottle's gate decisions (or its container output)" },
  args: {
    name: { type: "positional", required: true, description: "Bottle name (see bottle ls)" },
    gate: { type: "string", description: "Gate whose log to show: egress | git | ssh (default: the bottle's own output)" },
    follow: { type: "boolean", alias: "f", description: "Keep printing new lines" },
    ...jsonArgs,
  },
  async run({ args }) {
    process.exitCode = await showLogs(realExec, args.name, { gate: args.gate, follow: Boolean(args.follow), json: Boolean(args.json) });
  },
});
