import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type AuditLine, formatAuditLine, readAudit, summarizeDenials } from "../../lib/audit.ts";
import { cleanupTempDirs, tempDir } from "../helpers/unit.ts";

afterAll(cleanupTempDirs);

function auditFile(lines: Array<AuditLine | string>): string {
  const path = join(tempDir(), "egress.jsonl");
  writeFileSync(path, lines.map((line) => (typeof line === "string" ? line : JSON.stringify(line))).join("\n"));
  return path;
}

const deny = (host: string): AuditLine => ({ decision: "deny", host, method: "CONNECT", port: 443, rule: "default-deny" });
const allow = (host: string): AuditLine => ({ decision: "allow", host, method: "CONNECT", port: 443, rule: "allow" });

describe("readAudit", () => {
  test("a missing file reads as no lines", () => {
    expect(readAudit(join(tempDir(), "nope.jsonl"))).toEqual([]);
  });

  test("parses JSON lines and skips blank and broken ones", () => {
    const path = auditFile([allow("a.test"), "", "   ", "{not json", deny("b.test"), '{"decision":"deny","host":"half-writ']);
    expect(readAudit(path)).toEqual([allow("a.test"), deny("b.test")]);
  });

  test("a rotated log reads its .1 generation first, then the file", () => {
    const path = join(tempDir(), "egress.jsonl");
    writeFileSync(`${path}.1`, `${JSON.stringify(deny("old.test"))}\n`);
    writeFileSync(path, `${JSON.stringify(deny("new.test"))}\n`);
    expect(readAudit(path).map((line) => line.host)).toEqual(["old.test", "new.test"]);
    expect(summarizeDenials(path)).toBe("2 requests denied: old.test, new.test");
  });

  test("a trailing newline is fine", () => {
    const path = join(tempDir(), "audit.jsonl");
    writeFileSync(path, `${JSON.stringify(deny("x.test"))}\n`);
    expect(readAudit(path)).toEqual([deny("x.test")]);
  });
});

describe("summarizeDenials", () => {
  test("undefined when nothing was denied (or no log)", () => {
    expect(summarizeDenials(auditFile([allow("a.test"), allow("b.test")]))).toBeUndefined();
    expect(summarizeDenials(join(tempDir(), "missing.jsonl"))).toBeUndefined();
  });

  test("counts denials per host, most frequent first, with ×N", () => {
    const path = auditFile([deny("x.test"), allow("ok.test"), deny("evil.test"), "garbage", deny("evil.test")]);
    expect(summarizeDenials(path)).toBe("3 requests denied: evil.test ×2, x.test");
  });

  test("singular for one denial; the bottle name adds where to look", () => {
    expect(summarizeDenials(auditFile([deny("x.test")]))).toBe("1 request denied: x.test");
    expect(summarizeDenials(auditFile([deny("x.test")]), "bottle-dev")).toBe(
      "1 request denied: x.test  (see bottle logs bottle-dev --gate egress)",
    );
  });

  test("ties keep first-seen order; a denial without a host counts as ?", () => {
    const path = auditFile([deny("b.test"), deny("a.test"), { decision: "deny" }, deny("a.test"), deny("b.test")]);
    expect(summarizeDenials(path)).toBe("5 requests denied: b.test ×2, a.test ×2, ?");
  });

  test("a line counting several denials (the gate's aggregation) adds its count", () => {
    const path = auditFile([deny("x.test"), { ...deny("x.test"), count: 41 }, { ...deny("(many hosts)"), count: 3000 }, { ...deny("y.test"), count: 1 }]);
    expect(summarizeDenials(path)).toBe("3043 requests denied: (many hosts) ×3000, x.test ×42, y.test");
  });

  test("at most five hosts, then how many more", () => {
    const hosts = ["h1", "h2", "h3", "h4", "h5", "h6", "h7"];
    const lines = hosts.flatMap((host, i) => Array.from({ length: hosts.length - i }, () => deny(`${host}.test`)));
    expect(summarizeDenials(auditFile(lines))).toBe(
      `${lines.length} requests denied: h1.test ×7, h2.test ×6, h3.test ×5, h4.test ×4, h5.test ×3, … +2 more`,
    );
  });
});

describe("formatAuditLine", () => {
  test("time, padded decision and method, host:port/path, rule and bytes", () => {
    const line: AuditLine = {
      time: "2024-05-01T10:00:00Z",
      decision: "allow",
      method: "GET",
      host: "api.anthropic.com",
      port: 443,
      path: "/v1/messages",
      rule: "default",
      bytesOut: 1200,
      bytesIn: 3400,
    };
    expect(formatAuditLine(line)).toBe("2024-05-01T10:00:00Z  allow  GET     api.anthropic.com:443/v1/messages  (default)  out 1200B in 3400B");
  });

  test("a denial without bytes or port", () => {
    expect(formatAuditLine({ time: "t", decision: "deny", method: "CONNECT", host: "evil.test", rule: "not allowed" })).toBe(
      "t  deny   CONNECT evil.test  (not allowed)",
    );
  });

  test("a line counting several denials shows how many", () => {
    expect(formatAuditLine({ time: "t", decision: "deny", method: "DNS", host: "x.evil.test", port: 53, rule: "dns-not-allowed", count: 57 })).toBe(
      "t  deny   DNS     x.evil.test:53  (dns-not-allowed)  ×57",
    );
    expect(formatAuditLine({ time: "t", decision: "deny", method: "DNS", host: "x.evil.test", port: 53, rule: "dns-not-allowed", count: 1 })).toBe(
      "t  deny   DNS     x.evil.test:53  (dns-not-allowed)",
    );
  });

  test("missing fields have placeholders; bytesIn defaults to 0 when only bytesOut is known", () => {
    // "" time, "?" padded to 5, "" padded to 7, then "?" for the host.
    expect(formatAuditLine({})).toBe(`  ?${" ".repeat(4)}  ${" ".repeat(7)} ?  ()`);
    expect(formatAuditLine({ host: "h", bytesOut: 5 })).toBe(`  ?${" ".repeat(4)}  ${" ".repeat(7)} h  ()  out 5B in 0B`);
  });
});
