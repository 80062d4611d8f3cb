import { defineCommand } from "citty";
import { BottleError } from "../lib/errors.ts";
import { realExec } from "../lib/exec.ts";
import { attachBottle } from "../lib/lifecycle.ts";
import { cli } from "./_shared.ts";

export default defineCommand({
  meta: { name: "exec", description: "Run a command in a running bottle: bottle exec NAME -- CMD …" },
  args: { name: { type: "positional", required: true, description: "Bottle name (see bottle ls)" } },
  async run({ args }) {
    if (cli.passthrough.length === 0) throw new BottleError("no command given", { fix: `bottle exec ${args.name} -- CMD …` });
    process.exitCode = await attachBottle(realExec, args.name, cli.passthrough);
  },
});
