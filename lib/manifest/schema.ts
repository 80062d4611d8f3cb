import * as v from "valibot";
import { didYouMean } from "../suggest.ts";
import { parseEnvValue, envValueProblem } from "./env-value.ts";
import {
  allowEntryProblem,
  hostKeyProblem,
  normalizeHostKey,
  pathPrefixProblem,
  privateEntryProblem,
  routeHostProblem,
  sshHostProblem,
  upstreamProblem,
  upstreamUrlProblem,
} from "./hosts.ts";
import { parsePresetRef, presetNames, presetProblem, presetSpellings, type PresetRef } from "./presets.ts";
import { BACKEND_NAMES } from "../backends/names.ts";
import { formatSize, parseSize } from "../bytes.ts";
import { PORT_SPEC_HINT, parsePortSpec, portClashes, type PortSpec } from "./ports.ts";
import { EFFORT_LEVELS, PERMISSION_MODES } from "../claude-flags.ts";

/**
 * The valibot schemas of bottle and agent manifests. They are the single
 * source of truth: validation, TypeScript types and the JSON Schema
 * (`bottle schema`) all come from here.
 *
 * Messages never quote a value that could be secret: type errors say what
 * kind of value was found, not the value. Only hosts, names and URLs (with
 * credentials cut out) are quoted.
 */

/** Bottle and agent names (and so their file names). */
export const NAME_PATTERN = /^[a-z][a-z0-9-]*$/;
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SKILL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const REMOTE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** HTTP header names, auth schemes and methods (RFC 9110 tokens). */
const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** What kind of value this is, without showing it. */
export function describeValue(input: unknown): string {
  if (input === null || input === undefined) return "nothing";
  if (Array.isArray(input)) return "a list";
  if (typeof input === "object") return "a mapping";
  if (typeof input === "string") return input === "" ? "an empty string" : "text";
  if (typeof input === "number") return "a number";
  if (typeof input === "boolean") return "true/false";
  return typeof input;
}

function lastKey(issue: v.BaseIssue<unknown>): string {
  const item = issue.path?.at(-1);
  return item && "key" in item ? String(item.key) : "";
}

/** A mapping that may have more keys than these (checked elsewhere); a missing one is said so. */
function loose<const TEntries extends v.ObjectEntries>(entries: TEntries, what = "a mapping") {
  return v.looseObject(entries, (issue) => (issue.expected?.startsWith('"') ? "required field is missing" : `expected ${what}, got ${describeValue(issue.input)}`));
}

/** A mapping whose unknown keys are errors with a "did you mean" hint. */
function strict<const TEntries extends v.ObjectEntries>(entries: TEntries, what = "a mapping") {
  return v.strictObject(entries, (issue) => {
    if (issue.expected === "never") {
      const key = lastKey(issue);
      return `unknown field "${key}"${didYouMean(key, Object.keys(entries), (s) => `"${s}"`)}`;
    }
    if (issue.expected?.startsWith('"')) return "required field is missing";
    return `expected ${what}, got ${describeValue(issue.input)}`;
  });
}

function text(what: string) {
  return v.string((issue) => `expected ${what}, got ${describeValue(issue.input)}`);
}

function nonEmptyText(what: string) {
  return v.pipe(text(what), v.nonEmpty(`expected ${what}, got an empty string`));
}

function list<const TItem extends v.GenericSchema>(item: TItem, what: string) {
  return v.array(item, (issue) => `expected a list of ${what}, got ${describeValue(issue.input)}`);
}

/** Run a `(value) => problem | undefined` check as a valibot action. */
function problem(check: (value: string) => string | undefined) {
  return v.rawCheck<string>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const message = check(dataset.value);
    if (message) addIssue({ message });
  });
}

const nameRule = (what: string) =>
  v.regex(NAME_PATTERN, (issue) => `"${String(issue.input)}" is not a valid ${what} name — use lower-case letters, digits and -, starting with a letter`);

export const bottleName = v.pipe(text("a bottle name"), nameRule("bottle"));

