import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { BottleError } from "../errors.ts";
import { log } from "../log.ts";
import { projectAgentsDir, userAgentsDir, userBottlesDir, userSkillsDir } from "../paths.ts";
import { didYouMean } from "../suggest.ts";
import { BUILTIN, DEFAULT_NAME, builtinAgent } from "./defaults.ts";
import { ManifestError, displayPath, formatIssue, type ManifestIssue } from "./errors.ts";
import { loadAgentFile } from "./load.ts";
import { NAME_PATTERN } from "./schema.ts";
import { CLAUDE_SETUP_FLAGS, mergeClaudeSetup } from "./merge.ts";
import type { AgentSession, ClaudeSetupChoice, ResolvedAgent } from "./types.ts";

type Env = Record<string, string | undefined>;

export interface AgentFileRef {
  name: string;
  file: string;
  scope: "project" | "user";
}

/** Agent files in one dir by name. Files whose names are not agent names are skipped with a warning. */
function agentFilesIn(dir: string, scope: AgentFileRef["scope"], env: Env, warn: boolean): Map<string, AgentFileRef> {
  const found = new Map<string, AgentFileRef>();
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!entry.endsWith(".md")) continue;
    const name = entry.slice(0, -3);
    const file = join(dir, entry);
    if (!NAME_PATTERN.test(name)) {
      if (warn) {
        log.warn(`skipping ${displayPath(file, env)}: agent file names must be lower-case letters, digits and - (starting with a letter), like ${suggestName(name)}.md`);
      }
      continue;
    }
    found.set(name, { name, file, scope });
  }
  return found;
}

function suggestName(name: string): string {
  const cleaned = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .replace(/-+$/, "");
  return cleaned || "my-agent";
}

/** Project agents first, then the user's: the first file of a name wins. */
export function agentFiles(projectDir: string, env: Env, warn = false): Map<string, AgentFileRef> {
  const all = agentFilesIn(projectAgentsDir(projectDir), "project", env, warn);
  for (const [name, ref] of agentFilesIn(userAgentsDir(env), "user", env, warn)) if (!all.has(name)) all.set(name, ref);
  return all;
}

/** A repository may ship agents, never bottles: say why its `.bottle/bottles/` does nothing. */
export function warnProjectBottles(projectDir: string, env: Env): void {
  const dir = join(projectDir, ".bottle", "bottles");
  if (existsSync(dir)) {
    log.warn(
      `ignoring ${displayPath(dir, env)}: a repository cannot define or override bottles — bottles carry credentials and egress rules, so they live only in ${displayPath(userBottlesDir(env), env)}/`,
    );
  }
}

