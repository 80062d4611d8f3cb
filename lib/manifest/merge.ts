import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { builtinBottle } from "./defaults.ts";
import { LIMIT_FIELDS } from "./limits.ts";
import type { BottleFileManifest } from "./schema.ts";
import { formatPath } from "./errors.ts";
import { formatPresetRef } from "./presets.ts";
import type { ClaudeSetupChoice, ResolvedBottle } from "./types.ts";
import type { Locate } from "./yaml-positions.ts";

type Env = Record<string, string | undefined>;

export const CLAUDE_SETUP_FLAGS = [
  ["memory", "memory"],
  ["commands", "commands"],
  ["agents", "agents"],
  ["output_styles", "outputStyles"],
  ["settings", "settings"],
  ["hooks", "hooks"],
] as const;

/**
 * A `claude:` over what came before (a parent bottle; for an agent, its
 * bottle): each yes/no later-wins, the lists add up (by name).
 */
export function mergeClaudeSetup(
  out: ClaudeSetupChoice,
  value: NonNullable<BottleFileManifest["claude"]>,
  file: string,
  locate: Locate,
  origins?: Record<string, string>,
  at: ReadonlyArray<string | number> = ["claude"],
): void {
  for (const [manifest, field] of CLAUDE_SETUP_FLAGS) {
    const flag = value[manifest];
    if (flag === undefined) continue;
    out[field] = flag;
    if (origins) origins[`claude.${manifest}`] = file;
  }
  for (const key of ["mcp", "skills"] as const)
    (value[key] ?? []).forEach((name, index) => {
      if (out[key].some((entry) => entry.value === name)) return;
      out[key].push({ value: name, file, ...locate([...at, key, index]), path: formatPath([...at, key, index]) });
    });
}

/** One file of an extends chain (or the built-in default, `value` empty). */
export interface BottleLayer {
  file: string;
  value: BottleFileManifest;
  locate: Locate;
}

/** `~` and `~/x` expand to the home dir; relative paths are relative to the file that wrote them. */
export function expandPath(path: string, baseDir: string, env: Env = process.env): string {
  const home = env.HOME || homedir();
  if (path === "~") return home;
  if (path.startsWith("~/")) return join(home, path.slice(2));
  return isAbsolute(path) ? resolve(path) : resolve(baseDir, path);
}

/**
 * Merge layers in order (parents left to right, then the child): env by key
 * and scalars later-wins (auth and resources per field), host lists and presets union,
 * git remotes by name, SSH hosts by host name, ports by the bottle's port, credential routes appended (the gate picks
 * the longest matching path prefix; on a tie the later one). Paths are made absolute relative to the layer's own file.
 */
