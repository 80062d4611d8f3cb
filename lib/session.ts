import { randomUUID } from "node:crypto";
import type { BottleHandle } from "./backends/types.ts";
import { BottleError } from "./errors.ts";
import { describeArgv } from "./exec.ts";
import type { Plan } from "./plan.ts";
import { STAGED_SETTINGS } from "./claude-setup/index.ts";
import { PROMPT_PATH } from "./provision.ts";

/**
 * A bottle's Claude Code runs in a session that outlives any terminal: a tmux
 * server inside the bottle (tmux, not dtach or abduco, because it keeps the
 * screen: whoever attaches later sees the conversation as it stands, at the
 * size of their own terminal, and a second attach shares it). Closing the
 * terminal, or Ctrl-], detaches; Claude Code goes on. A command given after
 * `--` runs without a session, its output a plain pipe.
 */

export const SESSION_SOCKET = "/run/bottle/session.sock";
const SESSION = "claude";
/** Where bottle-session writes how the session's Claude Code ended. */
const SESSION_EXIT = "/run/bottle/session.exit";
const TMUX = ["tmux", "-S", SESSION_SOCKET, "-f", "/etc/bottle-tmux.conf"];
export const DETACH_KEY = "Ctrl-]";
/** A detached session's window until a terminal attaches (then it takes that terminal's size). */
const DETACHED_SIZE = ["-x", "200", "-y", "50"];

/** Claude Code's own flags a launch passes on top of the agent's defaults. */
export interface ClaudeArgs {
  continue?: boolean;
  /** A session id, or true for Claude Code's picker. */
  resume?: string | true;
  model?: string;
  /** The first message. */
  prompt?: string;
  /** Headless: `claude -p PROMPT`, its output on stdout. */
  print?: { prompt: string; outputFormat?: "text" | "json" | "stream-json" };
}

/** The argv that runs inside the bottle: Claude Code with the agent's defaults and `claude`, or the user's command. */
export function agentCommand(plan: Plan, passthrough: string[], claude: ClaudeArgs = {}): string[] {
  if (passthrough.length) return ["bottle-run", ...passthrough];
  const session = plan.agent.session ?? {};
  const mode = session.permissionMode;
  // The bottle is the boundary: permissions are skipped unless the agent file asks for another mode.
  const argv = ["bottle-run", "claude", ...(mode && mode !== "bypassPermissions" ? ["--permission-mode", mode] : ["--dangerously-skip-permissions"])];
  if (plan.agent.hasPrompt) argv.push("--append-system-prompt-file", PROMPT_PATH);
  const model = claude.model ?? plan.agent.model;
  if (model) argv.push("--model", model);
  if (session.effort) argv.push("--effort", session.effort);
  // `=`: these options take a list, and would swallow the first message after them.
  if (session.tools) argv.push(`--tools=${session.tools.join(",")}`);
  if (session.disallowedTools) argv.push(`--disallowedTools=${session.disallowedTools.join(",")}`);
  if (plan.claudeSetup?.settings) argv.push("--settings", STAGED_SETTINGS);
  if (claude.continue) argv.push("--continue");
  if (claude.resume === true) argv.push("--resume");
  else if (claude.resume) argv.push("--resume", claude.resume);
  if (claude.print) {
    argv.push("--print", claude.print.prompt);
    if (claude.print.outputFormat) argv.push("--output-format", claude.print.outputFormat);
  } else {
    // The agent's first message starts a new conversation, not one resumed.
    const first = claude.prompt ?? (claude.continue || claude.resume ? undefined : session.initialPrompt);
    if (first) argv.push(first);
  }
  return argv;
}

function asAgent(plan: Plan) {
  const { uid, gid } = plan.workspace.user;
  return { user: `${uid}:${gid}`, workdir: plan.workspace.containerPath };
}

/** The session's command (Claude Code, or the one given after `--`) through bottle-session, which records how it ended. */
function sessionCommand(plan: Plan, claude: ClaudeArgs): string[] {
  return ["bottle-session", ...agentCommand(plan, plan.command, claude).slice(1)];
}

/** What the session runs, as messages name it. */
export function sessionWhat(plan: Plan): string {
  return plan.command.length ? describeArgv(plan.command, Infinity) : "Claude Code";
}

/** Start the bottle's Claude Code in its session, with no terminal attached (`bottle up --detach`). */
export async function startSession(bottle: BottleHandle, plan: Plan, claude: ClaudeArgs = {}): Promise<void> {
  await bottle.exec([...TMUX, "new-session", "-d", "-s", SESSION, ...DETACHED_SIZE, "--", ...sessionCommand(plan, claude)], asAgent(plan));
}

/**
 * This terminal as a client of the session, through bottle-attach, which
 * notes its tty. When the terminal goes away (closed: SIGHUP) docker keeps
 * the exec, and so a tmux client, running; it is detached here, by its tty,
 * so that the session shows no ghost attached.
 */
