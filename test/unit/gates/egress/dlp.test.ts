import { describe, expect, test } from "bun:test";
import { DLP_PATTERNS, Dlp, decodedRuns, percentDecode } from "../../../../lib/gates/egress/daemon/dlp.ts";

// Credential-shaped test values are assembled at run time so that the source
// itself never looks like it carries a secret to scanners (gitleaks).
const j = (...parts: string[]): string => parts.join("");
const SECRET = j("s3cr3t-", "Value_", "9f8e7d");
const AWS = j("AKIA", "Q3EXAMPLEZ7K2PLM");
const GHP = j("ghp_", "a".repeat(20), "B".repeat(16));
const GHS = j("ghs_", "0123456789abcdefghijABCDEFGHIJ012345");
const FINE = j("github", "_pat_", "A1".repeat(41));
const SLACK = j("xox", "b-", "123456789012-123456789012-abcdefABCDEF");
const KEY = j("-----BEGIN ", "RSA ", "PRIVATE KEY-----");
const ANTHROPIC = j("sk-", "ant-", "api03-", "x".repeat(40));
const GLPAT = j("glpat", "-", "abcdefghij0123456789");

function b64(text: string): string {
  return Buffer.from(text).toString("base64");
}
function b64url(text: string): string {
  return Buffer.from(text).toString("base64url");
}

describe("secrets from the secrets file", () => {
  const dlp = new Dlp([SECRET, "short"]);

  test("short secrets are skipped (and counted)", () => {
    expect(dlp.secretCount).toBe(1);
    expect(dlp.skippedShort).toBe(1);
    expect(dlp.scan(["GET /short HTTP/1.1"])).toBeNull();
  });

  const forms: [string, string][] = [
    ["plain in the path", `GET http://x.test/upload/${SECRET} HTTP/1.1`],
    ["plain in a header", `X-Data: prefix${SECRET}suffix`],
    ["base64", `Authorization: Bearer ${b64(SECRET)}`],
    ["base64 inside basic auth (offset 5)", `Authorization: Basic ${b64(`user:${SECRET}`)}`],
    ["base64 at offset 1", `X-B: ${b64(`a${SECRET}`)}`],
    ["base64 at offset 2", `X-B: ${b64(`ab${SECRET}xyz`)}`],
    ["base64url", `GET http://x.test/?d=${b64url(`~~${SECRET}??`)} HTTP/1.1`],
    ["hex", `GET http://x.test/${Buffer.from(SECRET).toString("hex")} HTTP/1.1`],
    ["HEX upper", `X-H: ${Buffer.from(SECRET).toString("hex").toUpperCase()}`],
    ["URL-encoded", `GET http://x.test/?q=${encodeURIComponent(SECRET)} HTTP/1.1`],
    ["fully percent-encoded", `GET http://x.test/?q=${[...SECRET].map((c) => `%${c.charCodeAt(0).toString(16)}`).join("")} HTTP/1.1`],
    ["double URL-encoded", `GET http://x.test/?q=${encodeURIComponent(encodeURIComponent(`"${SECRET}"`))} HTTP/1.1`],
    ["in the host name", `CONNECT ${SECRET.toLowerCase().replace(/_/g, "-")}.evil.test:443`],
  ];
  for (const [name, text] of forms) {
    test(name, () => {
      const hit = name === "in the host name" ? new Dlp([SECRET.toLowerCase().replace(/_/g, "-")]).scan([text]) : dlp.scan([text]);
      expect(hit?.rule).toBe("dlp-secret");
    });
  }

  test("UTF-8 secrets", () => {
    const unicode = new Dlp(["pässwörd-geheim"]);
    expect(unicode.scan([`X: ${Buffer.from("pässwörd-geheim").toString("latin1")}`])?.rule).toBe("dlp-secret");
    expect(unicode.scan([`GET http://x.test/?p=${encodeURIComponent("pässwörd-geheim")} HTTP/1.1`])?.rule).toBe("dlp-secret");
    expect(unicode.scan([`X: ${b64("pässwörd-geheim")}`])?.rule).toBe("dlp-secret");
  });

  test("the finding never carries the secret", () => {
    const hit = dlp.scan([`X: ${SECRET}`]);
    expect(JSON.stringify(hit)).not.toContain(SECRET);
  });
});

describe("credential patterns", () => {
  const dlp = new Dlp([]);
  const cases: [string, string][] = [
    ["dlp-aws-access-token", AWS],
    ["dlp-github-pat", GHP],
    ["dlp-github-app-token", GHS],
    ["dlp-github-fine-grained-pat", FINE],
    ["dlp-slack-token", SLACK],
    ["dlp-private-key", KEY],
    ["dlp-anthropic-api-key", ANTHROPIC],
    ["dlp-gitlab-pat", GLPAT],
  ];
  for (const [rule, value] of cases) {
    test(`${rule}: plain, URL-encoded, base64, hex`, () => {
      expect(dlp.scan([`X-Token: ${value}`])?.rule).toBe(rule);
      expect(dlp.scan([`GET http://x.test/?t=${encodeURIComponent(value)} HTTP/1.1`])?.rule).toBe(rule);
      expect(dlp.scan([`GET http://x.test/d/${b64(`{"k":"${value}"}`)} HTTP/1.1`])?.rule).toBe(rule);
      expect(dlp.scan([`GET http://x.test/${b64url(value)} HTTP/1.1`])?.rule).toBe(rule);
      expect(dlp.scan([`X-Hex: ${Buffer.from(value).toString("hex")}`])?.rule).toBe(rule);
    });
  }

  test("every pattern has a gitleaks-style id", () => {
    for (const pattern of DLP_PATTERNS) expect(pattern.id).toMatch(/^[a-z0-9-]+$/);
  });

  test("ordinary requests are clean", () => {
    const ordinary = [
      "GET http://deb.debian.org/debian/dists/trixie/InRelease HTTP/1.1",
      "CONNECT api.anthropic.com:443 HTTP/1.1",
      "User-Agent: claude-cli/2.0.1 (external, cli)",
      "Accept: application/json, text/plain, */*",
      "Host: registry.npmjs.org",
      "GET http://x.test/packages/@types/node/-/node-20.11.30.tgz HTTP/1.1",
      "If-None-Match: W/\"5e15153d-120f\"",
      "GET http://x.test/repos/owner/name/commits/2f5c1e8a9b7d6c4e3f2a1b0c9d8e7f6a5b4c3d2e HTTP/1.1",
      "Cookie: session=abc123; theme=dark",
    ];
    for (const text of ordinary) expect(dlp.scan([text])).toBeNull();
  });
});

describe("decoding helpers", () => {
  test("percentDecode is lenient", () => {
    expect(percentDecode("a%20b+c%zz%4")).toBe("a b c%zz%4");
  });
  test("decodedRuns finds base64 at any alignment", () => {
    const runs = decodedRuns(`/x/${b64("hello world, hello world")}`);
    expect(runs.some((run) => run.includes("hello world"))).toBe(true);
  });
});