export function mergeLayers(name: string, layers: BottleLayer[], env: Env = process.env): ResolvedBottle {
  const out = builtinBottle();
  out.name = name;
  out.sources = layers.map((layer) => layer.file);
  for (const { file, value, locate } of layers) {
    const dir = dirname(file);
    const abs = (path: string) => expandPath(path, dir, env);
    for (const [key, source] of Object.entries(value.env ?? {})) {
      const { line, col } = locate(["env", key]);
      out.env[key] = { source, file, line, col };
    }
    for (const host of value.egress?.allow ?? []) {
      if (!out.egress.allow.includes(host)) {
        out.egress.allow.push(host);
        out.origins[`egress.allow.${host}`] = file;
      }
    }
    for (const preset of value.egress?.presets ?? []) {
      const key = `egress.presets.${formatPresetRef(preset)}`;
      if (key in out.origins) continue;
      out.egress.presets.push(preset);
      out.origins[key] = file;
    }
    for (const entry of value.egress?.allow_private ?? []) {
      if (!out.egress.allowPrivate.includes(entry)) {
        out.egress.allowPrivate.push(entry);
        out.origins[`egress.allow_private.${entry}`] = file;
      }
    }
    // Per field, later wins; seconds in the manifest, milliseconds in the gate.
    for (const field of LIMIT_FIELDS) {
      const limit = value.egress?.limits?.[field.manifest];
      if (limit === undefined) continue;
      out.egress.limits[field.gate] = limit * field.scale;
      out.origins[`egress.limits.${field.manifest}`] = file;
    }
    (value.egress?.routes ?? []).forEach((route, index) => {
      const { line, col } = locate(["egress", "routes", index, "auth", "token"]);
      const portMatch = /^(.*):(\d+)$/.exec(route.host);
      const header = route.auth.header ?? "Authorization";
      const scheme = route.auth.scheme ?? (header.toLowerCase() === "authorization" ? "Bearer" : undefined);
      out.egress.routes.push({
        host: portMatch ? portMatch[1]! : route.host,
        port: portMatch ? Number(portMatch[2]) : 443,
        header,
        ...(scheme === undefined ? {} : { scheme }),
        token: { source: route.auth.token, file, line, col },
        ...(route.auth.env === undefined ? {} : { env: route.auth.env }),
        paths: route.paths ?? [],
        methods: [...new Set(route.methods ?? [])],
      });
    });
    if (value.auth?.token !== undefined) {
      const { line, col } = locate(["auth", "token"]);
      out.auth.token = { source: value.auth.token, file, line, col };
      out.origins["auth.token"] = file;
    }
    if (value.auth?.kind !== undefined) {
      out.auth.kind = value.auth.kind;
      out.origins["auth.kind"] = file;
    }
    if (value.auth?.upstream !== undefined) {
      out.auth.upstream = value.auth.upstream;
      out.origins["auth.upstream"] = file;
    }
    const user = value.git?.user;
    if (user?.name !== undefined || user?.email !== undefined) {
      out.git.user = { ...out.git.user };
      if (user.name !== undefined) {
        out.git.user.name = user.name;
        out.origins["git.user.name"] = file;
      }
      if (user.email !== undefined) {
        out.git.user.email = user.email;
        out.origins["git.user.email"] = file;
      }
    }
    for (const [remote, spec] of Object.entries(value.git?.remotes ?? {})) {
      out.git.remotes[remote] = { upstream: spec.upstream, identityFile: abs(spec.identity_file), knownHostKey: spec.known_host_key };
      out.origins[`git.remotes.${remote}`] = file;
    }
    for (const host of value.ssh?.hosts ?? []) {
      const entry = {
        host: host.host.toLowerCase(),
        port: host.port ?? 22,
        ...(host.user === undefined ? {} : { user: host.user }),
        identityFile: abs(host.identity_file),
        knownHostKey: host.known_host_key,
      };
      const index = out.ssh.hosts.findIndex((existing) => existing.host === entry.host);
      if (index === -1) out.ssh.hosts.push(entry);
      else out.ssh.hosts[index] = entry;
      out.origins[`ssh.hosts.${entry.host}`] = file;
    }
    if (value.workspace !== undefined) {
      out.workspace = value.workspace;
      out.origins.workspace = file;
    }
    for (const cert of value.ca_certs ?? []) {
      const path = abs(cert);
      if (!out.caCerts.includes(path)) {
        out.caCerts.push(path);
        out.origins[`ca_certs.${path}`] = file;
      }
    }
    if (value.image !== undefined) {
      out.image = { dockerfile: abs(value.image.dockerfile) };
      out.origins.image = file;
    }
    if (value.backend !== undefined) {
      out.backend = value.backend;
      out.origins.backend = file;
    }
    if (value.claude) mergeClaudeSetup(out.claude, value.claude, file, locate, out.origins);
    // Per field, later wins; where it was written, for planning's check against the engine.
    for (const field of ["cpus", "memory", "pids"] as const) {
      const limit = value.resources?.[field];
      if (limit === undefined) continue;
      const at = ["resources", field];
      out.resources[field] = { value: limit, file, ...locate(at), path: formatPath(at) };
      out.origins[`resources.${field}`] = file;
    }
    (value.ports ?? []).forEach((spec, index) => {
      const entry = { value: spec, file, ...locate(["ports", index]), path: formatPath(["ports", index]) };
      const same = out.ports.findIndex((existing) => existing.value.port === spec.port);
      if (same === -1) out.ports.push(entry);
      else out.ports[same] = entry;
    });
  }
  return out;
}
