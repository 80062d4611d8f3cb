/**
 * The egress policy: which host names / ports / IP literals a bottle may
 * reach (`allow`), which private resolutions are permitted
 * (`allowPrivate`), and the vetting of resolved addresses. Pure code.
 */
import {
  type Cidr,
  type Classification,
  type Ip,
  classify,
  cidrContains,
  formatCidr,
  formatIp,
  parseCidr,
  parseIp,
  parseIPv6,
  unmap,
} from "./addresses.ts";

export type HostTarget = { kind: "name"; host: string } | { kind: "ip"; host: string; ip: Ip };

const MAX_NAME = 253;

/**
 * Lower-cases a host name, drops one trailing dot, applies IDNA and the
 * WHATWG IPv4 forms (`0x7f.1`, `2130706433` → `127.0.0.1`) so that every
 * spelling of an IP address is recognised as an IP literal. IPv6 must be in
 * brackets. Null for anything that is not a valid host.
 */
export function normalizeHost(raw: string): HostTarget | null {
  if (raw.length === 0 || raw.length > 1024) return null;
  if (raw.startsWith("[")) {
    if (!raw.endsWith("]")) return null;
    const inner = raw.slice(1, -1);
    const bytes = parseIPv6(inner);
    if (!bytes) return null;
    const ip = unmap({ family: 6, bytes });
    return { kind: "ip", host: formatIp(ip), ip };
  }
  // ASCII letters, digits, dot, hyphen, underscore; anything non-ASCII goes through IDNA.
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code < 0x80 && !/[A-Za-z0-9._-]/.test(raw[i] ?? "")) return null;
  }
  let value = raw.endsWith(".") ? raw.slice(0, -1) : raw;
  if (value.length === 0 || value.startsWith(".") || value.endsWith(".") || value.includes("..")) return null;
  let hostname: string;
  try {
    hostname = new URL(`http://${value}/`).hostname;
  } catch {
    return null;
  }
  if (hostname.endsWith(".")) hostname = hostname.slice(0, -1);
  value = hostname.toLowerCase();
  if (value.length === 0 || value.length > MAX_NAME) return null;
  const ip = parseIp(value);
  if (ip) return { kind: "ip", host: formatIp(unmap(ip)), ip: unmap(ip) };
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(value)) return null;
  if (value.split(".").some((label) => label.length > 63)) return null;
  return { kind: "name", host: value };
}

export interface AllowEntry {
  /** The entry as written. */
  entry: string;
  kind: "name" | "wildcard" | "ip";
  /** Exact host (name/ip) or the suffix after `*.` (wildcard). */
  host: string;
  /** null = the default ports (80 and 443). */
  port: number | null;
}

export const DEFAULT_PORTS: readonly number[] = [80, 443];

function splitHostPort(text: string): { host: string; port: number | null } | string {
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close === -1) return "unclosed [";
    const rest = text.slice(close + 1);
    if (rest === "") return { host: text.slice(0, close + 1), port: null };
    if (!/^:[0-9]{1,5}$/.test(rest)) return "expected :port after ]";
    return { host: text.slice(0, close + 1), port: Number(rest.slice(1)) };
  }
  // A bare IPv6 address (several colons) has no port.
  if (parseIPv6(text)) return { host: `[${text}]`, port: null };
  const colon = text.lastIndexOf(":");
  if (colon === -1) return { host: text, port: null };
  const portText = text.slice(colon + 1);
  if (!/^[0-9]{1,5}$/.test(portText)) return "the port must be a number";
  return { host: text.slice(0, colon), port: Number(portText) };
}

/** Parses one `allow` entry; returns an error message (string) when invalid. */
export function parseAllowEntry(entry: string): AllowEntry | string {
  const text = entry.trim();
  if (text === "") return "empty entry";
  const split = splitHostPort(text);
  if (typeof split === "string") return split;
  const { host, port } = split;
  if (port !== null && (port < 1 || port > 65535)) return "the port must be 1-65535";
  if (host.startsWith("*.")) {
    const suffix = normalizeHost(host.slice(2));
    if (!suffix || suffix.kind !== "name") return "a wildcard must be *.<domain>";
    if (!suffix.host.includes(".")) return "a wildcard must cover a domain, not a whole top-level domain";
    return { entry: text, kind: "wildcard", host: suffix.host, port };
  }
  if (host.includes("*")) return "a wildcard is only allowed as a leading *.";
  const target = normalizeHost(host);
  if (!target) return "not a valid host name or IP address";
  return { entry: text, kind: target.kind, host: target.host, port };
}

export type PrivateEntry = { entry: string; kind: "cidr"; cidr: Cidr } | { entry: string; kind: "name" | "wildcard"; host: string };

/** Parses one `allowPrivate` entry: a host name, `*.domain`, an address or a CIDR. */
export function parsePrivateEntry(entry: string): PrivateEntry | string {
  const text = entry.trim();
  if (text === "") return "empty entry";
  const cidr = parseCidr(text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text);
  if (cidr) return { entry: text, kind: "cidr", cidr };
  if (text.includes("/")) return "not a valid CIDR";
  if (text.startsWith("*.")) {
    const suffix = normalizeHost(text.slice(2));
    if (!suffix || suffix.kind !== "name" || !suffix.host.includes(".")) return "a wildcard must be *.<domain>";
    return { entry: text, kind: "wildcard", host: suffix.host };
  }
  const target = normalizeHost(text);
  if (!target) return "not a valid host name, address or CIDR";
  if (target.kind === "ip") {
    const parsed = parseCidr(target.host);
    if (!parsed) return "not a valid address";
    return { entry: text, kind: "cidr", cidr: parsed };
  }
  return { entry: text, kind: "name", host: target.host };
}