const path = (what: string) => v.pipe(nonEmptyText("a path"), v.description(`${what}; relative to this file, ~ expands to your home dir`));

const envName = v.pipe(
  v.string(),
  v.regex(ENV_NAME_PATTERN, (issue) => `"${String(issue.input)}" is not a valid environment variable name — use letters, digits and _, not starting with a digit`),
);

const envValue = v.pipe(
  v.union(
    [v.string(), v.number(), v.boolean()],
    (issue) => `expected a value (text, \${HOST_VAR} or ?question), got ${describeValue(issue.input)}${issue.input === null ? ' — write "" for an empty value' : ""}`,
  ),
  v.description('A literal, "${HOST_VAR}" (copied from the host env at launch) or "?question" (asked at launch, not echoed)'),
  v.transform((value): string => String(value)),
  problem(envValueProblem),
  v.transform(parseEnvValue),
);

/** A credential held by the gate: same syntax as an env value, never given to the bottle. */
const credential = v.pipe(
  v.union(
    [v.string(), v.number()],
    (issue) => `expected a credential (\${HOST_VAR}, ?question or text), got ${describeValue(issue.input)}${issue.input === null ? " — write ${HOST_VAR} to copy it from the host environment" : ""}`,
  ),
  v.description('The credential: "${HOST_VAR}" (copied from the host env at launch), "?question" (asked at launch) or a literal. Only the gate holds it; the bottle gets a placeholder.'),
  v.transform((value): string => String(value)),
  problem(envValueProblem),
  problem((value) => (value === "" ? "expected a credential, got an empty string" : undefined)),
  v.transform(parseEnvValue),
);

const httpToken = (what: string, example: string) =>
  v.pipe(
    nonEmptyText(what),
    v.regex(HTTP_TOKEN, (issue) => `"${String(issue.input)}" is not a valid ${what} — like ${example}`),
  );

const routeAuthSchema = strict({
  token: credential,
  header: v.optional(v.pipe(httpToken("header name", "Authorization or X-Api-Key"), v.description("The header the credential goes in (default Authorization)"))),
  scheme: v.optional(
    v.pipe(httpToken("auth scheme", "Bearer or token"), v.description("Put before the credential (default Bearer for Authorization, none for other headers)")),
  ),
  env: v.optional(
    v.pipe(
      text("an environment variable name"),
      v.regex(ENV_NAME_PATTERN, (issue) => `"${String(issue.input)}" is not a valid environment variable name — use letters, digits and _, not starting with a digit`),
      v.description("The bottle's env var that holds the placeholder (default: the ${HOST_VAR} name of token)"),
    ),
  ),
});

const routeSchema = strict({
  host: v.pipe(
    text("a host name"),
    problem(routeHostProblem),
    v.description('The host (optionally "host:port") whose HTTPS the gate opens to add the credential'),
    v.transform((host) => host.toLowerCase()),
  ),
  auth: routeAuthSchema,
  paths: v.optional(
    v.pipe(
      list(v.pipe(text("a path prefix"), problem(pathPrefixProblem)), "path prefixes"),
      v.description("Only requests under these path prefixes get the credential (default: every path)"),
    ),
  ),
  methods: v.optional(
    v.pipe(
      list(v.pipe(httpToken("HTTP method", "GET or POST"), v.transform((method) => method.toUpperCase())), "HTTP methods"),
      v.description("Only requests with these methods get the credential (default: every method)"),
    ),
  ),
});

const authSchema = strict({
  token: v.optional(
    v.pipe(
      credential,
      v.description("Claude Code's credential (an OAuth token from `claude setup-token`, or an API key). Default: $CLAUDE_CODE_OAUTH_TOKEN or $ANTHROPIC_API_KEY from the host"),
    ),
  ),
  kind: v.optional(
    v.pipe(
      v.picklist(["oauth", "api-key"], (issue) => `expected oauth or api-key, got ${quoteIfText(issue.input)}`),
      v.description("oauth (Authorization: Bearer) or api-key (x-api-key); default: from the token's prefix or variable name"),
    ),
  ),
  upstream: v.optional(
    v.pipe(text("an https:// URL"), problem(upstreamUrlProblem), v.description("Where the gate sends Claude Code's requests (default https://api.anthropic.com)")),
  ),
});

