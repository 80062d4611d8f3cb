import { formatBytes, formatSize } from "../bytes.ts";
import { DEFAULT_PIDS } from "../resources-schema.ts";
import { BUILTIN, CLAUDE_CODE_HOSTS } from "./defaults.ts";
import { DEFAULT_EGRESS_LIMITS, LIMIT_FIELDS, type LimitField } from "./limits.ts";
import { displayPath } from "./errors.ts";
import { formatPresetRef, presetHosts, presetVersion } from "./presets.ts";
import type { EnvSource, Resolved } from "./types.ts";

type Env = Record<string, string | undefined>;

/**
 * What `bottle info` shows: everything a launch would grant, with where each
 * value came from. Env values are never part of it — only names and kinds.
 */
export interface InfoView {
  agent: {
    name: string;
    source: string;
    description?: string;
    model?: string;
    bottle: string;
    skills: string[];
    promptChars: number;
  };
  bottle: {
    name: string;
    sources: string[];
    egress: {
      /** Every host: Claude Code's (default), the bottle's own, and its presets' (`preset`: which one). */
      allow: Array<{ host: string; default: boolean; preset?: string; from: string }>;
      /** The presets and what each stands for. */
      presets: Array<{ name: string; version: number; description: string; hosts: Array<{ host: string; for: string }>; notes: string[]; from: string }>;
      allowPrivate: Array<{ entry: string; from: string }>;
      /** Credential routes: the gate adds the credential; the bottle holds a placeholder. */
      routes: Array<{
        host: string;
        port: number;
        paths: string[];
        methods: string[];
        header: string;
        scheme?: string;
        token: { kind: "literal" | "host" | "ask"; variable?: string };
        env?: string;
        via: "egress gate";
        from: string;
      }>;
      /** The gate's limits, in the manifest's fields and units (0 = none). */
      limits: Array<{ field: LimitField["manifest"]; value: number; unit: LimitField["unit"]; from: string }>;
    };
    /** How Claude Code logs in (the token, when set here, stays in the gate). */
    auth: {
      token?: { kind: "literal" | "host" | "ask"; variable?: string; from: string };
      kind?: { name: "oauth" | "api-key"; from: string };
      upstream: { url: string; from: string };
    };
    env: Array<{ name: string; kind: "literal" | "host" | "ask"; variable?: string; question?: string; from: string }>;
    git: {
      user?: { name?: string; email?: string; from: string[] };
      remotes: Array<{ name: string; upstream: string; via: "git gate"; identityFile: string; from: string }>;
    };
    ssh: { hosts: Array<{ host: string; port: number; user?: string; identityFile: string; via: "ssh gate"; from: string }> };
    workspace: { mode: string; from: string };
    caCerts: Array<{ path: string; from: string }>;
    image?: { dockerfile: string; from: string };
    backend?: { name: string; from: string };
    /** What the bottle may use of the machine: a value it sets (bytes for memory), or the default the launch works out from the engine. */
    resources: Array<{ field: "cpus" | "memory" | "pids"; value?: number; default?: string; from: string }>;
    /** Ports forwarded from the host (127.0.0.1 unless `bottle up --bind`); `hostPort` absent: the bottle's own, or a free one when taken. */
    ports: Array<{ port: number; hostPort?: number; from: string }>;
    /** What of the user's Claude setup comes in (lib/claude-setup/), item by item, and what is missing or left out. */
    claude?: { items: Array<[string, string]>; notes: string[] };
  };
}

/** A credential's source without its value. */
function tokenView(source: EnvSource): { kind: "literal" | "host" | "ask"; variable?: string } {
  return source.kind === "host" ? { kind: "host", variable: source.variable } : { kind: source.kind };
}

function describeToken(token: { kind: string; variable?: string }): string {
  return token.kind === "host" ? `$${token.variable}` : token.kind === "ask" ? "asked at launch" : "literal";
}