/** Read one agent file into a ResolvedAgent; throws ManifestError with every problem. */
export function readAgent(ref: AgentFileRef, env: Env = process.env): ResolvedAgent {
  const result = loadAgentFile(ref.file);
  if (!result.ok) throw new ManifestError(result.issues, { env });
  const { manifest, prompt } = result.loaded.value;
  const { locate } = result.loaded;
  const agent: ResolvedAgent = {
    name: ref.name,
    source: ref.file,
    prompt,
    skills: manifest.skills ?? [],
    bottle: manifest.bottle ?? DEFAULT_NAME,
    locations: {
      skills: (manifest.skills ?? []).map((_, index) => locate(["skills", index])),
      ...(manifest.bottle === undefined ? {} : { bottle: locate(["bottle"]) }),
    },
  };
  if (manifest.description !== undefined) agent.description = manifest.description;
  if (manifest.model !== undefined) agent.model = manifest.model;
  if (manifest.git?.user) agent.gitUser = { ...manifest.git.user };
  if (manifest.name !== undefined && manifest.name !== ref.name)
    throw new ManifestError([{ file: ref.file, ...locate(["name"]), path: "name", message: `"${manifest.name}" is not this agent's name: the file names it ${ref.name}` }], {
      env,
      fix: `write name: ${ref.name}, or remove the line (bottle takes the name from the file)`,
    });
  if (manifest.claude) {
    const claude = { memory: false, commands: false, agents: false, outputStyles: false, settings: false, hooks: false, mcp: [], skills: [] } as ClaudeSetupChoice;
    mergeClaudeSetup(claude, manifest.claude, ref.file, locate);
    // Only what the file sets overrides the bottle.
    agent.claude = {
      ...Object.fromEntries(CLAUDE_SETUP_FLAGS.filter(([key]) => manifest.claude![key] !== undefined).map(([, field]) => [field, claude[field]])),
      ...(manifest.claude.mcp ? { mcp: claude.mcp } : {}),
      ...(manifest.claude.skills ? { skills: claude.skills } : {}),
    };
  }
  const session: AgentSession = {
    ...(manifest.tools ? { tools: manifest.tools } : {}),
    ...(manifest.disallowedTools ? { disallowedTools: manifest.disallowedTools } : {}),
    ...(manifest.permissionMode ? { permissionMode: manifest.permissionMode } : {}),
    ...(manifest.effort ? { effort: manifest.effort } : {}),
    ...(manifest.initialPrompt ? { initialPrompt: manifest.initialPrompt } : {}),
  };
  if (Object.keys(session).length) agent.session = session;
  const servers = manifest.mcpServers ?? [];
  const named = servers.flatMap((entry, index) =>
    typeof entry === "string" ? [{ value: entry, file: ref.file, ...locate(["mcpServers", index]), path: `mcpServers[${index}]` }] : [],
  );
  if (named.length) agent.claude = { ...agent.claude, mcp: [...(agent.claude?.mcp ?? []), ...named] };
  const inline = servers.flatMap((entry, index) =>
    typeof entry === "string"
      ? []
      : Object.entries(entry).map(([name, config]) => ({ value: { name, config }, file: ref.file, ...locate(["mcpServers", index, name]), path: `mcpServers[${index}].${name}` })),
  );
  if (inline.length) agent.mcpServers = inline;
  if (manifest.hooks) agent.hooks = manifest.hooks;
  return agent;
}

/** Find and read an agent by name: project, then user config, then the built-in default. */
export function resolveAgent(name: string, projectDir: string, env: Env = process.env): ResolvedAgent {
  const looked = `${displayPath(projectAgentsDir(projectDir), env)}/ and ${displayPath(userAgentsDir(env), env)}/`;
  if (!NAME_PATTERN.test(name)) {
    throw new BottleError(`"${name}" is not a valid agent name — use lower-case letters, digits and -, starting with a letter`, {
      fix: `agent files are named like ${suggestName(name)}.md in ${looked}`,
    });
  }
  const files = agentFiles(projectDir, env);
  const ref = files.get(name);
  if (ref) return readAgent(ref, env);
  if (name === DEFAULT_NAME) return builtinAgent();
  agentFiles(projectDir, env, true); // say which files were skipped for their names: one may be the one meant
  const names = [...new Set([...files.keys(), DEFAULT_NAME])].sort();
  const listed = names.map((n) => (files.has(n) ? n : `${n} (built-in)`)).join(", ");
  throw new BottleError(`no agent named "${name}" (looked in ${looked}); agents: ${listed}${didYouMean(name, names, (s) => `"${s}"`)}`, {
    fix: `create ${displayPath(userAgentsDir(env), env)}/${name}.md (bottle init --agent ${name}), or pick one of the agents above`,
  });
}

export interface AgentListing {
  name: string;
  source: string;
  bottle: string;
  description?: string;
}

/**
 * Every agent there is: project and user files (front matter read, no bottle
 * file touched) and the built-in default unless a file overrides it. A file
 * with errors is left out with a warning naming its problems.
 */
export function listAgentsSync(projectDir: string, env: Env = process.env): AgentListing[] {
  warnProjectBottles(projectDir, env);
  const files = agentFiles(projectDir, env, true);
  const out: AgentListing[] = [];
  for (const ref of files.values()) {
    try {
      const agent = readAgent(ref, env);
      out.push({ name: agent.name, source: agent.source, bottle: agent.bottle, ...(agent.description === undefined ? {} : { description: agent.description }) });
    } catch (error) {
      if (!(error instanceof ManifestError)) throw error;
      log.warn(`skipping agent "${ref.name}":\n${error.issues.map((issue) => `  ${formatIssue(issue, env)}`).join("\n")}`);
    }
  }
  if (!files.has(DEFAULT_NAME)) {
    const builtin = builtinAgent();
    out.push({ name: builtin.name, source: BUILTIN, bottle: builtin.bottle });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