/** A preset written where a host was expected: it would be taken for a one-label host name. */
function presetInAllow(entry: string): string | undefined {
  const preset = entry.toLowerCase();
  if ("problem" in parsePresetRef(preset)) return undefined;
  return `"${entry}" is a preset, not a host — list it under egress.presets: [${preset}]`;
}

const allowHost = v.pipe(
  text("a host name"),
  problem(presetInAllow),
  problem(allowEntryProblem),
  v.description('A host name, "*.example.com" or "host:port" — not a URL'),
  v.transform((host) => host.toLowerCase()),
);

const presetRef = v.pipe(
  // A picklist, so editors offer the names; its message is the loader's own.
  v.picklist(presetSpellings(), (issue) =>
    typeof issue.input === "string" ? (presetProblem(issue.input) ?? "") : `expected a preset name (${presetNames().join(", ")}), got ${describeValue(issue.input)}`,
  ),
  v.transform((text): PresetRef => {
    const parsed = parsePresetRef(text);
    // Cannot happen: the picklist lets only known spellings through.
    if ("problem" in parsed) throw new Error(parsed.problem);
    return parsed;
  }),
);

const privateEntry = v.pipe(
  text("a host name, IP address or CIDR"),
  problem(privateEntryProblem),
  v.description("A host name, an IPv4/IPv6 address or CIDR that may resolve to a private address"),
  v.transform((entry) => entry.toLowerCase()),
);

const hostKey = v.pipe(
  text("a host key"),
  problem(hostKeyProblem),
  v.description('The pinned SSH host key, "ssh-ed25519 AAAA…" (ssh-keyscan -t ed25519 <host>)'),
  v.transform(normalizeHostKey),
);

export const gitUserSchema = strict({
  name: v.optional(v.pipe(nonEmptyText("a name"), v.description("user.name for commits"))),
  email: v.optional(
    v.pipe(
      nonEmptyText("an email address"),
      v.check((email) => /^[^@\s]+@[^@\s]+$/.test(email), (issue) => `expected an email address, got "${String(issue.input)}"`),
      v.description("user.email for commits"),
    ),
  ),
});

const remoteSchema = strict({
  upstream: v.pipe(
    text("an SSH upstream"),
    problem(upstreamProblem),
    v.description("ssh://git@host/path.git or git@host:path.git — pushes and fetches go through the git gate"),
  ),
  identity_file: path("The SSH private key the git gate uses for this upstream"),
  known_host_key: hostKey,
});

const sshHostSchema = strict({
  host: v.pipe(text("a host name"), problem(sshHostProblem), v.description("Host name or IP address")),
  port: v.optional(
    v.pipe(
      v.number((issue) => `expected a port number, got ${describeValue(issue.input)}`),
      v.integer("expected a whole port number"),
      v.minValue(1, "port must be 1-65535"),
      v.maxValue(65535, "port must be 1-65535"),
      v.description("Default 22"),
    ),
  ),
  user: v.optional(nonEmptyText("a user name")),
  identity_file: path("The SSH private key the SSH gate uses for this host"),
  known_host_key: hostKey,
});

function wholeNumber(description: string) {
  return v.pipe(
    v.number((issue) => `expected a whole number, got ${describeValue(issue.input)}`),
    v.integer("expected a whole number"),
    v.minValue(0, "must be 0 or more (0 = no limit)"),
    v.description(description),
  );
}

/** Below this a gate log would keep too few lines to be of use. */
export const MIN_LOG_BYTES = 64 * 1024;

