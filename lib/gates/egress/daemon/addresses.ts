/**
 * IP address parsing, formatting, CIDR matching and classification of the
 * address ranges a bottle must never reach (loopback, private, link-local,
 * CGNAT, multicast, metadata, reserved …). Pure code: runs in the gate under
 * Node and in unit tests under Bun.
 */

export type IpFamily = 4 | 6;

export interface Ip {
  family: IpFamily;
  /** 4 bytes for IPv4, 16 for IPv6. */
  bytes: Uint8Array;
}

export interface Cidr {
  family: IpFamily;
  bytes: Uint8Array;
  prefix: number;
}

/** Strict dotted-decimal IPv4: four parts 0-255, no leading zeros (no octal ambiguity). */
export function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i] ?? "";
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return null;
    const value = Number(part);
    if (value > 255) return null;
    out[i] = value;
  }
  return out;
}

/** IPv6 text form (with `::` and an optional dotted IPv4 tail); no zone id, no brackets. */
export function parseIPv6(text: string): Uint8Array | null {
  if (text.length === 0 || text.length > 45) return null;
  if (!/^[0-9A-Fa-f:.]+$/.test(text)) return null;
  let head = text;
  let tail: Uint8Array | null = null;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".")) {
    tail = parseIPv4(text.slice(lastColon + 1));
    if (!tail) return null;
    head = text.slice(0, lastColon + 1);
    // "::1.2.3.4" leaves "::", "ffff:1.2.3.4" is malformed ("ffff:" then tail) unless it ends in "::" or a group.
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
  }
  const groupsNeeded = tail ? 6 : 8;
  const doubleAt = head.indexOf("::");
  if (doubleAt !== -1 && head.indexOf("::", doubleAt + 1) !== -1) return null;
  const parseGroups = (part: string): number[] | null => {
    if (part === "") return [];
    const groups: number[] = [];
    for (const group of part.split(":")) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(group)) return null;
      groups.push(parseInt(group, 16));
    }
    return groups;
  };
  let groups: number[];
  if (doubleAt !== -1) {
    const left = parseGroups(head.slice(0, doubleAt));
    const right = parseGroups(head.slice(doubleAt + 2));
    if (!left || !right) return null;
    const missing = groupsNeeded - left.length - right.length;
    if (missing < 1) return null;
    groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  } else {
    const all = parseGroups(head);
    if (!all || all.length !== groupsNeeded) return null;
    groups = all;
  }
  const out = new Uint8Array(16);
  groups.forEach((group, i) => {
    out[i * 2] = group >> 8;
    out[i * 2 + 1] = group & 0xff;
  });
  if (tail) out.set(tail, 12);
  return out;
}

/**
 * Parses an IPv4 or IPv6 address. Accepts `[v6]` brackets and drops an IPv6
 * zone id (`fe80::1%eth0`) as resolvers may return one.
 */
export function parseIp(text: string): Ip | null {
  let value = text.trim();
  if (value.startsWith("[") && value.endsWith("]")) value = value.slice(1, -1);
  const v4 = parseIPv4(value);
  if (v4) return { family: 4, bytes: v4 };
  const zone = value.indexOf("%");
  if (zone !== -1) value = value.slice(0, zone);
  const v6 = parseIPv6(value);
  if (v6) return { family: 6, bytes: v6 };
  return null;
}

function isMappedV4(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/** `::ffff:a.b.c.d` becomes the IPv4 address a.b.c.d; everything else is returned as is. */
export function unmap(ip: Ip): Ip {
  if (ip.family === 6 && isMappedV4(ip.bytes)) return { family: 4, bytes: ip.bytes.slice(12, 16) };
  return ip;
}

/** Canonical text: dotted decimal, or RFC 5952 IPv6 (lower case, longest zero run compressed). */
export function formatIp(ip: Ip): string {
  if (ip.family === 4) return Array.from(ip.bytes).join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((ip.bytes[i] ?? 0) << 8) | (ip.bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (isMappedV4(ip.bytes)) return `::ffff:${Array.from(ip.bytes.slice(12)).join(".")}`;
  const hex = groups.map((g) => g.toString(16));
  if (bestLength < 2) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLength).join(":");
  return `${left}::${right}`;
}

/** Parses and canonicalises an address (IPv4-mapped IPv6 becomes IPv4); null when not an address. */
export function canonicalIp(text: string): string | null {
  const ip = parseIp(text);
  return ip ? formatIp(unmap(ip)) : null;
}

/**
 * `10.0.0.0/8`, `fc00::/7`, or a bare address (a /32 or /128). A CIDR inside
 * `::ffff:0:0/96` is turned into the equivalent IPv4 CIDR.
 */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf("/");
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const ip = parseIp(addressText);
  if (!ip) return null;
  const max = ip.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return null;
    prefix = Number(prefixText);
    if (prefix > max) return null;
  }
  if (ip.family === 6 && prefix >= 96 && isMappedV4(ip.bytes)) {
    return normalizeCidr({ family: 4, bytes: ip.bytes.slice(12), prefix: prefix - 96 });
  }
  return normalizeCidr({ family: ip.family, bytes: ip.bytes, prefix });
}

