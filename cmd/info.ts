import { defineCommand } from "citty";
import { loadClaudeSetup } from "../lib/claude-setup/index.ts";
import { formatInfo, infoView, resolveAgentAndBottle } from "../lib/manifest/index.ts";
import { jsonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: { name: "info", description: "Show what an agent's bottle grants: hosts, env names, git remotes, SSH hosts, workspace (never secret values)" },
  args: {
    agent: { type: "positional", required: false, description: "Agent name (default: default)" },
    bottle: { type: "string", description: "Use this bottle instead of the agent's" },
    ...jsonArgs,
  },
  async run({ args }) {
    const resolved = await resolveAgentAndBottle({
      ...(args.agent ? { agent: String(args.agent) } : {}),
      ...(args.bottle ? { bottle: String(args.bottle) } : {}),
      projectDir: process.cwd(),
      env: process.env,
    });
    const view = infoView(resolved, process.env);
    const setup = loadClaudeSetup(resolved, process.env, process.cwd());
    view.bottle.claude = { items: setup.rows, notes: setup.notes };
    view.agent.skills = setup.skills;
    if (args.json) printJson(view);
    else process.stdout.write(formatInfo(view));
  },
});