const limitsSchema = strict({
  requests_per_minute: v.optional(wholeNumber("Requests (plain HTTP and CONNECT) per minute for the whole bottle; 0 = no limit")),
  bytes_out: v.optional(wholeNumber("Total bytes the bottle may send out; 0 = no limit")),
  idle_timeout_seconds: v.optional(wholeNumber("Close a connection idle this long; 0 = never")),
  max_tunnel_seconds: v.optional(wholeNumber("Close a tunnel after this long; 0 = never")),
  max_log_bytes: v.optional(
    v.pipe(
      wholeNumber(
        "Bytes each gate log (egress, git, ssh) may take on the host, its one older generation (.1) included; 0 = no cap",
      ),
      v.check(
        (bytes) => bytes === 0 || bytes >= MIN_LOG_BYTES,
        (issue) => `${String(issue.input)} bytes is too small for a gate log — use at least ${MIN_LOG_BYTES} (64 KiB), or 0 for no cap`,
      ),
    ),
  ),
});

/** Below these a bottle cannot start Claude Code; they also catch `memory: 4` meant as 4g. */
export const MIN_MEMORY_BYTES = 256 * 1024 ** 2;
export const MIN_CPUS = 0.1;
export const MIN_PIDS = 64;

/** Bytes from a size ("4g", "512m", "4GiB") or a whole number of bytes. */
const toBytes = v.rawTransform<number | string, number>(({ dataset, addIssue, NEVER }) => {
  const input = dataset.value;
  const bytes = typeof input === "number" ? (Number.isSafeInteger(input) && input >= 0 ? input : undefined) : parseSize(input);
  if (bytes !== undefined) return bytes;
  addIssue({
    message:
      typeof input === "number"
        ? "expected a whole number of bytes, or a size like 4g, 512m or 4GiB"
        : `${quoteIfText(input)} is not a size — write it like 4g, 512m or 4GiB (powers of 1024), or in bytes`,
  });
  return NEVER;
});

const resourcesSchema = strict({
  cpus: v.optional(
    v.pipe(
      v.number((issue) => `expected a number of CPUs like 2 or 0.5, got ${describeValue(issue.input)}`),
      v.minValue(MIN_CPUS, `too few CPUs for a bottle — use at least ${MIN_CPUS}`),
      v.description("CPUs the bottle may use, like 2 or 0.5 (default: all of the engine's)"),
    ),
  ),
  memory: v.optional(
    v.pipe(
      v.union([v.number(), v.string()], (issue) => `expected a size like 4g, 512m or 4GiB, got ${describeValue(issue.input)}`),
      // Before the transform: the JSON Schema (input side) ends there.
      v.description('Memory the bottle may use, with no swap beyond it: "4g", "512m", "4GiB" or bytes (default: half of the engine\'s)'),
      toBytes,
      v.check(
        (bytes) => bytes >= MIN_MEMORY_BYTES,
        (issue) => `${formatSize(Number(issue.input))} is too little memory for a bottle — use at least 256m`,
      ),
    ),
  ),
  pids: v.optional(
    v.pipe(
      v.number((issue) => `expected a whole number of processes, got ${describeValue(issue.input)}`),
      v.integer("expected a whole number of processes"),
      v.minValue(MIN_PIDS, `too few processes for a bottle — use at least ${MIN_PIDS}`),
      v.description("Processes and threads the bottle may have at once: a fork bomb stops there (default 4096)"),
    ),
  ),
});

const MCP_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const mcpName = v.pipe(
  text("an MCP server name"),
  v.regex(MCP_NAME_PATTERN, (issue) => `"${String(issue.input)}" is not an MCP server name — letters, digits, ., _ and -`),
);

const skillName = v.pipe(
  text("a skill name"),
  v.regex(SKILL_PATTERN, (issue) => `"${String(issue.input)}" is not a skill name — name a folder under ~/.claude/skills/`),
);

const bringIn = (description: string) =>
  v.optional(v.pipe(v.boolean((issue) => `expected true or false, got ${describeValue(issue.input)}`), v.description(description)));