export function infoView(resolved: Resolved, env: Env = process.env): InfoView {
  const { agent, bottle } = resolved;
  const show = (file: string | undefined) => (file === undefined ? BUILTIN : file === BUILTIN ? BUILTIN : displayPath(file, env));
  const origin = (key: string) => show(bottle.origins[key]);
  const gitUser = resolved.gitUser;
  const listed = new Set<string>([...CLAUDE_CODE_HOSTS, ...bottle.egress.allow]);
  // A preset's host the bottle lists itself (or Claude Code needs) shows once, as that.
  const presetRows: InfoView["bottle"]["egress"]["allow"] = [];
  for (const ref of bottle.egress.presets) {
    for (const host of presetHosts(ref)) {
      if (listed.has(host)) continue;
      listed.add(host);
      presetRows.push({ host, default: false, preset: formatPresetRef(ref), from: origin(`egress.presets.${formatPresetRef(ref)}`) });
    }
  }
  const userFrom: string[] = [];
  if (gitUser) {
    for (const field of ["name", "email"] as const) {
      if (gitUser[field] === undefined) continue;
      const fromAgent = agent.gitUser?.[field] !== undefined;
      const from = fromAgent ? show(agent.source) : origin(`git.user.${field}`);
      if (!userFrom.includes(from)) userFrom.push(from);
    }
  }
  return {
    agent: {
      name: agent.name,
      source: show(agent.source),
      ...(agent.description === undefined ? {} : { description: agent.description }),
      ...(agent.model === undefined ? {} : { model: agent.model }),
      bottle: bottle.name,
      skills: [...agent.skills],
      promptChars: agent.prompt.length,
    },
    bottle: {
      name: bottle.name,
      sources: bottle.sources.map(show),
      egress: {
        allow: [
          ...CLAUDE_CODE_HOSTS.map((host) => ({ host, default: true, from: BUILTIN })),
          ...bottle.egress.allow.filter((host) => !CLAUDE_CODE_HOSTS.includes(host)).map((host) => ({ host, default: false, from: origin(`egress.allow.${host}`) })),
          ...presetRows,
        ],
        presets: bottle.egress.presets.map((ref) => {
          const preset = presetVersion(ref);
          return {
            name: ref.name,
            version: ref.version,
            description: preset.description,
            hosts: preset.hosts.map((entry) => ({ ...entry })),
            notes: [...(preset.notes ?? [])],
            from: origin(`egress.presets.${formatPresetRef(ref)}`),
          };
        }),
        allowPrivate: bottle.egress.allowPrivate.map((entry) => ({ entry, from: origin(`egress.allow_private.${entry}`) })),
        routes: bottle.egress.routes.map((route) => ({
          host: route.host,
          port: route.port,
          paths: [...route.paths],
          methods: [...route.methods],
          header: route.header,
          ...(route.scheme === undefined ? {} : { scheme: route.scheme }),
          token: tokenView(route.token.source),
          ...(route.env === undefined ? {} : { env: route.env }),
          via: "egress gate" as const,
          from: show(route.token.file),
        })),
        limits: LIMIT_FIELDS.map((field) => ({
          field: field.manifest,
          value: (bottle.egress.limits[field.gate] ?? DEFAULT_EGRESS_LIMITS[field.gate]) / field.scale,
          unit: field.unit,
          from: origin(`egress.limits.${field.manifest}`),
        })),
      },
      auth: {
        ...(bottle.auth.token ? { token: { ...tokenView(bottle.auth.token.source), from: origin("auth.token") } } : {}),
        ...(bottle.auth.kind ? { kind: { name: bottle.auth.kind, from: origin("auth.kind") } } : {}),
        upstream: { url: bottle.auth.upstream ?? "https://api.anthropic.com", from: origin("auth.upstream") },
      },
      env: Object.entries(bottle.env).map(([name, entry]) => {
        const from = show(entry.file);
        const source = entry.source;
        if (source.kind === "host") return { name, kind: "host" as const, variable: source.variable, from };
        if (source.kind === "ask") return { name, kind: "ask" as const, question: source.question || name, from };
        return { name, kind: "literal" as const, from };
      }),
      git: {
        ...(gitUser ? { user: { ...gitUser, from: userFrom } } : {}),
        remotes: Object.entries(bottle.git.remotes).map(([name, remote]) => ({
          name,
          upstream: remote.upstream,
          via: "git gate" as const,
          identityFile: displayPath(remote.identityFile, env),
          from: origin(`git.remotes.${name}`),
        })),
      },
      ssh: {
        hosts: bottle.ssh.hosts.map((host) => ({
          host: host.host,
          port: host.port,
          ...(host.user === undefined ? {} : { user: host.user }),
          identityFile: displayPath(host.identityFile, env),
          via: "ssh gate" as const,
          from: origin(`ssh.hosts.${host.host}`),
        })),
      },
      workspace: { mode: bottle.workspace, from: origin("workspace") },
      caCerts: bottle.caCerts.map((path) => ({ path: displayPath(path, env), from: origin(`ca_certs.${path}`) })),
      ...(bottle.image ? { image: { dockerfile: displayPath(bottle.image.dockerfile, env), from: origin("image") } } : {}),
      ...(bottle.backend ? { backend: { name: bottle.backend, from: origin("backend") } } : {}),
      resources: RESOURCE_DEFAULTS.map(([field, rule]) => {
        const set = bottle.resources[field];
        return set ? { field, value: set.value, from: origin(`resources.${field}`) } : { field, default: rule, from: BUILTIN };
      }),
      ports: bottle.ports.map((entry) => ({ ...entry.value, from: show(entry.file) })),
    },
  };
}