function nameMatches(kind: "name" | "wildcard", pattern: string, host: string): boolean {
  if (kind === "name") return host === pattern;
  return host.length > pattern.length + 1 && host.endsWith(`.${pattern}`);
}

export type HostDecision =
  | { ok: true; entry: string }
  | { ok: false; rule: "not-allowed" | "port-not-allowed" | "ip-literal" };

export type VetDecision =
  | { ok: true; addresses: Ip[] }
  | { ok: false; rule: "private-address" | "host-address" | "resolve-failed"; detail: string; category?: string };

export class Policy {
  readonly allow: AllowEntry[];
  readonly allowPrivate: PrivateEntry[];
  readonly hostAddresses: Cidr[];

  /** Throws an Error naming the first invalid entry. */
  constructor(allow: readonly string[], allowPrivate: readonly string[], hostAddresses: readonly string[]) {
    this.allow = allow.map((entry, i) => {
      const parsed = parseAllowEntry(entry);
      if (typeof parsed === "string") throw new Error(`allow[${i}] ${JSON.stringify(entry)}: ${parsed}`);
      return parsed;
    });
    this.allowPrivate = allowPrivate.map((entry, i) => {
      const parsed = parsePrivateEntry(entry);
      if (typeof parsed === "string") throw new Error(`allowPrivate[${i}] ${JSON.stringify(entry)}: ${parsed}`);
      return parsed;
    });
    this.hostAddresses = hostAddresses.map((entry, i) => {
      const parsed = parseCidr(entry.trim());
      if (!parsed) throw new Error(`hostAddresses[${i}] ${JSON.stringify(entry)}: not an address or CIDR`);
      return parsed;
    });
  }

  /** Whether `target:port` is on the allowlist. */
  checkHost(target: HostTarget, port: number): HostDecision {
    let hostMatched = false;
    for (const rule of this.allow) {
      let matches: boolean;
      if (target.kind === "ip") matches = rule.kind === "ip" && rule.host === target.host;
      else matches = rule.kind !== "ip" && nameMatches(rule.kind, rule.host, target.host);
      if (!matches) continue;
      hostMatched = true;
      if (rule.port === null ? DEFAULT_PORTS.includes(port) : rule.port === port) return { ok: true, entry: rule.entry };
    }
    if (hostMatched) return { ok: false, rule: "port-not-allowed" };
    return { ok: false, rule: target.kind === "ip" ? "ip-literal" : "not-allowed" };
  }

  /** Whether a CONNECT to `target:port` was allowed only through an explicit `host:port` entry (port ≠ 443). */
  explicitPort(target: HostTarget, port: number): boolean {
    if (port === 443) return false;
    return this.allow.some((rule) => {
      if (rule.port !== port) return false;
      if (target.kind === "ip") return rule.kind === "ip" && rule.host === target.host;
      return rule.kind !== "ip" && nameMatches(rule.kind, rule.host, target.host);
    });
  }

  /** DNS: a name resolves when any name/wildcard entry covers it (ports do not matter). */
  nameAllowed(name: string): boolean {
    return this.allow.some((rule) => rule.kind !== "ip" && nameMatches(rule.kind, rule.host, name));
  }

  private privatePermitted(target: HostTarget, ip: Ip, classification: Classification): boolean {
    const full = ip.family === 4 ? 32 : 128;
    return this.allowPrivate.some((entry) => {
      if (entry.kind === "cidr") {
        // Cloud metadata endpoints need the exact address, a broad range does not unlock them.
        if (classification.category === "metadata" && entry.cidr.prefix !== full) return false;
        return cidrContains(entry.cidr, ip);
      }
      if (classification.category === "metadata") return false;
      return target.kind === "name" && nameMatches(entry.kind, entry.host, target.host);
    });
  }

  /**
   * Vets every address `target` resolved to. Refuses when any address is a
   * Docker host address (always) or off limits (private, loopback, …) and not
   * permitted by `allowPrivate`.
   */
  vet(target: HostTarget, addresses: readonly string[]): VetDecision {
    if (addresses.length === 0) return { ok: false, rule: "resolve-failed", detail: "no addresses" };
    const vetted: Ip[] = [];
    for (const text of addresses) {
      const parsed = parseIp(text);
      if (!parsed) return { ok: false, rule: "resolve-failed", detail: "resolver returned a malformed address" };
      const ip = unmap(parsed);
      const hostCidr = this.hostAddresses.find((cidr) => cidrContains(cidr, ip));
      if (hostCidr) {
        return { ok: false, rule: "host-address", detail: `${formatIp(ip)} is a Docker host address (${formatCidr(hostCidr)})` };
      }
      const classification = classify(ip);
      if (classification && !this.privatePermitted(target, ip, classification)) {
        return {
          ok: false,
          rule: "private-address",
          detail: `${formatIp(ip)} is ${classification.category} (${classification.range})`,
          category: classification.category,
        };
      }
      vetted.push(ip);
    }
    return { ok: true, addresses: vetted };
  }
}