/** What of the user's own Claude setup (~/.claude, or $CLAUDE_CONFIG_DIR) a launch copies into the bottle. */
export const claudeSetupSchema = strict({
  memory: bringIn("~/.claude/CLAUDE.md and the files it imports with @path (default true)"),
  commands: bringIn("~/.claude/commands/: your slash commands (default true)"),
  agents: bringIn("~/.claude/agents/: your sub-agents (default true)"),
  output_styles: bringIn("~/.claude/output-styles/ (default true)"),
  settings: bringIn("~/.claude/settings.json, merged with what the bottle needs; keys that carry or fetch a secret are dropped (default false)"),
  hooks: bringIn("The hooks of ~/.claude/settings.json; they run inside the bottle (default false)"),
  mcp: v.optional(
    v.pipe(
      list(mcpName, "MCP server names"),
      v.description("MCP servers of ~/.claude.json by name: stdio servers run in the bottle, HTTP servers go through the gate, which holds their credentials"),
    ),
  ),
  skills: v.optional(v.pipe(list(skillName, "skill names"), v.description("Skills copied in from ~/.claude/skills/<name>/"))),
});

/** One forwarded port: `3000` or `"8080:3000"` (lib/manifest/ports.ts). */
const portEntry = v.pipe(
  v.union([v.number(), v.string()], (issue) => `expected ${PORT_SPEC_HINT}, got ${describeValue(issue.input)}`),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const parsed = parsePortSpec(dataset.value);
    if ("problem" in parsed) {
      addIssue({ message: parsed.problem });
      return NEVER;
    }
    return parsed;
  }),
);

const portsSchema = v.pipe(
  list(portEntry, "ports"),
  v.rawCheck<PortSpec[]>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    for (const clash of portClashes(dataset.value, (index) => `ports[${index}]`))
      addIssue({
        message: clash.problem,
        path: [{ type: "array", origin: "value", input: dataset.value, key: clash.index, value: dataset.value[clash.index] }],
      });
  }),
  v.description(
    'TCP ports of the bottle reachable from the host: 3000 (on the host\'s 3000, or a free port when that is taken) or "8080:3000" (host port 8080). Published on 127.0.0.1 (bottle up --bind changes that), through a relay that forwards to that one port only',
  ),
);

export const bottleSchema = v.pipe(
  strict({
    extends: v.optional(
      v.pipe(
        v.union([bottleName, v.array(bottleName)], (issue) => `expected a bottle name or a list of them, got ${describeValue(issue.input)}`),
        v.description("Bottles to merge first, left to right; this file's values win"),
      ),
    ),
    env: v.optional(
      v.pipe(
        v.record(envName, envValue, (issue) => `expected a mapping of NAME: value, got ${describeValue(issue.input)}`),
        v.description("Environment variables for the agent. Values never appear in any output."),
      ),
    ),
    egress: v.optional(
      strict({
        presets: v.optional(
          v.pipe(
            list(presetRef, "preset names"),
            v.description(`Named host lists shipped with bottle (${presetNames().join(", ")}); "npm" is the newest version, "npm@1" pins one. \`bottle info\` shows their hosts`),
          ),
        ),
        allow: v.optional(v.pipe(list(allowHost, "host names"), v.description("Hosts the bottle may reach, on top of Claude Code's defaults and the presets' hosts"))),
        allow_private: v.optional(
          v.pipe(list(privateEntry, "hosts or CIDRs"), v.description("Hosts or networks allowed although they are private addresses")),
        ),
        limits: v.optional(v.pipe(limitsSchema, v.description("The egress gate's limits for this bottle (defaults: see `bottle info`)"))),
        routes: v.optional(
          v.pipe(
            list(routeSchema, "routes"),
            v.description("Hosts the gate adds a credential for (the bottle holds only a placeholder); each host is also allowed"),
          ),
        ),
      }),
    ),
    auth: v.optional(v.pipe(authSchema, v.description("How Claude Code logs in; the credential stays in the gate"))),
    git: v.optional(
      strict({
        user: v.optional(gitUserSchema),
        remotes: v.optional(
          v.pipe(
            v.record(
              v.pipe(v.string(), v.regex(REMOTE_PATTERN, (issue) => `"${String(issue.input)}" is not a valid remote name`)),
              remoteSchema,
              (issue) => `expected a mapping of remote name: { upstream, identity_file, known_host_key }, got ${describeValue(issue.input)}`,
            ),
            v.description("Git upstreams reachable through the git gate, by remote name"),
          ),
        ),
      }),
    ),
    ssh: v.optional(
      strict({
        hosts: v.optional(v.pipe(list(sshHostSchema, "SSH hosts"), v.description("Hosts reachable over SSH through the SSH gate"))),
      }),
    ),
    workspace: v.optional(
      v.pipe(
        v.picklist(["mount", "copy", "branch", "none"], (issue) => `expected mount, copy, branch or none, got ${quoteIfText(issue.input)}`),
        v.description("How the project gets in: mount (default: live, shared), copy (a copy, your uncommitted changes too), branch (a checkout of HEAD on a branch of its own), or none"),
      ),
    ),
    ca_certs: v.optional(v.pipe(list(path("A CA certificate (PEM) the bottle trusts"), "paths"), v.description("CA certificates (PEM) to trust"))),
    image: v.optional(strict({ dockerfile: path("A Dockerfile to build the bottle image from") })),
    backend: v.optional(
      v.pipe(
        v.picklist(BACKEND_NAMES, (issue) => `expected ${BACKEND_NAMES.join(" or ")}, got ${quoteIfText(issue.input)}`),
        v.description("Where this bottle runs (overridden by --backend / BOTTLE_BACKEND)"),
      ),
    ),
    claude: v.optional(v.pipe(claudeSetupSchema, v.description("What of your own Claude setup comes into the bottle (copies; your ~/.claude is never written)"))),
    resources: v.optional(
      v.pipe(resourcesSchema, v.description("What the bottle may use of the machine: cpus, memory, pids (defaults: see `bottle info`)")),
    ),
    ports: v.optional(portsSchema),
  }),
  v.title("bottle"),
  v.description("A bottle: the isolation and policy an agent runs in. Lives in ~/.config/bottle/bottles/<name>.yaml."),
);

