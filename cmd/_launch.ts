import type { ArgsDef } from "citty";
import { usageError } from "../lib/cli/args.ts";
import { BottleError } from "../lib/errors.ts";
import { realExec } from "../lib/exec.ts";
import { planUp, type UpOptions } from "../lib/launch/plan.ts";
import { runUp } from "../lib/launch/run.ts";
import { checkLaunchValues } from "../lib/launch/values.ts";
import { log } from "../lib/log.ts";
import { formatPreflight } from "../lib/preflight.ts";
import type { ClaudeArgs } from "../lib/session.ts";
import { backendArgs, cli, contextArgs, jsonArgs, printJson, yesArgs } from "./_shared.ts";

/** What `bottle up` and `bottle run` share: which bottle, where, and the preflight, its question, the launch. */

export const launchArgs = {
  agent: { type: "positional", required: false, description: "Agent name (default: default)" },
  bottle: { type: "string", description: "Use this bottle instead of the agent's" },
  ...backendArgs,
  ...contextArgs,
  workspace: { type: "string", description: "Project dir to mount (default: current dir)" },
  branch: { type: "string", valueHint: "NAME", description: "Work in a checkout of the repository's HEAD on a branch of its own (default name: bottle/<name>)" },
  "workspace-unsafe": {
    type: "boolean",
    description: "Launch even a workspace that is your home or holds what the gates keep out (~/.ssh, keys, …); warns",
  },
  name: { type: "string", description: "Base name of the bottle (default: the agent's name)" },
  detach: { type: "boolean", alias: "d", description: "Leave the bottle running and print its name" },
  "dry-run": { type: "boolean", description: "Print the plan and create nothing; exit 1 naming each unset ${VAR} the launch needs" },
  ...yesArgs,
  ...jsonArgs,
} as const satisfies ArgsDef;

/** Claude Code's own flags, passed on top of the agent's defaults (prompt file, skip-permissions, model). */
export const claudeFlagArgs = {
  continue: { type: "boolean", alias: "c", description: "Resume the last conversation of this workspace and agent (kept across down)" },
  resume: { type: "string", valueHint: "ID", description: "Resume the conversation ID (without an ID: Claude Code's picker)" },
  model: { type: "string", description: "Model for this session (default: the agent's)" },
} as const satisfies ArgsDef;

interface LaunchArgValues {
  agent?: string;
  bottle?: string;
  backend?: string;
  context?: string;
  workspace?: string;
  branch?: string;
  "workspace-unsafe"?: boolean;
  name?: string;
  detach?: boolean;
  "dry-run"?: boolean;
  yes?: boolean;
  json?: boolean;
  continue?: boolean;
  resume?: string;
  model?: string;
}

/** The flags' Claude Code part; `--resume` without an ID is Claude Code's picker. */
export function claudeFlags(args: LaunchArgValues, extra: ClaudeArgs = {}): ClaudeArgs {
  if (args.continue && args.resume !== undefined) throw usageError("--continue and --resume name different conversations", "pass one of them");
  const claude: ClaudeArgs = { ...extra };
  if (args.continue) claude.continue = true;
  if (args.resume !== undefined) claude.resume = args.resume === "" ? true : args.resume;
  if (args.model) claude.model = args.model;
  if (Object.keys(claude).length && cli.passthrough.length)
    throw usageError("Claude Code's flags and a command after `--` do not mix", "drop the command after `--`, or pass the flags to it yourself");
  return claude;
}

/** Plan, show the preflight (or print it: --dry-run), ask, launch. Sets the exit code. */
export async function launch(args: LaunchArgValues, claude: ClaudeArgs, forwards: Pick<UpOptions, "ports" | "bind"> = {}): Promise<void> {
  const options: UpOptions = {
    agent: args.agent,
    bottle: args.bottle,
    backend: args.backend,
    ...(args.context ? { context: args.context } : {}),
    workspace: args.workspace,
    ...(args.branch !== undefined ? { branch: args.branch === "" ? (true as const) : args.branch } : {}),
    workspaceUnsafe: Boolean(args["workspace-unsafe"]),
    name: args.name,
    detach: Boolean(args.detach),
    passthrough: cli.passthrough,
    cwd: process.cwd(),
    env: process.env,
    dryRun: Boolean(args["dry-run"]),
    claude,
    ...forwards,
  };
  const planned = await planUp(realExec, options);
  if (args["dry-run"]) {
    if (args.json) printJson(planned.plan);
    else process.stdout.write(`${formatPreflight(planned.plan, planned.images.missing)}\n`);
    // The plan, then what the launch would stop at: each unset ${VAR}, as an error.
    checkLaunchValues(planned, options.env, true);
    return;
  }
  process.stderr.write(`${formatPreflight(planned.plan, planned.images.missing)}\n`);
  if (!args.yes) {
    if (!process.stdin.isTTY) throw new BottleError("no terminal to confirm the launch", { fix: "pass --yes to launch without asking (or --dry-run to only see the plan)" });
    const { confirm } = await import("../lib/prompt.ts");
    if (!(await confirm("launch?"))) {
      log.info("not launched");
      process.exitCode = 1;
      return;
    }
  }
  process.exitCode = await runUp(planned, options);
}