/** What a launch gives a bottle that sets none (lib/resources.ts works them out from the engine). */
const RESOURCE_DEFAULTS = [
  ["cpus", "all of the engine's"],
  ["memory", "half of the engine's, no swap"],
  ["pids", `${DEFAULT_PIDS} (none on a VM)`],
] as const;

function limitText(value: number, unit: LimitField["unit"]): string {
  if (value === 0) return "0 (none)";
  if (unit === "bytes") return `${value} (${formatBytes(value)})`;
  return unit === "seconds" ? `${value} s` : String(value);
}

function table(rows: string[][], indent = "  "): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ").trimEnd());
}

/** The human-readable `bottle info`. */
export function formatInfo(view: InfoView): string {
  const { agent, bottle } = view;
  const lines: string[] = [];
  lines.push(`agent ${agent.name}  ${agent.source}`);
  const agentRows: string[][] = [];
  if (agent.description) agentRows.push(["description", agent.description]);
  if (agent.model) agentRows.push(["model", agent.model]);
  agentRows.push(["skills", agent.skills.length ? agent.skills.join(", ") : "(none)"]);
  agentRows.push(["prompt", agent.promptChars ? `${agent.promptChars} characters` : "(empty)"]);
  lines.push(...table(agentRows));
  lines.push("");
  lines.push(`bottle ${bottle.name}  ${bottle.sources.join(" → ")}`);
  if (bottle.claude) {
    lines.push("", "claude (copies of your Claude setup; the host's files are only read)");
    lines.push(...table(bottle.claude.items.length ? bottle.claude.items : [["(nothing)"]]));
    lines.push(...bottle.claude.notes.map((note) => `  note: ${note}`));
  }
  lines.push("", "egress allow");
  lines.push(...table(bottle.egress.allow.map((entry) => [entry.host, entry.default ? "default" : entry.preset ? `preset ${entry.preset}` : entry.from])));
  if (bottle.egress.presets.length) {
    lines.push("", "egress presets (host lists shipped with bottle)");
    for (const preset of bottle.egress.presets) {
      lines.push(...table([[`${preset.name}@${preset.version}`, preset.description, preset.from]]));
      lines.push(...table(preset.hosts.map((entry) => [entry.host, entry.for]), "    "));
      lines.push(...preset.notes.map((note) => `    note: ${note}`));
    }
  }
  if (bottle.egress.allowPrivate.length) {
    lines.push("", "egress allow_private");
    lines.push(...table(bottle.egress.allowPrivate.map((entry) => [entry.entry, entry.from])));
  }
  if (bottle.egress.routes.length) {
    lines.push("", "egress routes (the gate adds the credential; the bottle holds a placeholder)");
    lines.push(
      ...table(
        bottle.egress.routes.map((route) => [
          `${route.host}${route.port === 443 ? "" : `:${route.port}`}`,
          `${route.paths.length ? route.paths.join(" ") : "all paths"}${route.methods.length ? ` (${route.methods.join(", ")})` : ""}`,
          `${route.header}: ${route.scheme ? `${route.scheme} ` : ""}${describeToken(route.token)}`,
          route.from,
        ]),
      ),
    );
  }
  lines.push("", "egress limits (0 = none)");
  lines.push(...table(bottle.egress.limits.map((limit) => [limit.field, limitText(limit.value, limit.unit), limit.from])));
  lines.push("", "resources (what the bottle may use; the gate has its own)");
  lines.push(
    ...table(
      bottle.resources.map((limit) => [
        limit.field,
        limit.value === undefined ? `default: ${limit.default}` : limit.field === "memory" ? `${limit.value} (${formatSize(limit.value)}), no swap` : String(limit.value),
        limit.from,
      ]),
    ),
  );
  lines.push("", "auth (Claude Code; the token stays in the gate)");
  lines.push(
    ...table([
      ["token", bottle.auth.token ? describeToken(bottle.auth.token) : "$CLAUDE_CODE_OAUTH_TOKEN or $ANTHROPIC_API_KEY from the host", bottle.auth.token?.from ?? BUILTIN],
      ...(bottle.auth.kind ? [["kind", bottle.auth.kind.name, bottle.auth.kind.from]] : []),
      ["upstream", bottle.auth.upstream.url, bottle.auth.upstream.from],
    ]),
  );
  lines.push("", "env (values never shown)");
  if (bottle.env.length === 0) lines.push("  (none)");
  lines.push(
    ...table(
      bottle.env.map((entry) => [
        entry.name,
        entry.kind === "host" ? `from host $${entry.variable}` : entry.kind === "ask" ? `asked: ${entry.question}` : "literal",
        entry.from,
      ]),
    ),
  );
  lines.push("", "git");
  const gitRows: string[][] = [];
  if (bottle.git.user) {
    const who = [bottle.git.user.name, bottle.git.user.email ? `<${bottle.git.user.email}>` : undefined].filter(Boolean).join(" ");
    gitRows.push([`user ${who}`, bottle.git.user.from.join(", ")]);
  }
  for (const remote of bottle.git.remotes) gitRows.push([`${remote.name} → ${remote.upstream} (via git gate)`, remote.from]);
  if (gitRows.length === 0) lines.push("  (none)");
  lines.push(...table(gitRows));
  lines.push("", "ssh hosts");
  if (bottle.ssh.hosts.length === 0) lines.push("  (none)");
  lines.push(
    ...table(bottle.ssh.hosts.map((host) => [`${host.user ? `${host.user}@` : ""}${host.host}:${host.port}`, "(via ssh gate)", host.from])),
  );
  if (bottle.ports.length) {
    lines.push("", "ports (host → bottle only; a running bottle's: bottle ls, bottle port NAME)");
    lines.push(
      ...table(
        bottle.ports.map((entry) => [
          `${entry.port}`,
          `on 127.0.0.1:${entry.hostPort ?? `${entry.port} (a free port when taken)`}`,
          entry.from,
        ]),
      ),
    );
  }
  lines.push("");
  const rest: string[][] = [["workspace", bottle.workspace.mode, bottle.workspace.from]];
  for (const cert of bottle.caCerts) rest.push(["ca_cert", cert.path, cert.from]);
  if (bottle.image) rest.push(["image", bottle.image.dockerfile, bottle.image.from]);
  if (bottle.backend) rest.push(["backend", bottle.backend.name, bottle.backend.from]);
  lines.push(...table(rest, ""));
  return `${lines.join("\n")}\n`;
}

/** The human-readable `bottle agents` table. */
export function formatAgentList(agents: Array<{ name: string; source: string; bottle: string; description?: string }>, env: Env = process.env): string {
  const rows = [["NAME", "BOTTLE", "SOURCE", "DESCRIPTION"]];
  for (const agent of agents) rows.push([agent.name, agent.bottle, agent.source === BUILTIN ? BUILTIN : displayPath(agent.source, env), agent.description ?? ""]);
  return `${table(rows, "").join("\n")}\n`;
}