function quoteIfText(input: unknown): string {
  return typeof input === "string" && input.length <= 40 ? `"${input}"` : describeValue(input);
}


/** Sub-agent keys with no meaning for a bottle's agent, which is the main session: each is an error saying so. */
export const SUBAGENT_ONLY_KEYS = ["color", "maxTurns", "memory", "background", "isolation"] as const;
const subagentOnly = v.optional(
  v.custom<never>(
    () => false,
    "only a Claude Code sub-agent has this, and a bottle's agent is the main session — remove it (a sub-agent's file belongs in ~/.claude/agents/, which claude.agents copies in)",
  ),
);
const subagentOnlyKeys = Object.fromEntries(SUBAGENT_ONLY_KEYS.map((key) => [key, subagentOnly])) as Record<(typeof SUBAGENT_ONLY_KEYS)[number], typeof subagentOnly>;

/** Tool names, as a list or Claude Code's comma-separated text. */
const toolNames = (description: string) =>
  v.pipe(
    v.union([text("tool names"), list(nonEmptyText("a tool name"), "tool names")], (issue) => `expected tool names (a list, or text like "Read, Grep"), got ${describeValue(issue.input)}`),
    v.transform((tools): string[] => (Array.isArray(tools) ? tools : tools.split(",")).map((tool) => tool.trim()).filter(Boolean)),
    v.description(description),
  );

const stringMap = (what: string) => v.record(v.string(), text(what), (issue) => `expected a mapping of NAME: text, got ${describeValue(issue.input)}`);

/** One MCP server as Claude Code configures it (~/.claude.json, .mcp.json, an agent's mcpServers). */
export const mcpServerSchema = v.variant(
  "type",
  [
    strict({
      type: v.literal("stdio"),
      command: nonEmptyText("a command"),
      args: v.optional(list(text("an argument"), "arguments")),
      env: v.optional(stringMap("a value")),
    }),
    strict({
      type: v.picklist(["http", "sse"]),
      url: v.pipe(nonEmptyText("a URL"), v.url((issue) => `expected an http(s):// URL, got ${describeValue(issue.input)}`)),
      headers: v.optional(stringMap("a header value")),
    }),
  ],
  (issue) => (issue.input === undefined ? "required field is missing" : `expected stdio, http or sse, got ${quoteIfText(issue.input)}`),
);
export type McpServerConfig = v.InferOutput<typeof mcpServerSchema>;

