import { type AuditLine, denialsOf, escapeControls } from "./audit.ts";
import { MANY_HOSTS } from "./gates/egress/daemon/denials.ts";
import { DEFAULT_PORTS, normalizeHost, type Policy } from "./gates/egress/daemon/policy.ts";
import { allowEntryProblem } from "./manifest/hosts.ts";
import { presetsWithHost } from "./manifest/presets.ts";
import type { Choice } from "./picker.ts";
import { SELF_TEST_HOST } from "./selftest.ts";

/**
 * What a running bottle was denied, host by host, from its egress gate's
 * audit log (`bottle allow NAME` with no host): how often, when last, by
 * which rule, and whether allowing the host would let it through.
 */

export interface DeniedHost {
  host: string;
  /** What `bottle allow NAME HOST` would add (the host, or host:port); absent when allowing would not help. */
  allow?: string;
  /** The rules that denied it. */
  rules: string[];
  /** How many denials (the gate counts repeats on one line). */
  count: number;
  /** The last one's time (ISO 8601). */
  last: string;
  /** Why it is not offered: allowed by now, or denied for a reason allowing does not change. */
  note?: string;
  /** Presets that list this host (the bottle could take the whole list). */
  presets?: string[];
}

export interface Denied {
  hosts: DeniedHost[];
  /** Denials the gate counted together across many hosts (a flood): no one host to show. */
  unattributed: number;
}

/** Denials that allowing the host (or host:port) would let through. */
const UNLISTED = new Set(["not-allowed", "port-not-allowed", "dns-not-allowed"]);

/** Why allowing a host does not help with a denial by `rule`. */
export function whyAllowingWouldNotHelp(rule: string): string {
  if (rule.startsWith("dlp-")) return "the request carried what looks like a secret; the gate refuses that to any host";
  switch (rule) {
    case "ip-literal":
      return "it was asked for by IP address, which the gate refuses; allow the host name it stands for";
    case "private-address":
      return "it resolves to a private address; a host meant to be reachable goes in the bottle's egress.allow_private";
    case "host-address":
      return "it resolves to an address of the Docker host, which a bottle never reaches";
    case "rate-limit":
      return "the bottle went over its request rate (egress.limits.requests_per_minute)";
    case "bytes-out-limit":
      return "the bottle used up what it may send out (egress.limits.bytes_out)";
    case "resolve-failed":
      return "the gate could not resolve it";
    case "upstream-unreachable":
      return "the gate could not connect to it";
    case "dns-not-allowed":
      return "a DNS query the gate never answers (not class IN)";
    default:
      return `the gate denied it by its rule ${rule}, not for being unlisted`;
  }
}

/** The port to allow with the host: none for the default ports (and for DNS, whose lines name the DNS port). */
function entryPort(line: AuditLine, rule: string): number | undefined {
  return rule === "dns-not-allowed" || !line.port || DEFAULT_PORTS.includes(line.port) ? undefined : line.port;
}

function allowEntry(host: string, port: number | undefined): string {
  return port === undefined ? host : `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Whether `policy` lets the host through now (allowed since its denial). */
function allowedNow(policy: Policy, host: string, port: number | undefined, dns: boolean): boolean {
  const target = normalizeHost(host.includes(":") ? `[${host}]` : host);
  if (!target) return false;
  if (dns) return target.kind === "name" && policy.nameAllowed(target.host);
  return policy.checkHost(target, port ?? 443).ok;
}

/**
 * The hosts denied in `lines` (an egress audit log), offered ones first,
 * each newest first. The launch self-test's probe is left out; `policy` is
 * the bottle's current one (what `bottle allow` already added counts).
 */
export function deniedHosts(lines: readonly AuditLine[], policy: Policy): Denied {
  const rows = new Map<string, DeniedHost & { port: number | undefined; dns: boolean }>();
  let unattributed = 0;
  for (const line of lines) {
    if (line.decision !== "deny" || !line.host || line.host === SELF_TEST_HOST) continue;
    if (line.host === MANY_HOSTS) {
      unattributed += denialsOf(line);
      continue;
    }
    const rule = line.rule ?? "unknown";
    // A DNS query of another class is refused whatever the name (its line says so in `detail`).
    const fixable = UNLISTED.has(rule) && !(rule === "dns-not-allowed" && line.detail);
    const port = entryPort(line, rule);
    const entry = fixable ? allowEntry(line.host, port) : undefined;
    const offered = entry !== undefined && allowEntryProblem(entry) === undefined ? entry : undefined;
    const key = offered ? `allow ${offered}` : `deny ${line.host} ${rule}`;
    let row = rows.get(key);
    if (!row) {
      row = { host: line.host, rules: [], count: 0, last: "", port, dns: true };
      if (offered) row.allow = offered;
      else row.note = fixable ? "not a host name bottle can allow" : whyAllowingWouldNotHelp(rule);
      rows.set(key, row);
    }
    if (!row.rules.includes(rule)) row.rules.push(rule);
    if (rule !== "dns-not-allowed") row.dns = false;
    row.count += denialsOf(line);
    if ((line.time ?? "") > row.last) row.last = line.time ?? "";
  }
  const hosts = [...rows.values()].map(({ port, dns, ...row }): DeniedHost => {
    if (row.allow && allowedNow(policy, row.host, port, dns)) {
      row.note = "allowed by now";
      delete row.allow;
    }
    const presets = presetsWithHost(row.host);
    return presets.length ? { ...row, presets } : row;
  });
  hosts.sort((a, b) => Number(Boolean(b.allow)) - Number(Boolean(a.allow)) || b.last.localeCompare(a.last));
  return { hosts, unattributed };
}

function shownTime(time: string): string {
  return time.replace(/\.\d+Z$/, "Z");
}

function detail(row: DeniedHost): string {
  const presets = row.presets ? `, in preset ${row.presets.join(", ")}` : "";
  return `×${row.count}, last ${shownTime(row.last) || "?"} (${row.rules.join(", ")})${presets}`;
}

/** The picker's choices: what each would allow, or why it cannot. */
export function deniedChoices(hosts: readonly DeniedHost[]): Choice[] {
  return hosts.map((row) => ({
    label: escapeControls(row.allow ?? row.host),
    hint: detail(row),
    ...(row.allow ? {} : { disabled: row.note ?? "allowing it would not help" }),
  }));
}

/** The list as a table (no terminal to pick on). */
export function formatDenied(denied: Denied): string {
  const rows = [["HOST", "DENIED", "LAST", "RULE", ""]];
  for (const row of denied.hosts) {
    const note = row.allow ? (row.presets ? `in preset ${row.presets.join(", ")}` : "") : `not offered: ${row.note ?? ""}`;
    rows.push([escapeControls(row.allow ?? row.host), `×${row.count}`, shownTime(row.last) || "?", row.rules.join(", "), note]);
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const lines = rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd());
  if (denied.unattributed) lines.push(`(and ${denied.unattributed} denials the gate counted across many hosts at once)`);
  return `${lines.join("\n")}\n`;
}
