import { defineCommand } from "citty";
import { usageError } from "../lib/cli/args.ts";
import { realExec } from "../lib/exec.ts";
import { attachBottle } from "../lib/lifecycle.ts";
import { cli } from "./_shared.ts";

export default defineCommand({
  meta: { name: "exec", description: "Run a command in a running bottle: bottle exec NAME -- CMD …" },
  args: { name: { type: "positional", required: true, description: "Bottle name (see bottle ls)" } },
  async run({ args }) {
    if (cli.passthrough.length === 0) throw usageError("missing the command for bottle exec", `run \`bottle exec ${args.name} -- CMD …\``);
    process.exitCode = await attachBottle(realExec, args.name, cli.passthrough);
  },
});
