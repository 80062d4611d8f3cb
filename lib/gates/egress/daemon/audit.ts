/**
 * The gate's audit log: one JSON line per decision (repeated denials are
 * counted on one line, see denials.ts), appended to a file the host reads
 * (`bottle logs`) and kept under the bottle's log cap (capped-log.ts).
 * Never holds secrets or header values: hosts are truncated, paths lose
 * their query string, and DLP denials redact the host and path when the
 * secret sits there.
 */
import { CappedLog } from "../../common/capped-log.ts";

export interface AuditRecord {
  time: string;
  bottle: string;
  /** HTTP method, "CONNECT", or "DNS"; "*" on a line counting denials of several methods. */
  method: string;
  host: string;
  port: number;
  /** Plain HTTP only: the path without query string. */
  path?: string;
  decision: "allow" | "deny";
  /** Deny: the rule that denied; allow: "allowlist". */
  rule: string;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  /** Allow: the allowlist entry that matched. */
  match?: string;
  /** Extra, secret-free context (e.g. "10.0.0.5 is private (10.0.0.0/8)", the SNI of a fronting attempt). */
  detail?: string;
  /** Allowed tunnels: why it ended ("closed", "idle-timeout", "max-duration", "bytes-out-limit", "upstream-error", …). */
  end?: string;
  /** Plain HTTP: the upstream's status code. */
  status?: number;
  /** DNS: the query type. */
  qtype?: string;
  /** Credential custody: "injected (GH_TOKEN)" when the gate added a credential (never its value). */
  auth?: string;
  /** How many denials this line stands for (repeats and floods are counted, see denials.ts); absent: 1. */
  count?: number;
}

export type AuditInput = Omit<AuditRecord, "time" | "bottle">;

export const MAX_AUDIT_HOST = 253;
export const MAX_AUDIT_PATH = 1024;

export function auditPath(rawPath: string): string {
  let end = rawPath.length;
  for (const ch of ["?", "#"]) {
    const at = rawPath.indexOf(ch);
    if (at !== -1 && at < end) end = at;
  }
  // Anything outside printable ASCII is percent-encoded: 8-bit C1 codes (CSI,
  // OSC) in a bottle's request would otherwise drive the terminal of whoever
  // reads the log.
  return rawPath.slice(0, Math.min(end, MAX_AUDIT_PATH)).replace(/[^\x21-\x7e]/g, (ch) => {
    const code = ch.charCodeAt(0);
    return code < 0x100 ? `%${code.toString(16).toUpperCase().padStart(2, "0")}` : encodeURIComponent(ch);
  });
}

export interface AuditSink {
  write(input: AuditInput): void;
}

export class AuditLog implements AuditSink {
  private readonly log: CappedLog;

  /** `maxBytes`: the log and its one rotated generation together (0 = no cap). */
  constructor(
    path: string,
    private bottle: string,
    maxBytes: number,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.log = new CappedLog(path, maxBytes);
  }

  /** Switches to another file / bottle name / cap (config reload); reopens even for the same path (log rotation). */
  reopen(path: string, bottle: string, maxBytes: number): void {
    this.bottle = bottle;
    this.log.reopen(path, maxBytes);
  }

  get file(): string {
    return this.log.file;
  }

  write(input: AuditInput): void {
    const record: AuditRecord = {
      time: this.now().toISOString(),
      bottle: this.bottle,
      ...input,
      host: input.host.slice(0, MAX_AUDIT_HOST),
    };
    if (record.path !== undefined) record.path = record.path.slice(0, MAX_AUDIT_PATH);
    if (record.detail !== undefined) record.detail = record.detail.slice(0, 512);
    try {
      this.log.append(`${JSON.stringify(record)}\n`);
    } catch (error) {
      process.stderr.write(`egress gate: cannot write audit log ${this.file}: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }

  close(): void {
    this.log.close();
  }
}
