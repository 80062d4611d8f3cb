import { defineCommand } from "citty";
import { BottleError } from "../lib/errors.ts";
import { realExec } from "../lib/exec.ts";
import { log } from "../lib/log.ts";
import { formatPreflight } from "../lib/preflight.ts";
import { planUp, type UpOptions } from "../lib/launch/plan.ts";
import { runUp } from "../lib/launch/run.ts";
import { backendArgs, cli, jsonArgs, printJson, yesArgs } from "./_shared.ts";

export default defineCommand({
  meta: { name: "up", description: "Start a bottle and attach Claude Code (or run the command after --)" },
  args: {
    agent: { type: "positional", required: false, description: "Agent name (default: default)" },
    bottle: { type: "string", description: "Use this bottle instead of the agent's" },
    ...backendArgs,
    workspace: { type: "string", description: "Project dir to mount (default: current dir)" },
    name: { type: "string", description: "Base name of the bottle (default: the agent's name)" },
    detach: { type: "boolean", alias: "d", description: "Leave the bottle running and print its name" },
    "dry-run": { type: "boolean", description: "Print the plan and create nothing" },
    ...yesArgs,
    ...jsonArgs,
  },
  async run({ args }) {
    const options: UpOptions = {
      agent: args.agent,
      bottle: args.bottle,
      backend: args.backend,
      workspace: args.workspace,
      name: args.name,
      detach: Boolean(args.detach),
      passthrough: cli.passthrough,
      cwd: process.cwd(),
      env: process.env,
      dryRun: Boolean(args["dry-run"]),
    };
    const planned = await planUp(realExec, options);
    if (args["dry-run"]) {
      if (args.json) printJson(planned.plan);
      else process.stdout.write(`${formatPreflight(planned.plan, planned.images.missing)}\n`);
      return;
    }
    process.stderr.write(`${formatPreflight(planned.plan, planned.images.missing)}\n`);
    if (!args.yes) {
      if (!process.stdin.isTTY)
        throw new BottleError("no terminal to confirm the launch", { fix: "pass --yes to launch without asking (or --dry-run to only see the plan)" });
      const { confirm } = await import("../lib/prompt.ts");
      if (!(await confirm("launch?"))) {
        log.info("not launched");
        process.exitCode = 1;
        return;
      }
    }
    process.exitCode = await runUp(planned, options);
  },
});
