import { readdirSync, realpathSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { AGENT_HOME } from "../agent-user.ts";
import type { BottleHandle } from "../backends/types.ts";
import { BottleError } from "../errors.ts";
import type { Plan } from "../plan.ts";
import { ManifestError, displayPath, type ManifestIssue } from "../manifest/errors.ts";
import type { ClaudeSetupChoice, Located, Resolved } from "../manifest/types.ts";
import { egressHosts } from "../manifest/presets.ts";
import { hostClaudeDir, hostClaudeJson } from "../paths.ts";
import { sensitiveHolder, sensitivePaths } from "../sensitive-paths.ts";
import { didYouMean } from "../suggest.ts";
import { dirEntries, type TarEntry } from "../tar.ts";
import { readMemory, type Memory } from "./memory.ts";
import { bottleMcpServers, hostMcpServers, type McpPlan, planMcp } from "./mcp.ts";
import { type BottleSettings, bottleSettings, readJsonObject } from "./settings.ts";

/**
 * The user's own Claude setup in a bottle (`claude:` in a bottle, an agent's
 * overriding it): read from the host's ~/.claude (or $CLAUDE_CONFIG_DIR) at
 * planning, so a problem stops the launch before anything exists, and staged
 * as copies in the bottle (STAGE), from where bottle-claude-sync puts them
 * into the kept ~/.claude. The host's files are only ever read.
 */

type Env = Record<string, string | undefined>;

/** Where provisioning puts the copies in the bottle; outside the kept home, so each launch starts from the host's. */
export const CLAUDE_STAGE = `${AGENT_HOME}/.bottle/claude`;
/** The settings file the session is started with (`claude --settings`). */
export const STAGED_SETTINGS = `${CLAUDE_STAGE}/settings.json`;

/** The folders of ~/.claude that come in as they are, by their `claude:` field. */
const FOLDERS = [
  { field: "commands", folder: "commands", what: "commands" },
  { field: "agents", folder: "agents", what: "sub-agents" },
  { field: "outputStyles", folder: "output-styles", what: "output styles" },
] as const;

export interface ClaudeSetup {
  choice: ClaudeSetupChoice;
  memory?: Memory;
  folders: Array<{ folder: string; host: string; files: number }>;
  settings?: BottleSettings;
  mcp: McpPlan;
  /** Skill names, each a folder of the host's skills dir. */
  skills: string[];
  /** What comes in, item by item, for the preflight and `bottle info`. */
  rows: Array<[string, string]>;
  /** What was asked for and is not there, or left out: said, never fatal. */
  notes: string[];
}

/** The bottle's `claude:` with the agent's over it: yes/no per field, the lists (and the agent's skills) added up. */
export function claudeChoice(resolved: Resolved): ClaudeSetupChoice {
  const bottle = resolved.bottle.claude;
  const agent = resolved.agent.claude ?? {};
  const agentSkills: Located<string>[] = resolved.agent.skills.map((skill, index) => ({
    value: skill,
    file: resolved.agent.source,
    ...(resolved.agent.locations.skills[index] ?? { line: 0, col: 0 }),
    path: `skills[${index}]`,
  }));
  const unique = (entries: Located<string>[]) => entries.filter((entry, index) => entries.findIndex((other) => other.value === entry.value) === index);
  return {
    memory: agent.memory ?? bottle.memory,
    commands: agent.commands ?? bottle.commands,
    agents: agent.agents ?? bottle.agents,
    outputStyles: agent.outputStyles ?? bottle.outputStyles,
    settings: agent.settings ?? bottle.settings,
    hooks: agent.hooks ?? bottle.hooks,
    mcp: unique([...bottle.mcp, ...(agent.mcp ?? [])]),
    skills: unique([...agentSkills, ...bottle.skills, ...(agent.skills ?? [])]),
  };
}

function countFiles(dir: string): number {
  let count = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) count += countFiles(join(dir, entry.name));
    else if (entry.isFile()) count += 1;
  }
  return count;
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

