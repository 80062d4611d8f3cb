import { defineCommand } from "citty";
import { formatAgentList, listAgents } from "../lib/manifest/index.ts";
import { jsonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "agents", description: "List the agents you can run (project .bottle/agents/, then your config dir)" },
  args: { ...jsonArgs },
  async run({ args }) {
    const agents = await listAgents({ projectDir: process.cwd(), env: process.env });
    if (args.json) printJson(agents);
    else process.stdout.write(formatAgentList(agents, process.env));
  },
});
