import type { BottleHandle } from "./backends/types.ts";
import type { Plan } from "./plan.ts";
import { PROMPT_PATH } from "./provision.ts";

/**
 * A session in a running bottle: Claude Code with the agent's defaults, or
 * the user's command, on the user's terminal, as the workspace's owner.
 */

/** The argv that runs inside the bottle: Claude Code by default, or the user's command. */
export function agentCommand(plan: Plan, passthrough: string[]): string[] {
  if (passthrough.length) return ["bottle-run", ...passthrough];
  const argv = ["bottle-run", "claude", "--dangerously-skip-permissions"];
  if (plan.agent.hasPrompt) argv.push("--append-system-prompt-file", PROMPT_PATH);
  if (plan.agent.model) argv.push("--model", plan.agent.model);
  return argv;
}

/** Run the bottle's command (or `passthrough`) on the user's terminal; resolves with its exit code. */
export async function attachSession(bottle: BottleHandle, plan: Plan, passthrough: string[]): Promise<number> {
  const { uid, gid } = plan.workspace.user;
  return bottle.interactive(agentCommand(plan, passthrough), { user: `${uid}:${gid}`, workdir: plan.workspace.containerPath });
}