/**
 * What this launch brings of the user's Claude setup. Throws one
 * ManifestError with every problem (an unknown skill or MCP server, a broken
 * settings.json or ~/.claude.json, an MCP host not allowed); what is merely
 * absent on the host is a note.
 */
export function loadClaudeSetup(resolved: Resolved, env: Env, projectDir?: string): ClaudeSetup {
  const choice = claudeChoice(resolved);
  const dir = hostClaudeDir(env);
  const shown = displayPath(dir, env);
  const sensitive = sensitivePaths(env, resolved.bottle);
  const rows: Array<[string, string]> = [];
  const notes: string[] = [];
  const issues: ManifestIssue[] = [];
  const setup: ClaudeSetup = { choice, folders: [], mcp: { servers: [], routes: [] }, skills: [], rows, notes };

  if (choice.memory) {
    const memory = readMemory(join(dir, "CLAUDE.md"), CLAUDE_STAGE, env.HOME || homedir(), sensitive);
    if (!memory) notes.push(`claude.memory: there is no ${shown}/CLAUDE.md`);
    else {
      setup.memory = memory;
      const imports = memory.files.length - 1;
      rows.push(["memory", `${shown}/CLAUDE.md${imports ? ` and ${plural(imports, "file")} it imports` : ""}`]);
      for (const skipped of memory.skipped) notes.push(`claude.memory: ${skipped}`);
    }
  }

  for (const { field, folder, what } of FOLDERS) {
    if (!choice[field]) continue;
    const host = join(dir, folder);
    if (!isDir(host)) {
      notes.push(`claude.${field === "outputStyles" ? "output_styles" : field}: there is no ${shown}/${folder}/`);
      continue;
    }
    const holder = sensitiveHolder(realpathSync(host), sensitive);
    if (holder) {
      notes.push(`claude.${folder}: ${shown}/${folder} leads into ${holder.path} (${holder.what}), which never goes into a bottle`);
      continue;
    }
    const files = countFiles(host);
    setup.folders.push({ folder, host, files });
    rows.push([what, `${plural(files, "file")} from ${shown}/${folder}/`]);
  }

  const skillsDir = join(dir, "skills");
  for (const skill of choice.skills) {
    if (isDir(join(skillsDir, skill.value))) setup.skills.push(skill.value);
    else
      issues.push({ ...skill, message: `skill "${skill.value}" not found in ${displayPath(skillsDir, env)}/${didYouMean(skill.value, listDirs(skillsDir), (s) => `"${s}"`)}` });
  }
  if (setup.skills.length) rows.push(["skills", setup.skills.join(", ")]);

  if (choice.settings || choice.hooks || resolved.agent.hooks) {
    const path = join(dir, "settings.json");
    const host = choice.settings || choice.hooks ? readJsonObject(path, env) : undefined;
    if (!host && (choice.settings || choice.hooks)) notes.push(`claude.${choice.settings ? "settings" : "hooks"}: there is no ${shown}/settings.json`);
    const settings = bottleSettings(host, { all: choice.settings, hooks: choice.hooks }, resolved.agent.hooks);
    notes.push(...settings.dropped);
    if (Object.keys(settings.settings).length) {
      setup.settings = settings;
      if (choice.settings && host) rows.push(["settings", `${shown}/settings.json${settings.dropped.length ? ` (less ${settings.dropped.length} key(s) that carry secrets)` : ""}`]);
      if (settings.hookEvents.length) rows.push(["hooks", `${settings.hookEvents.join(", ")} — they run inside the bottle, as the agent`]);
    }
  }

  const inline = resolved.agent.mcpServers ?? [];
  if (choice.mcp.length || inline.length) {
    const claudeJsonPath = hostClaudeJson(env);
    const claudeJson = choice.mcp.length ? readJsonObject(claudeJsonPath, env) : undefined;
    const planned = planMcp(choice.mcp, inline, hostMcpServers(claudeJson, projectDir), { allow: egressHosts(resolved.bottle.egress), claudeJsonPath, env });
    issues.push(...planned.issues);
    setup.mcp = planned.plan;
    for (const server of planned.plan.servers) rows.push([`mcp ${server.name}`, server.describe]);
  }

  if (issues.length) {
    const skillsMissing = issues.some((issue) => issue.message.startsWith("skill "));
    const fixes = [
      ...(skillsMissing ? [`install each skill as a folder with a SKILL.md under ${displayPath(skillsDir, env)}/, or remove it from the list`] : []),
      ...(issues.length > issues.filter((issue) => issue.message.startsWith("skill ")).length ? ["fix each MCP server as said, or leave it out"] : []),
    ];
    throw new ManifestError(issues, { env, fix: fixes.join("; ") });
  }
  return setup;
}

function listDirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
  } catch {
    return [];
  }
}

/** The staged copies as tar entries, owned by the agent user. */
export function claudeSetupEntries(setup: ClaudeSetup, uid: number, gid: number): TarEntry[] {
  const entries: TarEntry[] = [{ path: CLAUDE_STAGE, type: "dir", mode: 0o755, uid, gid }];
  for (const file of setup.memory?.files ?? []) entries.push({ path: file.bottle, content: file.content, mode: 0o644, uid, gid });
  if (setup.memory && setup.memory.files.length > 1) entries.splice(1, 0, { path: `${CLAUDE_STAGE}/imports`, type: "dir", mode: 0o755, uid, gid });
  for (const { folder, host } of setup.folders) entries.push(...dirEntries(host, `${CLAUDE_STAGE}/${folder}`, uid, gid));
  if (setup.settings) entries.push({ path: STAGED_SETTINGS, content: `${JSON.stringify(setup.settings.settings, null, 2)}\n`, mode: 0o600, uid, gid });
  return entries;
}

/** The `mcpServers` of the bottle's ~/.claude.json (user scope, so `claude mcp list` shows them). */
export function claudeJsonMcp(setup: ClaudeSetup): Record<string, unknown> {
  return bottleMcpServers(setup.mcp.servers);
}

/** The stdio servers' commands, which the bottle's image must have. */
export function mcpCommands(setup: ClaudeSetup): Array<{ server: string; command: string }> {
  return setup.mcp.servers.flatMap((server) => (server.command ? [{ server: server.name, command: server.command }] : []));
}

/** A stdio server whose command the bottle does not have is an error at launch (the image is only known then). */
export async function checkMcpCommands(bottle: BottleHandle, plan: Plan, setup: ClaudeSetup): Promise<void> {
  const commands = mcpCommands(setup);
  if (!commands.length) return;
  const { uid, gid } = plan.workspace.user;
  // As the session runs them: with the bottle's env and PATH, from the workspace.
  const script = 'for c; do command -v "$c" >/dev/null 2>&1 || printf "%s\\n" "$c"; done';
  const out = await bottle.exec(["bottle-run", "sh", "-c", script, "check", ...commands.map((entry) => entry.command)], { user: `${uid}:${gid}`, check: false });
  const missing = new Set(out.stdout.split("\n").filter(Boolean));
  const bad = commands.filter((entry) => missing.has(entry.command));
  if (!bad.length) return;
  throw new BottleError(`the MCP server${bad.length > 1 ? "s" : ""} ${bad.map((entry) => `"${entry.server}" (${entry.command})`).join(", ")} cannot run: not in the bottle's image`, {
    fix: "add the command to the image (a bottle's image: { dockerfile: extra.Dockerfile } with a RUN line that installs it), or leave the server out of claude.mcp",
  });
}

/** Values that enter the bottle with MCP servers (stdio env): the gate's DLP keeps them from leaving. */
export function mcpSecrets(setup: ClaudeSetup): string[] {
  return setup.mcp.servers.flatMap((server) => server.secrets);
}
