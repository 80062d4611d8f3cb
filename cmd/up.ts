import { defineCommand } from "citty";
import { claudeFlagArgs, claudeFlags, launch, launchArgs } from "./_launch.ts";

export default defineCommand({
  meta: { name: "up", description: "Start a bottle with Claude Code in a session you can leave and come back to (or run the command after --)" },
  args: {
    ...launchArgs,
    ...claudeFlagArgs,
    prompt: { type: "string", description: "Send this first message to Claude Code" },
  },
  async run({ args }) {
    await launch(args, claudeFlags(args, args.prompt ? { prompt: args.prompt } : {}));
  },
});
