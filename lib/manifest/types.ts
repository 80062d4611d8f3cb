import type { EnvSource } from "./env-value.ts";
import type { Position } from "./yaml-positions.ts";
import type { BackendName } from "../backends/names.ts";
import type { EFFORT_LEVELS, PERMISSION_MODES } from "../claude-flags.ts";
import type { McpServerConfig } from "./schema.ts";
import type { PresetRef } from "./presets.ts";
import type { PortSpec } from "./ports.ts";

export type { EnvSource };

export interface GitUser {
  name?: string;
  email?: string;
}

export interface ResolvedEnvEntry {
  source: EnvSource;
  /** The file that set it (the last one in the extends chain). */
  file: string;
  /** Where in that file, for errors at launch. */
  line: number;
  col: number;
}

/** A credential route: the gate adds `header: [scheme ]<token>` to matching HTTPS requests to `host`. */
export interface ResolvedRoute {
  host: string;
  /** 443 unless the host named a port. */
  port: number;
  header: string;
  scheme?: string;
  /** Where the credential comes from (its value never leaves the gate). */
  token: ResolvedEnvEntry;
  /** The bottle's env var holding the placeholder; default the `${VAR}` name of token. */
  env?: string;
  /** Path prefixes; empty = every path. */
  paths: string[];
  /** Upper-case methods; empty = every method. */
  methods: string[];
}

/** How Claude Code logs in (`auth:`); every field optional, later files win per field. */
export interface ResolvedAuth {
  token?: ResolvedEnvEntry;
  kind?: "oauth" | "api-key";
  upstream?: string;
}

/** A name in a list, with where it was written (for errors found later, at planning). */
export interface Located<T> extends Position {
  value: T;
  file: string;
  /** Its field path, like `claude.mcp[0]`. */
  path: string;
}

/** What of the user's own Claude setup comes into the bottle (`claude:`). */
export interface ClaudeSetupChoice {
  memory: boolean;
  commands: boolean;
  agents: boolean;
  outputStyles: boolean;
  settings: boolean;
  hooks: boolean;
  /** Names of MCP servers in the host's ~/.claude.json. */
  mcp: Located<string>[];
  skills: Located<string>[];
}

/** A bottle after `extends` is merged and paths are made absolute. */
export interface ResolvedBottle {
  name: string;
  /** Files of the extends chain, child last; "(built-in)" for the embedded default. */
  sources: string[];
  env: Record<string, ResolvedEnvEntry>;
  /** User entries only (not CLAUDE_CODE_HOSTS, not the presets' hosts), deduped, in order; presets by name and version, each once. */
  egress: { allow: string[]; presets: PresetRef[]; allowPrivate: string[]; routes: ResolvedRoute[]; limits: EgressLimitOverrides };
  auth: ResolvedAuth;
  git: {
    user?: GitUser;
    remotes: Record<string, { upstream: string; identityFile: string; knownHostKey: string }>;
  };
  ssh: { hosts: Array<{ host: string; port: number; user?: string; identityFile: string; knownHostKey: string }> };
  workspace: "mount" | "copy" | "branch" | "none";
  /** Absolute paths. */
  caCerts: string[];
  /** Absolute path. */
  image?: { dockerfile: string };
  backend?: BackendName;
  claude: ClaudeSetupChoice;
  /** What the bottle may use of the machine, as written (bytes for memory); unset fields get defaults at planning. */
  resources: ResourceChoice;
  /** Ports forwarded from the host, one per bottle port (a later file's entry for a port replaces an earlier one's). */
  ports: Located<PortSpec>[];
  /**
   * Which file each value came from, keyed by field: `workspace`, `image`,
   * `backend`, `git.user.name`, `git.user.email`, `git.remotes.<name>`,
   * `ssh.hosts.<host>`, `egress.allow.<host>`, `egress.presets.<name>@<version>`, `egress.allow_private.<entry>`,
   * `ca_certs.<path>`, `auth.token`, `auth.kind`, `auth.upstream`, `resources.<field>`. Missing key = built-in default.
   * Routes carry their own file in `token.file`.
   */
  origins: Record<string, string>;
}

export interface ResolvedAgent {
  name: string;
  /** File path or "(built-in)". */
  source: string;
  description?: string;
  /** The Markdown body. */
  prompt: string;
  skills: string[];
  model?: string;
  gitUser?: GitUser;
  bottle: string;
  /** Positions in `source` of fields later checks report on. */
  locations: { bottle?: Position; skills: Position[] };
  /** Its `claude:`, overriding the bottle's field by field (lists: added to the bottle's). */
  claude?: Partial<ClaudeSetupChoice>;
  /** Claude Code's own keys, passed to the session. */
  session?: AgentSession;
  /** `mcpServers` written out in the agent file (names are in claude.mcp). */
  mcpServers?: Located<{ name: string; config: McpServerConfig }>[];
  /** `hooks`, as Claude Code's settings take them. */
  hooks?: Record<string, unknown[]>;
}

/** An agent file's Claude Code keys that become the session's flags. */
export interface AgentSession {
  tools?: string[];
  disallowedTools?: string[];
  permissionMode?: (typeof PERMISSION_MODES)[number];
  effort?: (typeof EFFORT_LEVELS)[number];
  initialPrompt?: string;
}

export interface Resolved {
  agent: ResolvedAgent;
  bottle: ResolvedBottle;
  /** The agent's git user over the bottle's, per field. */
  gitUser?: GitUser;
}

/** Limits a bottle sets for its egress gate (the rest keep their defaults). */
export interface EgressLimitOverrides {
  requestsPerMinute?: number;
  bytesOut?: number;
  idleTimeoutMs?: number;
  maxTunnelMs?: number;
  maxLogBytes?: number;
}

/** The `resources:` fields a bottle sets, each with where (planning checks them against the engine). */
export interface ResourceChoice {
  cpus?: Located<number>;
  /** Bytes. */
  memory?: Located<number>;
  pids?: Located<number>;
}
