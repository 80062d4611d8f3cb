import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { AGENT_HOME } from "./agent-user.ts";
import { insteadOfConfig } from "./gates/git/config.ts";
import { sshBottleEntries } from "./gates/ssh/config.ts";
import type { Plan } from "./plan.ts";
import type { TarEntry } from "./tar.ts";

/**
 * What a fresh bottle needs in its HOME before the agent starts: Claude
 * Code's state (so it lands straight at the prompt), skills, the system
 * prompt, the git identity and the env file. Backend-agnostic: the result is
 * a list of tar entries.
 */

export { AGENT_HOME };
export const PROMPT_PATH = `${AGENT_HOME}/.claude/bottle/prompt.md`;
export const ENV_FILE = "/run/bottle/env";

/** Shell-quote for the env file, which `bottle-run` sources. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function envFileContent(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([name, value]) => `export ${name}=${shellQuote(value)}\n`)
    .join("");
}

/**
 * Claude Code's ~/.claude.json with every first-run dialog already answered
 * (onboarding, theme, folder trust, bypass-permissions warning, API key).
 */
export function claudeState(apiKey: string | undefined): Record<string, unknown> {
  const state: Record<string, unknown> = {
    hasCompletedOnboarding: true,
    theme: "dark",
    bypassPermissionsModeAccepted: true,
    autoUpdates: false,
    projects: {
      "/workspace": { hasTrustDialogAccepted: true, hasCompletedProjectOnboarding: true, allowedTools: [] },
    },
  };
  if (apiKey) state.customApiKeyResponses = { approved: [apiKey.slice(-20)], rejected: [] };
  return state;
}

/** The bottle user's gitconfig: identity, and each git remote's upstream rewritten to the git gate. */
export function gitconfigContent(user: Plan["gitUser"], remotes: NonNullable<Plan["git"]>["remotes"] = []): string {
  const lines = ["[safe]", "\tdirectory = /workspace", "[init]", "\tdefaultBranch = main"];
  if (user?.name || user?.email) {
    lines.push("[user]");
    if (user.name) lines.push(`\tname = ${user.name}`);
    if (user.email) lines.push(`\temail = ${user.email}`);
  }
  return `${lines.join("\n")}\n${insteadOfConfig(remotes)}`;
}

function collectDir(hostDir: string, targetDir: string, uid: number, gid: number, into: TarEntry[]): void {
  into.push({ path: targetDir, type: "dir", mode: 0o755, uid, gid });
  for (const entry of readdirSync(hostDir, { withFileTypes: true })) {
    const source = join(hostDir, entry.name);
    const target = `${targetDir}/${entry.name}`;
    if (entry.isDirectory()) collectDir(source, target, uid, gid, into);
    else if (entry.isFile()) {
      const mode = statSync(source).mode & 0o777;
      into.push({ path: target, content: readFileSync(source), mode: mode & 0o111 ? 0o755 : 0o644, uid, gid });
    }
  }
}

export interface ProvisionInput {
  plan: Plan;
  envValues: Record<string, string>;
  prompt: string;
  /** Host dir of each skill by name. */
  skillDirs: Record<string, string>;
  /** The SSH gate's public keys by host (`<type> <base64>`), for ~/.ssh. */
  sshPublicKeys?: Record<string, string>;
}

export function provisionEntries(input: ProvisionInput): TarEntry[] {
  const { uid, gid } = input.plan.workspace.user;
  const file = (path: string, content: string, mode = 0o644): TarEntry => ({ path, content, mode, uid, gid });
  const dir = (path: string, mode = 0o755): TarEntry => ({ path, type: "dir", mode, uid, gid });
  const apiKey = input.envValues.ANTHROPIC_API_KEY;
  const entries: TarEntry[] = [
    dir(AGENT_HOME),
    dir(`${AGENT_HOME}/.claude`),
    dir(`${AGENT_HOME}/.claude/bottle`, 0o700),
    dir(`${AGENT_HOME}/.claude/skills`),
    file(`${AGENT_HOME}/.claude.json`, `${JSON.stringify(claudeState(apiKey), null, 2)}\n`, 0o600),
    file(`${AGENT_HOME}/.gitconfig`, gitconfigContent(input.plan.gitUser, input.plan.git?.remotes)),
    dir("/run/bottle", 0o700),
    file(ENV_FILE, envFileContent(input.envValues), 0o400),
  ];
  if (input.prompt.trim()) entries.push(file(PROMPT_PATH, input.prompt, 0o600));
  if (input.plan.ssh) entries.push(...sshBottleEntries(input.plan.ssh, input.sshPublicKeys ?? {}, AGENT_HOME, uid, gid));
  for (const [name, hostDir] of Object.entries(input.skillDirs)) collectDir(hostDir, `${AGENT_HOME}/.claude/skills/${name}`, uid, gid, entries);
  if (input.plan.workspace.mode !== "mount") entries.push(dir("/workspace"));
  return entries;
}

/** Files of a project dir as tar entries under /workspace (workspace: copy). */
export function workspaceEntries(hostDir: string, uid: number, gid: number): TarEntry[] {
  const entries: TarEntry[] = [];
  collectDir(hostDir, "/workspace", uid, gid, entries);
  return entries.map((entry) => ({ ...entry, path: entry.path, mode: entry.type === "dir" ? 0o755 : entry.mode }));
}

/** The argv that runs inside the bottle: Claude Code by default, or the user's command. */
export function agentCommand(plan: Plan, passthrough: string[]): string[] {
  if (passthrough.length) return ["bottle-run", ...passthrough];
  const argv = ["bottle-run", "claude", "--dangerously-skip-permissions"];
  if (plan.agent.hasPrompt) argv.push("--append-system-prompt-file", PROMPT_PATH);
  if (plan.agent.model) argv.push("--model", plan.agent.model);
  return argv;
}
