import * as v from "valibot";
import { normalizeHost, Policy } from "../gates/egress/daemon/policy.ts";
import { placeholderFor } from "../gates/egress/daemon/custody.ts";
import { displayPath, formatPath, type ManifestIssue } from "../manifest/errors.ts";
import { mcpServerSchema, type McpServerConfig } from "../manifest/schema.ts";
import { CLAUDE_CODE_HOSTS } from "../manifest/defaults.ts";
import { presetsWithHost } from "../manifest/presets.ts";
import type { Located, ResolvedRoute } from "../manifest/types.ts";
import { didYouMean } from "../suggest.ts";

/**
 * MCP servers in a bottle. A stdio server runs inside it (its command must
 * be in the image; its env values become the bottle's, kept from leaving by
 * DLP like any env value). An HTTP or SSE server is reached through the
 * gate: its host must be allowed, and each header it sends (its token)
 * becomes a credential route, so the gate adds the real value and the
 * bottle's config holds a placeholder.
 */

type Env = Record<string, string | undefined>;

export interface BottleMcpServer {
  name: string;
  /** The config Claude Code gets in the bottle (placeholders for held headers). */
  config: McpServerConfig;
  /** For people: "stdio, runs in the bottle" / "http via the gate, its token held by the gate". */
  describe: string;
  /** stdio: the command the image must have. */
  command?: string;
  /** stdio: env values, which enter the bottle (DLP keeps them from leaving). */
  secrets: string[];
}

export interface McpPlan {
  servers: BottleMcpServer[];
  /** Credential routes the gate gets for HTTP servers' headers. */
  routes: ResolvedRoute[];
}

/** A server named in a manifest, with where it was named. */
export type McpRequest = Located<string>;
/** A server written out in an agent file. */
export type McpInline = Located<{ name: string; config: McpServerConfig }>;

/** The user's servers in ~/.claude.json: user scope, then this project's local scope. */
export function hostMcpServers(claudeJson: Record<string, unknown> | undefined, projectDir: string | undefined): Record<string, unknown> {
  const user = asRecord(claudeJson?.mcpServers);
  const projects = asRecord(claudeJson?.projects);
  const local = projectDir ? asRecord(asRecord(projects[projectDir]).mcpServers) : {};
  return { ...local, ...user };
}

function asRecord(value: unknown): Record<string, unknown> {
  return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** The credential's name in the gate and the placeholder's variable: MCP_<SERVER>_<HEADER>. */
function credentialName(server: string, header: string): string {
  return `MCP_${server}_${header}`.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
}

export interface McpContext {
  /** The bottle's egress.allow and its presets' hosts (Claude Code's own hosts are added). */
  allow: readonly string[];
  /** ~/.claude.json on the host, for messages and the routes' origin. */
  claudeJsonPath: string;
  env: Env;
}

/**
 * The servers asked for (by name, from ~/.claude.json, or written out in an
 * agent file) as the bottle runs them. Every problem at once, each at the
 * place that asked: an unknown name, a broken entry, a host not allowed, a
 * token over plain HTTP.
 */
export function planMcp(requests: McpRequest[], inline: McpInline[], hostServers: Record<string, unknown>, context: McpContext): { plan: McpPlan; issues: ManifestIssue[] } {
  const issues: ManifestIssue[] = [];
  const plan: McpPlan = { servers: [], routes: [] };
  const policy = new Policy([...CLAUDE_CODE_HOSTS, ...context.allow], [], []);
  const from = displayPath(context.claudeJsonPath, context.env);
  const configs: Array<{ name: string; config: McpServerConfig; at: Located<unknown> }> = [];
  for (const request of requests) {
    const raw = hostServers[request.value];
    if (raw === undefined) {
      const known = Object.keys(hostServers);
      issues.push({
        ...request,
        message: `no MCP server "${request.value}" in ${from}${known.length ? ` (it has: ${known.join(", ")})` : " (it has none)"}${didYouMean(request.value, known, (s) => `"${s}"`)}`,
      });
      continue;
    }
    const parsed = v.safeParse(mcpServerSchema, raw && typeof raw === "object" && !("type" in raw) ? { type: "stdio", ...raw } : raw);
    if (!parsed.success) {
      const issue = parsed.issues[0];
      const where = issue.path ? formatPath(issue.path.map((item) => (typeof item.key === "number" ? item.key : String(item.key)))) : "";
      issues.push({ ...request, message: `the server "${request.value}" in ${from} is not one bottle can run: mcpServers.${request.value}${where ? `.${where}` : ""}: ${issue.message}` });
      continue;
    }
    configs.push({ name: request.value, config: parsed.output, at: request });
  }
  for (const entry of inline) configs.push({ name: entry.value.name, config: entry.value.config, at: entry });

  for (const { name, config, at } of configs) {
    if (plan.servers.some((server) => server.name === name)) continue;
    if (config.type === "stdio") {
      plan.servers.push({
        name,
        config,
        describe: `stdio, runs in the bottle${config.env && Object.keys(config.env).length ? ` with ${Object.keys(config.env).length} env value(s)` : ""}`,
        command: config.command,
        secrets: Object.values(config.env ?? {}),
      });
      continue;
    }
    const url = new URL(config.url);
    const target = normalizeHost(url.hostname.replace(/^\[|\]$/g, ""));
    const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
    const decision = target ? policy.checkHost(target, port) : undefined;
    if (!decision?.ok) {
      const presets = url.port ? [] : presetsWithHost(url.hostname);
      const preset = presets.length ? ` (or take the preset that lists it: egress.presets: [${presets[0]}])` : "";
      issues.push({ ...at, message: `the MCP server "${name}" is at ${url.host}, which this bottle does not allow — add it to the bottle's egress.allow: [${url.port ? url.host : url.hostname}]${preset}` });
      continue;
    }
    const headers = Object.entries(config.headers ?? {});
    if (headers.length && url.protocol !== "https:") {
      issues.push({ ...at, message: `the MCP server "${name}" sends headers over plain http:// — the gate holds a server's token only over HTTPS; use its https:// URL` });
      continue;
    }
    const held: Record<string, string> = {};
    for (const [header, value] of headers) {
      const credential = credentialName(name, header);
      held[header] = placeholderFor(credential);
      plan.routes.push({
        host: target!.host,
        port,
        header,
        token: { source: { kind: "literal", value }, file: at.file, line: at.line, col: at.col },
        env: credential,
        paths: [],
        methods: [],
      });
    }
    plan.servers.push({
      name,
      config: { ...config, ...(headers.length ? { headers: held } : {}) },
      describe: `${config.type} via the gate to ${url.host}${headers.length ? `, ${headers.map(([header]) => header).join(", ")} held by the gate` : ""}`,
      secrets: [],
    });
  }
  // In the order they were asked for.
  issues.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col);
  return { plan, issues };
}

/** The `mcpServers` of the bottle's ~/.claude.json. */
export function bottleMcpServers(servers: BottleMcpServer[]): Record<string, McpServerConfig> {
  return Object.fromEntries(servers.map((server) => [server.name, server.config]));
}