function normalizeCidr(cidr: Cidr): Cidr {
  const bytes = cidr.bytes.slice();
  for (let bit = cidr.prefix; bit < bytes.length * 8; bit++) {
    const index = bit >> 3;
    bytes[index] = (bytes[index] ?? 0) & ~(0x80 >> (bit & 7));
  }
  return { family: cidr.family, bytes, prefix: cidr.prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp({ family: cidr.family, bytes: cidr.bytes })}/${cidr.prefix}`;
}

/** Whether `ip` (IPv4-mapped IPv6 is unmapped first) lies inside `cidr`. */
export function cidrContains(cidr: Cidr, address: Ip): boolean {
  const ip = unmap(address);
  if (ip.family !== cidr.family) return false;
  const fullBytes = cidr.prefix >> 3;
  for (let i = 0; i < fullBytes; i++) if (ip.bytes[i] !== cidr.bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((ip.bytes[fullBytes] ?? 0) & mask) === ((cidr.bytes[fullBytes] ?? 0) & mask);
}

export type AddressCategory =
  | "unspecified"
  | "loopback"
  | "private"
  | "cgnat"
  | "link-local"
  | "metadata"
  | "multicast"
  | "reserved"
  | "documentation"
  | "benchmarking"
  | "broadcast"
  | "unique-local"
  | "site-local";

export interface Classification {
  category: AddressCategory;
  /** The range that matched, e.g. "10.0.0.0/8". */
  range: string;
}

interface RangeEntry {
  cidr: Cidr;
  text: string;
  category: AddressCategory;
}

function range(text: string, category: AddressCategory): RangeEntry {
  const cidr = parseCidr(text);
  if (!cidr) throw new Error(`bad built-in range ${text}`);
  return { cidr, text, category };
}

/** Order matters: the first match wins (metadata before link-local, broadcast before reserved). */
const V4_RANGES: RangeEntry[] = [
  range("0.0.0.0/8", "unspecified"),
  range("10.0.0.0/8", "private"),
  range("100.64.0.0/10", "cgnat"),
  range("127.0.0.0/8", "loopback"),
  range("169.254.169.254/32", "metadata"),
  range("169.254.170.2/32", "metadata"),
  range("169.254.0.0/16", "link-local"),
  range("172.16.0.0/12", "private"),
  range("192.0.0.0/24", "reserved"),
  range("192.0.2.0/24", "documentation"),
  range("192.88.99.0/24", "reserved"),
  range("192.168.0.0/16", "private"),
  range("198.18.0.0/15", "benchmarking"),
  range("198.51.100.0/24", "documentation"),
  range("203.0.113.0/24", "documentation"),
  range("224.0.0.0/4", "multicast"),
  range("255.255.255.255/32", "broadcast"),
  range("240.0.0.0/4", "reserved"),
];

const V6_RANGES: RangeEntry[] = [
  range("::/128", "unspecified"),
  range("::1/128", "loopback"),
  range("64:ff9b:1::/48", "private"),
  range("100::/64", "reserved"),
  range("2001::/32", "reserved"),
  range("2001:2::/48", "benchmarking"),
  range("2001:db8::/32", "documentation"),
  range("fd00:ec2::254/128", "metadata"),
  range("fc00::/7", "unique-local"),
  range("fe80::/10", "link-local"),
  range("fec0::/10", "site-local"),
  range("ff00::/8", "multicast"),
];

const NAT64 = range("64:ff9b::/96", "reserved");
const SIX_TO_FOUR = range("2002::/16", "reserved");
const V4_COMPATIBLE = range("::/96", "reserved");
const GLOBAL_UNICAST = range("2000::/3", "reserved");

function classifyV4(bytes: Uint8Array): Classification | null {
  const ip: Ip = { family: 4, bytes };
  for (const entry of V4_RANGES) {
    if (cidrContains(entry.cidr, ip)) return { category: entry.category, range: entry.text };
  }
  return null;
}

/**
 * Null for an ordinary public address; otherwise the category and range that
 * makes it off limits. IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) and
 * 6to4 (2002::/16) addresses are judged by the IPv4 address they embed. IPv6
 * outside 2000::/3 (global unicast) counts as reserved.
 */
export function classify(address: Ip): Classification | null {
  const ip = unmap(address);
  if (ip.family === 4) return classifyV4(ip.bytes);
  for (const entry of V6_RANGES) {
    if (cidrContains(entry.cidr, ip)) return { category: entry.category, range: entry.text };
  }
  const embedded = (cidr: RangeEntry, offset: number): Classification | null => {
    const inner = classifyV4(ip.bytes.slice(offset, offset + 4));
    return inner ? { category: inner.category, range: `${cidr.text} embedding ${inner.range}` } : null;
  };
  if (cidrContains(NAT64.cidr, ip)) return embedded(NAT64, 12);
  if (cidrContains(SIX_TO_FOUR.cidr, ip)) return embedded(SIX_TO_FOUR, 2);
  if (cidrContains(V4_COMPATIBLE.cidr, ip)) {
    return embedded(V4_COMPATIBLE, 12) ?? { category: "reserved", range: V4_COMPATIBLE.text };
  }
  if (!cidrContains(GLOBAL_UNICAST.cidr, ip)) return { category: "reserved", range: "outside 2000::/3" };
  return null;
}

export function sameIp(a: Ip, b: Ip): boolean {
  const x = unmap(a);
  const y = unmap(b);
  if (x.family !== y.family) return false;
  for (let i = 0; i < x.bytes.length; i++) if (x.bytes[i] !== y.bytes[i]) return false;
  return true;
}
