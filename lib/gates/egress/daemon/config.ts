/**
 * The egress gate's configuration file (`/etc/bottle/egress.json`), written
 * by the host side and read by the gate at start and on SIGHUP. Validated by
 * hand to keep the gate bundle small.
 */
import { readFileSync } from "node:fs";
import { isIPv4 } from "node:net";
import { parseCidr } from "./addresses.ts";
import { type AnthropicRouteConfig, type RouteConfig, isCredentialName } from "./custody.ts";
import { TOKEN } from "./headers.ts";
import { Policy, normalizeHost } from "./policy.ts";

export interface EgressLimits {
  /** Requests (plain HTTP requests + CONNECTs) per minute for the whole bottle; 0 = unlimited. */
  requestsPerMinute: number;
  /** Total bytes client→upstream over the gate's lifetime; 0 = unlimited. */
  bytesOut: number;
  /** Close a connection/tunnel with no traffic for this long; 0 = never. */
  idleTimeoutMs: number;
  /** Close a tunnel / request after this long; 0 = never. */
  maxTunnelMs: number;
  /** Bytes each gate log (egress, git, ssh) may hold on the host with its one rotated generation; 0 = no cap. */
  maxLogBytes: number;
}

export interface EgressConfig {
  /** Bottle name, for audit lines and 403 hints. */
  bottle: string;
  /** HTTP + CONNECT proxy port, e.g. 3128 (0 = any free port; tests). */
  proxyPort: number;
  /** UDP + TCP DNS responder port, e.g. 53 (0 = any free port; tests). */
  dnsPort: number;
  /**
   * Where every gate service listens (proxy, DNS, Claude Code's route):
   * addresses or CIDRs; each binds to the gate's own addresses inside them
   * (listen.ts). The bottle's internal network, never the egress side.
   */
  listen: string[];
  /** "api.anthropic.com", "*.example.com" (subdomains, not the apex), "host:8443" (only that port), IP literals. */
  allow: string[];
  /** Host names (`*.` wildcards) or addresses/CIDRs whose private resolution is permitted. */
  allowPrivate: string[];
  /** JSON-lines audit file (appended to). */
  auditLog: string;
  /** Optional JSON array of secret strings (a root-only file) for DLP. */
  secretsFile?: string;
  limits: EgressLimits;
  /** Addresses (or CIDRs) of the Docker host: always refused. */
  hostAddresses: string[];
  /** Credential custody: a root-only JSON object of credential name → value. */
  credentialsFile?: string;
  /** Hosts whose HTTPS the gate terminates to inject a credential (needs tlsDir). */
  routes?: RouteConfig[];
  /** Claude Code's plain-HTTP route to the Anthropic API. */
  anthropic?: AnthropicRouteConfig;
  /** Where the gate keeps the CA and certificate it makes for `routes` (root-only; the ready line carries ca.pem to the host). */
  tlsDir?: string;
}

/**
 * The line the gate prints on stdout once its listeners are bound: its IPv4
 * addresses follow and, with credential routes, `ca=` and their CA (PEM,
 * base64), which the bottle must trust. The launch reads both from it.
 */
export const EGRESS_READY_LINE = "egress gate ready";

export function egressReadyLine(addresses: string[], caPem?: string | null): string {
  const ca = caPem ? [`ca=${Buffer.from(caPem).toString("base64")}`] : [];
  return `${[EGRESS_READY_LINE, ...addresses, ...ca].join(" ")}\n`;
}

/** The CA a ready line carries (PEM), if any. */
export function readyLineCa(line: string): string | undefined {
  const encoded = /(?:^|\s)ca=([A-Za-z0-9+/]+=*)(?:\s|$)/.exec(line)?.[1];
  return encoded ? Buffer.from(encoded, "base64").toString() : undefined;
}

/** The addresses a ready line names (the launch learns the gate's egress address from it). */
export function readyLineAddresses(line: string): string[] {
  const at = line.indexOf(EGRESS_READY_LINE);
  if (at === -1) return [];
  return line
    .slice(at + EGRESS_READY_LINE.length)
    .split(/\s+/)
    .filter((word) => isIPv4(word));
}

export class EgressConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EgressConfigError";
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function str(value: unknown, path: string, options: { nonEmpty?: boolean } = {}): string {
  if (typeof value !== "string") throw new EgressConfigError(`${path}: expected a string`);
  if (options.nonEmpty && value.trim() === "") throw new EgressConfigError(`${path}: must not be empty`);
  return value;
}

function int(value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new EgressConfigError(`${path}: expected an integer ${min}..${max}`);
  }
  return value;
}

function strings(value: unknown, path: string): string[] {
  if (!Array.isArray(value)) throw new EgressConfigError(`${path}: expected an array of strings`);
  return value.map((item, i) => str(item, `${path}[${i}]`, { nonEmpty: true }));
}

