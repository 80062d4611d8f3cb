import { defineCommand } from "citty";
import { usageError } from "../lib/cli/args.ts";
import { claudeFlagArgs, claudeFlags, launch, launchArgs } from "./_launch.ts";

const OUTPUT_FORMATS = ["text", "json", "stream-json"] as const;

export default defineCommand({
  meta: { name: "run", description: "Run Claude Code headless in a bottle (claude -p), print its answer, exit with its code, tear down" },
  args: {
    ...launchArgs,
    ...claudeFlagArgs,
    print: { type: "string", alias: "p", required: true, valueHint: "PROMPT", description: "The prompt (Claude Code's --print)" },
    "output-format": { type: "enum", options: [...OUTPUT_FORMATS], description: "text (default), json or stream-json" },
  },
  async run({ args }) {
    if (!args.print) throw usageError("missing the prompt for bottle run", 'run `bottle run AGENT -p "…"`');
    const outputFormat = args["output-format"] as (typeof OUTPUT_FORMATS)[number] | undefined;
    await launch(args, claudeFlags(args, { print: { prompt: args.print, ...(outputFormat ? { outputFormat } : {}) } }));
  },
});
