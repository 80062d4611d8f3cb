import { existsSync, readFileSync } from "node:fs";
import { ROTATED_SUFFIX } from "./gates/common/capped-log.ts";
import { SELF_TEST_HOST } from "./selftest.ts";

/** Reading the gates' JSON-lines audit logs. */

export interface AuditLine {
  time?: string;
  bottle?: string;
  method?: string;
  host?: string;
  port?: number;
  path?: string;
  decision?: string;
  rule?: string;
  bytesIn?: number;
  bytesOut?: number;
  durationMs?: number;
  /** Secret-free context ("10.0.0.5 is private (10.0.0.0/8)", "query class is not IN"). */
  detail?: string;
  /** Credential custody: "injected (GH_TOKEN)" (a name, never a value). */
  auth?: string;
  /** How many denials the line stands for (the gate counts repeats and floods); absent: 1. */
  count?: number;
}

/** Denials a line stands for. */
export function denialsOf(line: AuditLine): number {
  return typeof line.count === "number" && line.count > 1 ? line.count : 1;
}

/** A gate log's lines, oldest first: its rotated generation (`.1`, see lib/gates/common/capped-log.ts), then the file. */
export function readAudit(path: string): AuditLine[] {
  const lines: AuditLine[] = [];
  for (const file of [path + ROTATED_SUFFIX, path]) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, "utf8").split("\n")) {
      if (!line.trim()) continue;
      try {
        lines.push(JSON.parse(line) as AuditLine);
      } catch {
        // A line being written while we read.
      }
    }
  }
  return lines;
}

/** Control characters (C0, DEL, C1) shown as \xNN: log lines come from inside a bottle. */
export function escapeControls(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

export function formatAuditLine(line: AuditLine): string {
  const target = `${line.host ?? "?"}${line.port ? `:${line.port}` : ""}${line.path ?? ""}`;
  const bytes = line.bytesOut !== undefined ? `  out ${line.bytesOut}B in ${line.bytesIn ?? 0}B` : "";
  const auth = line.auth ? `  auth: ${line.auth}` : "";
  const count = denialsOf(line) > 1 ? `  ×${denialsOf(line)}` : "";
  return escapeControls(`${line.time ?? ""}  ${(line.decision ?? "?").padEnd(5)}  ${(line.method ?? "").padEnd(7)} ${target}  (${line.rule ?? ""})${count}${bytes}${auth}`);
}

/** "3 requests denied: evil.test ×2, x.test  see bottle logs NAME", or undefined. */
export function summarizeDenials(path: string, name?: string): string | undefined {
  // The launch self-test's probe is expected to be denied; it is not news.
  const denied = readAudit(path).filter((line) => line.decision === "deny" && line.host !== SELF_TEST_HOST);
  if (denied.length === 0) return undefined;
  const counts = new Map<string, number>();
  for (const line of denied) counts.set(line.host ?? "?", (counts.get(line.host ?? "?") ?? 0) + denialsOf(line));
  const total = [...counts.values()].reduce((sum, count) => sum + count, 0);
  const hosts = [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([host, count]) => (count > 1 ? `${host} ×${count}` : host));
  const more = counts.size > 5 ? `, … +${counts.size - 5} more` : "";
  return `${total} request${total === 1 ? "" : "s"} denied: ${hosts.join(", ")}${more}${name ? `  (see bottle logs ${name} --gate egress)` : ""}`;
}
