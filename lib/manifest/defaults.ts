import type { ResolvedAgent, ResolvedBottle } from "./types.ts";

/** Hosts Claude Code itself needs; every bottle may reach them. */
export const CLAUDE_CODE_HOSTS: readonly string[] = Object.freeze([
  "api.anthropic.com",
  "console.anthropic.com",
  "claude.ai",
  "platform.claude.com",
  "statsig.anthropic.com",
  "sentry.io",
]);

/** The `source` of the embedded default bottle and agent. */
export const BUILTIN = "(built-in)";

export const DEFAULT_NAME = "default";

/** The embedded `default` bottle: Claude Code's hosts only, workspace mounted. */
export function builtinBottle(): ResolvedBottle {
  return {
    name: DEFAULT_NAME,
    sources: [BUILTIN],
    env: {},
    egress: { allow: [], presets: [], allowPrivate: [], routes: [], limits: {} },
    auth: {},
    git: { remotes: {} },
    ssh: { hosts: [] },
    workspace: "mount",
    caCerts: [],
    ports: [],
    origins: {},
    resources: {},
    // Plain text the user wrote: in by default. Settings, hooks and MCP servers run or reach things: only when asked.
    claude: { memory: true, commands: true, agents: true, outputStyles: true, settings: false, hooks: false, mcp: [], skills: [] },
  };
}

/** The embedded `default` agent: no prompt, no skills, the default bottle. */
export function builtinAgent(): ResolvedAgent {
  return { name: DEFAULT_NAME, source: BUILTIN, prompt: "", skills: [], bottle: DEFAULT_NAME, locations: { skills: [] } };
}
