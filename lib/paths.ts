import { homedir } from "node:os";
import { join } from "node:path";

/** Every host path bottle reads or writes is derived here. */
type Env = Record<string, string | undefined>;

function xdg(env: Env, variable: string, fallback: string[]): string {
  const value = env[variable];
  return value && value.startsWith("/") ? value : join(env.HOME || homedir(), ...fallback);
}

export function configDir(env: Env = process.env): string {
  return env.BOTTLE_CONFIG_DIR || join(xdg(env, "XDG_CONFIG_HOME", [".config"]), "bottle");
}

export function cacheDir(env: Env = process.env): string {
  return join(xdg(env, "XDG_CACHE_HOME", [".cache"]), "bottle");
}

export function stateDir(env: Env = process.env): string {
  return join(xdg(env, "XDG_STATE_HOME", [".local", "state"]), "bottle");
}

export function bottleStateDir(name: string, env: Env = process.env): string {
  return join(stateDir(env), "bottles", name);
}

export function userBottlesDir(env: Env = process.env): string {
  return join(configDir(env), "bottles");
}

export function userAgentsDir(env: Env = process.env): string {
  return join(configDir(env), "agents");
}

export function projectAgentsDir(projectDir: string): string {
  return join(projectDir, ".bottle", "agents");
}

/** The user's Claude Code config dir on the host ($CLAUDE_CONFIG_DIR, else ~/.claude): what `claude:` copies in from. */
export function hostClaudeDir(env: Env = process.env): string {
  return env.CLAUDE_CONFIG_DIR || join(env.HOME || homedir(), ".claude");
}

/** Claude Code's global config on the host (its MCP servers): in $CLAUDE_CONFIG_DIR when set, else ~/.claude.json. */
export function hostClaudeJson(env: Env = process.env): string {
  return env.CLAUDE_CONFIG_DIR ? join(env.CLAUDE_CONFIG_DIR, ".claude.json") : join(env.HOME || homedir(), ".claude.json");
}

/** Claude Code's own skills dir on the host; skills are copied from here. */
export function userSkillsDir(env: Env = process.env): string {
  return join(hostClaudeDir(env), "skills");
}
