import { defineCommand } from "citty";
import { parseCliPorts } from "../lib/ports/plan.ts";
import { claudeFlagArgs, claudeFlags, launch, launchArgs } from "./_launch.ts";

export default defineCommand({
  meta: { name: "up", description: "Start a bottle with Claude Code in a session you can leave and come back to (or run the command after --)" },
  args: {
    ...launchArgs,
    ...claudeFlagArgs,
    prompt: { type: "string", description: "Send this first message to Claude Code" },
    publish: {
      type: "string",
      alias: "p",
      valueHint: "[HOSTPORT:]PORT",
      description: "Forward the bottle's PORT to the host (127.0.0.1:PORT, or a free port when taken; HOSTPORT:PORT fixes it); several: -p 3000,8080:80",
    },
    bind: { type: "string", valueHint: "ADDRESS", description: "Publish forwarded ports on this host address instead of 127.0.0.1 (e.g. 0.0.0.0: others can connect)" },
  },
  async run({ args }) {
    await launch(args, claudeFlags(args, args.prompt ? { prompt: args.prompt } : {}), { ports: parseCliPorts(args.publish), bind: args.bind });
  },
});
