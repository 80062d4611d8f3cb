import { defineCommand } from "citty";
import { realExec } from "../lib/exec.ts";
import { attachBottle } from "../lib/lifecycle.ts";

export default defineCommand({
  meta: { name: "attach", description: "Attach your terminal to Claude Code in a running bottle" },
  args: { name: { type: "positional", required: true, description: "Bottle name (see bottle ls)" } },
  async run({ args }) {
    process.exitCode = await attachBottle(realExec, args.name, []);
  },
});
