/**
 * The egress gate's configuration file (`/etc/bottle/egress.json`), written
 * by the host side and read by the gate at start and on SIGHUP. Validated by
 * hand to keep the gate bundle small.
 */
import { readFileSync } from "node:fs";
import { Policy } from "./policy.ts";

export interface EgressLimits {
  /** Requests (plain HTTP requests + CONNECTs) per minute for the whole bottle; 0 = unlimited. */
  requestsPerMinute: number;
  /** Total bytes client→upstream over the gate's lifetime; 0 = unlimited. */
  bytesOut: number;
  /** Close a connection/tunnel with no traffic for this long; 0 = never. */
  idleTimeoutMs: number;
  /** Close a tunnel / request after this long; 0 = never. */
  maxTunnelMs: number;
}

export interface EgressConfig {
  /** Bottle name, for audit lines and 403 hints. */
  bottle: string;
  /** HTTP + CONNECT proxy port, e.g. 3128 (0 = any free port; tests). */
  proxyPort: number;
  /** UDP + TCP DNS responder port, e.g. 53 (0 = any free port; tests). */
  dnsPort: number;
  /** Address to bind, e.g. "0.0.0.0". */
  listen: string;
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
}

/** The line the gate prints on stdout once both listeners are bound. */
export const EGRESS_READY_LINE = "egress gate ready";

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
]);
const LIMIT_KEYS = new Set(["requestsPerMinute", "bytesOut", "idleTimeoutMs", "maxTunnelMs"]);

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
    listen: str(value.listen, "listen", { nonEmpty: true }),
    allow: strings(value.allow, "allow"),
    allowPrivate: strings(value.allowPrivate, "allowPrivate"),
    auditLog: str(value.auditLog, "auditLog", { nonEmpty: true }),
    limits: {
      requestsPerMinute: int(limitsValue.requestsPerMinute, "limits.requestsPerMinute", 0, 1e9),
      bytesOut: int(limitsValue.bytesOut, "limits.bytesOut", 0, Number.MAX_SAFE_INTEGER),
      idleTimeoutMs: int(limitsValue.idleTimeoutMs, "limits.idleTimeoutMs", 0, 2 ** 31 - 1),
      maxTunnelMs: int(limitsValue.maxTunnelMs, "limits.maxTunnelMs", 0, 2 ** 31 - 1),
    },
    hostAddresses: strings(value.hostAddresses, "hostAddresses"),
  };
  if (value.secretsFile !== undefined) config.secretsFile = str(value.secretsFile, "secretsFile", { nonEmpty: true });
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
