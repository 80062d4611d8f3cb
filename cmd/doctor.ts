import { defineCommand } from "citty";
import { formatDoctor, runDoctor } from "../lib/doctor.ts";
import { realExec } from "../lib/exec.ts";
import { jsonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "doctor", description: "Check what this machine needs to run bottles" },
  args: { ...jsonArgs },
  async run({ args }) {
    const report = await runDoctor(realExec);
    if (args.json) printJson(report);
    else process.stdout.write(`${formatDoctor(report)}\n`);
    process.exitCode = report.dockerReady ? 0 : 1;
  },
});
