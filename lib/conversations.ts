import type { BottleHandle } from "./backends/types.ts";
import { BottleError } from "./errors.ts";
import { CLAUDE_HOME } from "./homes.ts";
import type { Plan } from "./plan.ts";

/**
 * The conversations Claude Code kept in a bottle's home: one transcript per
 * session id under ~/.claude/projects/<the workspace path with / as ->/.
 */

/** Claude Code's directory name for a project path (`/workspace` → `-workspace`). */
export function projectKey(path: string): string {
  return path.replace(/[^A-Za-z0-9]/g, "-");
}

/** The session ids of the conversations kept for the bottle's workspace, newest first. */
export async function conversationIds(bottle: BottleHandle, plan: Plan): Promise<string[]> {
  const dir = `${CLAUDE_HOME}/projects/${projectKey(plan.workspace.containerPath)}`;
  const { uid, gid } = plan.workspace.user;
  const out = await bottle.exec(["sh", "-c", 'cd "$1" 2>/dev/null && ls -t -- *.jsonl 2>/dev/null', "ids", dir], { user: `${uid}:${gid}`, check: false });
  return out.stdout
    .split("\n")
    .map((file) => file.trim().replace(/\.jsonl$/, ""))
    .filter(Boolean);
}

/** `--resume ID` names a conversation this home keeps; otherwise one error listing those it does. */
export async function checkResumable(bottle: BottleHandle, plan: Plan, id: string): Promise<void> {
  const known = await conversationIds(bottle, plan);
  if (known.includes(id)) return;
  throw new BottleError(`no conversation ${id} in ${plan.agent.name}'s home for this workspace`, {
    fix: known.length
      ? `resume one of these (newest first): ${known.slice(0, 10).join(", ")}${known.length > 10 ? `, … +${known.length - 10} more` : ""}; or --continue for the latest`
      : "there is none yet: start one with `bottle up`",
  });
}