/** Claude Code leaves `type` out for stdio servers. */
const mcpServer = v.pipe(
  v.unknown(),
  v.transform((input) => (input && typeof input === "object" && !Array.isArray(input) && !("type" in input) && "command" in input ? { type: "stdio", ...input } : input)),
  mcpServerSchema,
);

const agentMcpServers = v.pipe(
  list(
    // A name, or one written-out server: each checked as what it is, so the message says what is wrong inside.
    v.lazy((input) =>
      input && typeof input === "object" && !Array.isArray(input)
        ? v.pipe(
            v.record(mcpName, mcpServer),
            v.check((entry) => Object.keys(entry).length === 1, "expected one server per entry: name: { … }"),
          )
        : mcpName,
    ),
    "MCP servers",
  ),
  v.description("MCP servers for this agent: names of ~/.claude.json servers, or name: { type, command | url, … }"),
);

/** Claude Code's hooks: event → matchers, each with its hooks; Claude Code checks the rest. */
const hooksSchema = v.pipe(
  v.record(
    v.pipe(v.string(), v.regex(/^[A-Z][A-Za-z]*$/, (issue) => `"${String(issue.input)}" is not a hook event — like PreToolUse or SessionStart`)),
    list(
      loose({
        matcher: v.optional(text("a matcher")),
        hooks: list(loose({ type: nonEmptyText("a hook type") }), "hooks"),
      }),
      "matchers",
    ),
    (issue) => `expected a mapping of event: [ { matcher, hooks } ], got ${describeValue(issue.input)}`,
  ),
  v.description("Claude Code hooks, as in settings.json; they run inside the bottle"),
);

export const agentSchema = v.pipe(
  strict({
    description: v.optional(v.pipe(text("a description"), v.description("One line shown by `bottle agents`"))),
    bottle: v.optional(v.pipe(bottleName, v.description("The user bottle this agent runs in (default: default)"))),
    skills: v.optional(v.pipe(list(skillName, "skill names"), v.description("Skills copied in from ~/.claude/skills/<name>/"))),
    model: v.optional(v.pipe(nonEmptyText("a model name"), v.description("Claude model, e.g. sonnet, opus"))),
    git: v.optional(strict({ user: v.optional(gitUserSchema) })),
    claude: v.optional(v.pipe(claudeSetupSchema, v.description("Overrides the bottle's claude: for this agent, field by field"))),
    name: v.optional(v.pipe(nonEmptyText("the agent's name"), v.description("Claude Code's name for it; must be the file's name"))),
    tools: v.optional(toolNames("The tools Claude Code may use (claude --tools); default: all")),
    disallowedTools: v.optional(toolNames("Tools Claude Code may not use (claude --disallowedTools)")),
    permissionMode: v.optional(
      v.pipe(
        v.picklist(PERMISSION_MODES, (issue) => `expected one of ${PERMISSION_MODES.join(", ")}, got ${quoteIfText(issue.input)}`),
        v.description("Claude Code's permission mode (default bypassPermissions: the bottle is the boundary)"),
      ),
    ),
    effort: v.optional(
      v.pipe(
        v.picklist(EFFORT_LEVELS, (issue) => `expected one of ${EFFORT_LEVELS.join(", ")}, got ${quoteIfText(issue.input)}`),
        v.description("Claude Code's effort level (claude --effort)"),
      ),
    ),
    initialPrompt: v.optional(v.pipe(nonEmptyText("a first message"), v.description("The session's first message, unless bottle up --prompt gives one"))),
    mcpServers: v.optional(agentMcpServers),
    hooks: v.optional(hooksSchema),
    ...subagentOnlyKeys,
  }),
  v.title("agent"),
  v.description("Front matter of a bottle agent (Markdown; the body is the system prompt)."),
);

export type BottleFileManifest = v.InferOutput<typeof bottleSchema>;
export type BottleManifest = Omit<BottleFileManifest, "extends">;
export type AgentManifest = v.InferOutput<typeof agentSchema>;
