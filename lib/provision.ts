import { AGENT_HOME, AGENT_USER } from "./agent-user.ts";
import type { BottleHandle, GateAddresses } from "./backends/types.ts";
import { bottleTrust } from "./gates/custody/index.ts";
import { startAgentRelay } from "./gates/ssh/host.ts";
import type { HostRepo } from "./git/host-repo.ts";
import { checkoutBranch } from "./git/branch-workspace.ts";
import { OBJECTS_BUNDLE, unbundleObjects } from "./git/objects-bundle.ts";
import { workspaceGitEntries } from "./git/workspace-git.ts";
import { checkMcpCommands, claudeJsonMcp, claudeSetupEntries, type ClaudeSetup } from "./claude-setup/index.ts";
import { createTar, dirEntries } from "./tar.ts";
import { recordWorkspaceRefs } from "./workspace.ts";
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
/**
 * The agent's skills, this launch's list: outside ~/.claude, which is a kept
 * home (lib/homes.ts) where an earlier launch's skills would linger;
 * bottle-run links ~/.claude/skills to it.
 */
export const MANAGED_SKILLS = `${AGENT_HOME}/.bottle/skills`;

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
export function claudeState(apiKey: string | undefined, mcpServers: Record<string, unknown> = {}): Record<string, unknown> {
  const state: Record<string, unknown> = {
    hasCompletedOnboarding: true,
    theme: "dark",
    bypassPermissionsModeAccepted: true,
    autoUpdates: false,
    projects: {
      // External imports approved: the user's memory comes in as one (bottle-claude-sync).
      "/workspace": {
        hasTrustDialogAccepted: true,
        hasCompletedProjectOnboarding: true,
        hasClaudeMdExternalIncludesApproved: true,
        hasClaudeMdExternalIncludesWarningShown: true,
        allowedTools: [],
      },
    },
  };
  if (apiKey) state.customApiKeyResponses = { approved: [apiKey.slice(-20)], rejected: [] };
  // User scope: Claude Code uses them in every session, and `claude mcp list` shows them.
  if (Object.keys(mcpServers).length) state.mcpServers = mcpServers;
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

export interface ProvisionInput {
  plan: Plan;
  envValues: Record<string, string>;
  prompt: string;
  /** Host dir of each skill by name. */
  skillDirs: Record<string, string>;
  /** The user's Claude setup this launch brings (lib/claude-setup/). */
  claudeSetup?: ClaudeSetup;
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
    dir(`${AGENT_HOME}/.bottle`),
    dir(MANAGED_SKILLS),
    file(`${AGENT_HOME}/.claude.json`, `${JSON.stringify(claudeState(apiKey, input.claudeSetup ? claudeJsonMcp(input.claudeSetup) : {}), null, 2)}\n`, 0o600),
    file(`${AGENT_HOME}/.gitconfig`, gitconfigContent(input.plan.gitUser, input.plan.git?.remotes)),
    dir("/run/bottle", 0o700),
    file(ENV_FILE, envFileContent(input.envValues), 0o400),
  ];
  if (input.prompt.trim()) entries.push(file(PROMPT_PATH, input.prompt, 0o600));
  if (input.plan.ssh) entries.push(...sshBottleEntries(input.plan.ssh, input.sshPublicKeys ?? {}, AGENT_HOME, uid, gid));
  for (const [name, hostDir] of Object.entries(input.skillDirs)) entries.push(...dirEntries(hostDir, `${MANAGED_SKILLS}/${name}`, uid, gid));
  if (input.claudeSetup) entries.push(...claudeSetupEntries(input.claudeSetup, uid, gid));
  if (input.plan.workspace.mode !== "mount") entries.push(dir("/workspace"));
  return entries;
}

/**
 * Files of a project dir as tar entries under /workspace (workspace: copy),
 * without any `.git`: a repository's history comes as the private git dir,
 * never the host's own (its config and hooks would come along).
 */
export function workspaceEntries(hostDir: string, uid: number, gid: number): TarEntry[] {
  return dirEntries(hostDir, "/workspace", uid, gid, (name) => name === ".git");
}

/** The container's /etc/passwd plus a line for the agent's uid when it is not the image's 1000. */
export async function passwdEntries(bottle: BottleHandle, plan: Plan): Promise<TarEntry[]> {
  const { uid, gid } = plan.workspace.user;
  if (uid === 1000) return [];
  // Both files in one exec (each exec is ~80 ms on the launch path), a NUL between them.
  const both = await bottle.exec(["sh", "-c", "cat /etc/passwd; printf '\\000'; cat /etc/group"]);
  const [passwd = "", group = ""] = both.stdout.split("\0");
  const withoutAgent = (text: string) =>
    text
      .split("\n")
      .filter((line) => line && !line.startsWith(`${AGENT_USER}:`))
      .join("\n");
  return [
    { path: "etc/passwd", content: `${withoutAgent(passwd)}\n${AGENT_USER}:x:${uid}:${gid}::${AGENT_HOME}:/bin/bash\n`, mode: 0o644, uid: 0, gid: 0 },
    { path: "etc/group", content: `${withoutAgent(group)}\n${AGENT_USER}:x:${gid}:\n`, mode: 0o644, uid: 0, gid: 0 },
  ];
}

export interface BottleInputs extends Omit<ProvisionInput, "plan"> {
  /** mount: the host repository the private git dir is made from. */
  workspaceRepo?: HostRepo;
  /** A remote engine: the host's objects, as a bundle (they cannot be mounted there). */
  objects?: Uint8Array;
}

/**
 * The bottle's files in one archive — passwd, the gate's CA (credential
 * routes only: the gate makes it as it starts, so that waits for `gate`, the
 * gate's readiness), env, prompt, skills, a copied workspace or a mounted
 * one's private git dir — then the SSH agent relay.
 */
export async function provisionBottle(bottle: BottleHandle, plan: Plan, gate: Promise<GateAddresses>, inputs: BottleInputs): Promise<void> {
  const [passwd, trust] = await Promise.all([passwdEntries(bottle, plan), bottleTrust(bottle, plan, () => gate.then((g) => g.ca))]);
  const { workspaceRepo, objects, ...input } = inputs;
  const entries = [...passwd, ...trust.entries, ...provisionEntries({ ...input, plan, envValues: { ...input.envValues, ...trust.env } })];
  const { mode, hostPath, user, git, containerPath } = plan.workspace;
  if (mode === "copy" && hostPath) entries.push(...workspaceEntries(hostPath, user.uid, user.gid));
  if (git) entries.push(...workspaceGitEntries(git, workspaceRepo, containerPath, user.uid, user.gid, !objects));
  if (objects) entries.push({ path: OBJECTS_BUNDLE, content: objects, mode: 0o600, uid: user.uid, gid: user.gid });
  await bottle.copyIn("/", createTar(entries));
  if (objects) await unbundleObjects(bottle, plan);
  await checkoutBranch(bottle, plan);
  if (input.claudeSetup) await checkMcpCommands(bottle, plan, input.claudeSetup);
  await startAgentRelay(bottle, plan);
  // A copy without a repository is saved whole at teardown when it changed (with one, its work comes back as a branch).
  if (mode === "copy" && !git) await recordWorkspaceRefs(bottle);
}
