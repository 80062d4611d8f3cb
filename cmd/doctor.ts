import { defineCommand } from "citty";
import { formatDoctor, runDoctor } from "../lib/doctor.ts";
import { realExec } from "../lib/exec.ts";
import { contextArgs, jsonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "doctor", description: "Check what this machine needs to run bottles" },
  args: { ...contextArgs, ...jsonArgs },
  async run({ args }) {
    const report = await runDoctor(realExec, process.env, args.context);
    if (args.json) printJson(report);
    else process.stdout.write(`${formatDoctor(report)}\n`);
    process.exitCode = report.dockerReady ? 0 : 1;
  },
});