async function asClient(bottle: BottleHandle, plan: Plan, mode: "start" | "join", tmuxArgs: string[]): Promise<number> {
  const id = randomUUID();
  try {
    return await bottle.interactive(["bottle-attach", id, mode, ...tmuxArgs], asAgent(plan));
  } finally {
    await bottle
      .exec(["sh", "-c", DETACH_CLIENT, "detach", id, SESSION_SOCKET], { ...asAgent(plan), check: false, timeoutMs: 10_000 })
      .catch(() => undefined);
  }
}

/** $1 = the client's id, $2 = the session's socket: detach that client if it is still there, forget its id. */
const DETACH_CLIENT = 'f=/run/bottle/clients/$1; t=$(cat "$f" 2>/dev/null); rm -f "$f"; [ -n "$t" ] && tmux -S "$2" detach-client -t "$t" 2>/dev/null; exit 0';

/** Start the session and attach this terminal to it (`bottle up`); resolves when the terminal detaches or Claude Code ends. */
export async function startAttached(bottle: BottleHandle, plan: Plan, claude: ClaudeArgs = {}): Promise<number> {
  return asClient(bottle, plan, "start", ["new-session", "-A", "-s", SESSION, "--", ...sessionCommand(plan, claude)]);
}

export type SessionState =
  | { state: "attached" | "detached"; clients: number }
  | { state: "exited"; exitCode?: number }
  /** The bottle was started with a command of its own. */
  | { state: "none" };

/**
 * Where the bottle's session stands, from its processes (`COMMAND ARGS`
 * lines): its tmux server, the clients attached to it, and bottle-session,
 * the window's command. tmux names its processes "tmux: server" and "tmux:
 * client"; the socket tells the bottle's session from any tmux the agent
 * runs itself. A server whose command has ended keeps the last screen of
 * what ran unwatched (tmux.conf): exited.
 */
export function sessionStateFrom(processes: string[], plan: Pick<Plan, "interactive">): SessionState {
  const ours = processes.filter((line) => line.includes(SESSION_SOCKET));
  const server = ours.some((line) => line.startsWith("tmux: server"));
  const running = processes.some((line) => line.startsWith("bottle-session "));
  const clients = ours.filter((line) => line.startsWith("tmux: client")).length;
  if (server && running) return clients > 0 ? { state: "attached", clients } : { state: "detached", clients: 0 };
  return plan.interactive ? { state: "exited" } : { state: "none" };
}

/** The session's state, with the exit code once Claude Code has ended. */
export async function sessionState(bottle: BottleHandle, plan: Plan): Promise<SessionState> {
  const state = sessionStateFrom(await bottle.processes(), plan);
  if (state.state !== "exited") return state;
  const ended = await bottle.exec(["cat", SESSION_EXIT], { check: false });
  const code = Number.parseInt(ended.stdout.trim(), 10);
  return Number.isInteger(code) ? { state: "exited", exitCode: code } : { state: "exited" };
}

/** bottle-attach's answers when there is nothing to join: the command has ended, there is no session. */
const JOIN_ENDED = 3;
const JOIN_NO_SESSION = 4;

/**
 * `bottle attach NAME`: this terminal joins the running session (sharing it
 * with any other terminal attached), in one exec that checks there is one;
 * only when there is not does the session's state say why. A command after
 * `--` runs on its own.
 */
export async function attachSession(bottle: BottleHandle, plan: Plan, passthrough: string[]): Promise<number> {
  if (passthrough.length) return runCommand(bottle, plan, passthrough);
  const code = await asClient(bottle, plan, "join", ["attach-session", "-t", SESSION]);
  if (code !== JOIN_ENDED && code !== JOIN_NO_SESSION) return code;
  const state = await sessionState(bottle, plan);
  if (state.state === "none")
    throw new BottleError(`${plan.name} runs no session: its command ran on the terminal that started it`, {
      fix: `run a command in it with \`bottle exec ${plan.name} -- CMD\``,
    });
  if (state.state === "exited") {
    // What it showed last, when it ended with no terminal attached (a detached run's output).
    const screen = await bottle.exec([...TMUX, "capture-pane", "-p", "-J", "-S", "-", "-t", SESSION], { ...asAgent(plan), check: false });
    if (screen.exitCode === 0) process.stdout.write(`${screen.stdout.replace(/\n+$/, "")}\n`);
    throw new BottleError(`${sessionWhat(plan)} in ${plan.name} has exited${state.exitCode === undefined ? "" : ` (exit code ${state.exitCode})`}`, {
      fix: plan.command.length
        ? `run a command in it with \`bottle exec ${plan.name} -- CMD\`, or remove it: \`bottle down ${plan.name}\``
        : `resume the conversation in a new bottle: \`bottle down ${plan.name}\`, then \`bottle up ${plan.agent.name} --continue\``,
    });
  }
  throw new BottleError(`the session in ${plan.name} ${code === JOIN_ENDED ? "has just ended" : "has just started"}`, { fix: `try again: \`bottle attach ${plan.name}\`` });
}

/** A command in the bottle on the user's terminal (or pipe); resolves with its exit code. */
export async function runCommand(bottle: BottleHandle, plan: Plan, argv: string[]): Promise<number> {
  return bottle.interactive(agentCommand(plan, argv), asAgent(plan));
}