const KNOWN_KEYS = new Set([
  "bottle",
  "proxyPort",
  "dnsPort",
  "listen",
  "allow",
  "allowPrivate",
  "auditLog",
  "secretsFile",
  "limits",
  "hostAddresses",
  "credentialsFile",
  "routes",
  "anthropic",
  "tlsDir",
]);
const ROUTE_KEYS = new Set(["host", "port", "header", "scheme", "credential", "paths", "methods"]);
const ANTHROPIC_KEYS = new Set(["port", "prefix", "upstream", "credential", "kind"]);

function credentialName(value: unknown, path: string): string {
  const name = str(value, path, { nonEmpty: true });
  if (!isCredentialName(name)) throw new EgressConfigError(`${path}: expected a variable-like name`);
  return name;
}

function checkKeys(value: Record<string, unknown>, known: Set<string>, path: string): void {
  for (const key of Object.keys(value)) if (!known.has(key)) throw new EgressConfigError(`${path}.${key}: unknown field`);
}

function validateRoute(value: unknown, path: string): RouteConfig {
  if (!isRecord(value)) throw new EgressConfigError(`${path}: expected an object`);
  checkKeys(value, ROUTE_KEYS, path);
  const hostText = str(value.host, `${path}.host`, { nonEmpty: true });
  const host = normalizeHost(hostText);
  if (!host || host.kind !== "name" || host.host !== hostText) throw new EgressConfigError(`${path}.host: expected a lower-case host name`);
  const header = str(value.header, `${path}.header`, { nonEmpty: true });
  if (!TOKEN.test(header)) throw new EgressConfigError(`${path}.header: not a header name`);
  const route: RouteConfig = {
    host: host.host,
    port: int(value.port, `${path}.port`, 1, 65535),
    header,
    credential: credentialName(value.credential, `${path}.credential`),
    paths: strings(value.paths, `${path}.paths`),
    methods: strings(value.methods, `${path}.methods`),
  };
  if (value.scheme !== undefined) {
    const scheme = str(value.scheme, `${path}.scheme`, { nonEmpty: true });
    if (!TOKEN.test(scheme)) throw new EgressConfigError(`${path}.scheme: not an auth scheme`);
    route.scheme = scheme;
  }
  route.paths.forEach((prefix, i) => {
    if (!prefix.startsWith("/") || /[?#\s]/.test(prefix)) throw new EgressConfigError(`${path}.paths[${i}]: expected a path starting with /`);
  });
  route.methods.forEach((method, i) => {
    if (!TOKEN.test(method) || method !== method.toUpperCase()) throw new EgressConfigError(`${path}.methods[${i}]: expected an upper-case method`);
  });
  return route;
}

function validateAnthropic(value: unknown): AnthropicRouteConfig {
  if (!isRecord(value)) throw new EgressConfigError("anthropic: expected an object");
  checkKeys(value, ANTHROPIC_KEYS, "anthropic");
  const prefix = str(value.prefix, "anthropic.prefix", { nonEmpty: true });
  if (!/^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/.test(prefix)) throw new EgressConfigError("anthropic.prefix: expected a path like /anthropic");
  const upstream = str(value.upstream, "anthropic.upstream", { nonEmpty: true });
  let url: URL;
  try {
    url = new URL(upstream);
  } catch {
    throw new EgressConfigError("anthropic.upstream: expected an https:// URL");
  }
  if (url.protocol !== "https:" || url.username || url.password || url.search || url.hash || upstream.includes("#") || upstream.includes("?")) {
    throw new EgressConfigError("anthropic.upstream: expected an https:// URL without credentials, query or fragment");
  }
  const kind = str(value.kind, "anthropic.kind");
  if (kind !== "oauth" && kind !== "api-key") throw new EgressConfigError("anthropic.kind: expected oauth or api-key");
  return {
    port: int(value.port, "anthropic.port", 0, 65535),
    prefix,
    upstream,
    credential: credentialName(value.credential, "anthropic.credential"),
    kind,
  };
}

/** Custody fields: each route host terminates on one port; credentials need a file, routes a TLS dir. */
function validateCustody(value: Record<string, unknown>, config: EgressConfig): void {
  if (value.credentialsFile !== undefined) config.credentialsFile = str(value.credentialsFile, "credentialsFile", { nonEmpty: true });
  if (value.tlsDir !== undefined) config.tlsDir = str(value.tlsDir, "tlsDir", { nonEmpty: true });
  if (value.routes !== undefined) {
    if (!Array.isArray(value.routes)) throw new EgressConfigError("routes: expected an array");
    config.routes = value.routes.map((route, i) => validateRoute(route, `routes[${i}]`));
    const ports = new Map<string, number>();
    config.routes.forEach((route, i) => {
      const port = ports.get(route.host);
      if (port !== undefined && port !== route.port) throw new EgressConfigError(`routes[${i}].port: every route of ${route.host} must use the same port`);
      ports.set(route.host, route.port);
    });
  }
  if (value.anthropic !== undefined) config.anthropic = validateAnthropic(value.anthropic);
  const needsCredentials = (config.routes?.length ?? 0) > 0 || config.anthropic !== undefined;
  if (needsCredentials && !config.credentialsFile) throw new EgressConfigError("credentialsFile: needed for routes and anthropic");
  if ((config.routes?.length ?? 0) > 0 && !config.tlsDir) throw new EgressConfigError("tlsDir: needed for routes");
}
/** `listen`: at least one address or CIDR. */
function listenRanges(value: unknown): string[] {
  const listen = strings(value, "listen");
  if (listen.length === 0) throw new EgressConfigError("listen: must not be empty");
  listen.forEach((entry, i) => {
    if (!parseCidr(entry)) throw new EgressConfigError(`listen[${i}]: expected an address or CIDR`);
  });
  return listen;
}

const LIMIT_KEYS = new Set(["requestsPerMinute", "bytesOut", "idleTimeoutMs", "maxTunnelMs", "maxLogBytes"]);

/** Validates a parsed config object; throws EgressConfigError naming the bad field. */
export function validateConfig(value: unknown): EgressConfig {
  if (!isRecord(value)) throw new EgressConfigError("config: expected an object");
  for (const key of Object.keys(value)) if (!KNOWN_KEYS.has(key)) throw new EgressConfigError(`${key}: unknown field`);
  const limitsValue = value.limits;
  if (!isRecord(limitsValue)) throw new EgressConfigError("limits: expected an object");
  for (const key of Object.keys(limitsValue)) {
    if (!LIMIT_KEYS.has(key)) throw new EgressConfigError(`limits.${key}: unknown field`);
  }
  const config: EgressConfig = {
    bottle: str(value.bottle, "bottle", { nonEmpty: true }),
    proxyPort: int(value.proxyPort, "proxyPort", 0, 65535),
    dnsPort: int(value.dnsPort, "dnsPort", 0, 65535),
    listen: listenRanges(value.listen),
    allow: strings(value.allow, "allow"),
    allowPrivate: strings(value.allowPrivate, "allowPrivate"),
    auditLog: str(value.auditLog, "auditLog", { nonEmpty: true }),
    limits: {
      requestsPerMinute: int(limitsValue.requestsPerMinute, "limits.requestsPerMinute", 0, 1e9),
      bytesOut: int(limitsValue.bytesOut, "limits.bytesOut", 0, Number.MAX_SAFE_INTEGER),
      idleTimeoutMs: int(limitsValue.idleTimeoutMs, "limits.idleTimeoutMs", 0, 2 ** 31 - 1),
      maxTunnelMs: int(limitsValue.maxTunnelMs, "limits.maxTunnelMs", 0, 2 ** 31 - 1),
      maxLogBytes: int(limitsValue.maxLogBytes, "limits.maxLogBytes", 0, Number.MAX_SAFE_INTEGER),
    },
    hostAddresses: strings(value.hostAddresses, "hostAddresses"),
  };
  if (value.secretsFile !== undefined) config.secretsFile = str(value.secretsFile, "secretsFile", { nonEmpty: true });
  validateCustody(value, config);
  try {
    // Every entry must parse; the Policy constructor names the bad one.
    new Policy(config.allow, config.allowPrivate, config.hostAddresses);
  } catch (error) {
    throw new EgressConfigError(error instanceof Error ? error.message : String(error));
  }
  return config;
}

export function parseConfig(text: string): EgressConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new EgressConfigError(`not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  return validateConfig(value);
}

export function loadConfig(path: string): EgressConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new EgressConfigError(`cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    return parseConfig(text);
  } catch (error) {
    throw new EgressConfigError(`${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Reads the secrets file: a JSON array of strings. Errors never include file contents. */
export function loadSecrets(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = isRecord(error) && typeof error.code === "string" ? error.code : "error";
    throw new EgressConfigError(`cannot read secrets file ${path} (${code})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new EgressConfigError(`secrets file ${path} is not valid JSON`);
  }
  if (!Array.isArray(value) || !value.every((item): item is string => typeof item === "string")) {
    throw new EgressConfigError(`secrets file ${path} must be a JSON array of strings`);
  }
  return value;
}

/**
 * Reads the credentials file: a JSON object of name → value. Every name in
 * `needed` must be there. Errors name the file and the credential, never a value.
 */
export function loadCredentials(path: string, needed: readonly string[]): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = isRecord(error) && typeof error.code === "string" ? error.code : "error";
    throw new EgressConfigError(`cannot read credentials file ${path} (${code})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new EgressConfigError(`credentials file ${path} is not valid JSON`);
  }
  if (!isRecord(value)) throw new EgressConfigError(`credentials file ${path} must be a JSON object of name: value`);
  const credentials = new Map<string, string>();
  for (const [name, secret] of Object.entries(value)) {
    if (!isCredentialName(name) || typeof secret !== "string" || secret === "") {
      throw new EgressConfigError(`credentials file ${path}: ${isCredentialName(name) ? name : "an entry"} must be a non-empty string`);
    }
    credentials.set(name, secret);
  }
  for (const name of needed) if (!credentials.has(name)) throw new EgressConfigError(`credentials file ${path} has no ${name}`);
  return credentials;
}

/** The credential names a config refers to. */
export function neededCredentials(config: EgressConfig): string[] {
  const names = new Set<string>();
  for (const route of config.routes ?? []) names.add(route.credential);
  if (config.anthropic) names.add(config.anthropic.credential);
  return [...names];
}
