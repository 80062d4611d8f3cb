import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { allowHosts, deniedIn } from "../../lib/allow.ts";
import type { AuditLine } from "../../lib/audit.ts";
import { deniedChoices, deniedHosts, formatDenied } from "../../lib/denied-hosts.ts";
import { BottleError } from "../../lib/errors.ts";
import { Policy } from "../../lib/gates/egress/daemon/policy.ts";
import { SELF_TEST_HOST } from "../../lib/selftest.ts";
import { auditLogPath, readPlan, writeState } from "../../lib/state.ts";
import { recordingExec } from "../helpers/exec.ts";
import { caught, cleanupTempDirs, makePlan, tempDir } from "../helpers/unit.ts";

afterAll(cleanupTempDirs);

const policy = new Policy(["api.anthropic.com", "allowed.test"], [], []);
const deny = (host: string, rule: string, extra: Partial<AuditLine> = {}): AuditLine => ({
  time: "2026-01-02T10:00:00.000Z",
  decision: "deny",
  method: "CONNECT",
  host,
  port: 443,
  rule,
  ...extra,
});

describe("the hosts a bottle was denied", () => {
  test("counted per host (a counted line's count too), newest time, every rule; the self-test's probe left out", () => {
    const { hosts } = deniedHosts(
      [
        deny("x.test", "not-allowed", { time: "2026-01-02T10:00:01.000Z" }),
        deny("x.test", "not-allowed", { time: "2026-01-02T10:00:11.000Z", count: 4 }),
        deny("x.test", "dns-not-allowed", { method: "DNS", port: 53, time: "2026-01-02T10:00:05.000Z" }),
        { decision: "allow", host: "allowed.test", rule: "allowlist" },
        deny(SELF_TEST_HOST, "not-allowed"),
      ],
      policy,
    );
    expect(hosts).toEqual([{ host: "x.test", allow: "x.test", rules: ["not-allowed", "dns-not-allowed"], count: 6, last: "2026-01-02T10:00:11.000Z" }]);
  });

  test("off the default ports the entry is host:port (DNS lines name no port to allow)", () => {
    const { hosts } = deniedHosts([deny("x.test", "not-allowed", { port: 8443 }), deny("allowed.test", "port-not-allowed", { port: 22 }), deny("y.test", "dns-not-allowed", { method: "DNS", port: 53 })], policy);
    expect(hosts.map((row) => row.allow)).toEqual(["x.test:8443", "allowed.test:22", "y.test"]);
  });

  test("a host denied for another reason is shown with its rule and why allowing would not help, after those that can be allowed", () => {
    const { hosts } = deniedHosts(
      [
        deny("10.1.2.3", "ip-literal", { time: "2026-01-02T11:00:00.000Z" }),
        deny("intranet.test", "private-address", { detail: "10.0.0.5 is private (10.0.0.0/8)" }),
        deny("api.anthropic.com", "dlp-aws-access-key", { method: "GET", port: 80 }),
        deny("<redacted>", "dlp-github-token", { method: "DNS", port: 53 }),
        deny("x.test", "dns-not-allowed", { method: "DNS", port: 53, detail: "query class is not IN" }),
        deny("x.test", "sni-mismatch"),
        deny("b.test", "not-allowed"),
      ],
      policy,
    );
    expect(hosts.map((row) => [row.host, row.allow, row.rules, row.note])).toEqual([
      ["b.test", "b.test", ["not-allowed"], undefined],
      ["10.1.2.3", undefined, ["ip-literal"], "it was asked for by IP address, which the gate refuses; allow the host name it stands for"],
      ["intranet.test", undefined, ["private-address"], "it resolves to a private address; a host meant to be reachable goes in the bottle's egress.allow_private"],
      ["api.anthropic.com", undefined, ["dlp-aws-access-key"], "the request carried what looks like a secret; the gate refuses that to any host"],
      ["<redacted>", undefined, ["dlp-github-token"], "the request carried what looks like a secret; the gate refuses that to any host"],
      ["x.test", undefined, ["dns-not-allowed"], "a DNS query the gate never answers (not class IN)"],
      ["x.test", undefined, ["sni-mismatch"], "the gate denied it by its rule sni-mismatch, not for being unlisted"],
    ]);
  });

  test("a host allowed since its denial is not offered again; a name that is no host name is not offered", () => {
    const { hosts } = deniedHosts([deny("allowed.test", "not-allowed"), deny("bad?name.test", "dns-not-allowed", { method: "DNS", port: 53 })], policy);
    expect(hosts).toEqual([
      { host: "allowed.test", rules: ["not-allowed"], count: 1, last: "2026-01-02T10:00:00.000Z", note: "allowed by now" },
      { host: "bad?name.test", rules: ["dns-not-allowed"], count: 1, last: "2026-01-02T10:00:00.000Z", note: "not a host name bottle can allow" },
    ]);
  });

  test("a host a preset lists says so; denials counted across many hosts are summed apart", () => {
    const denied = deniedHosts([deny("registry.npmjs.org", "not-allowed"), deny("(many hosts)", "not-allowed", { count: 40 })], policy);
    expect(denied.hosts).toEqual([{ host: "registry.npmjs.org", allow: "registry.npmjs.org", rules: ["not-allowed"], count: 1, last: "2026-01-02T10:00:00.000Z", presets: ["npm"] }]);
    expect(denied.unattributed).toBe(40);
  });

  test("as a table and as the picker's choices (those not offered cannot be picked, and say why)", () => {
    const denied = deniedHosts([deny("b.test", "not-allowed", { count: 3 }), deny("10.1.2.3", "ip-literal"), deny("(many hosts)", "rate-limit", { count: 7 })], policy);
    expect(formatDenied(denied)).toBe(
      [
        "HOST      DENIED  LAST                  RULE",
        "b.test    ×3      2026-01-02T10:00:00Z  not-allowed",
        "10.1.2.3  ×1      2026-01-02T10:00:00Z  ip-literal   not offered: it was asked for by IP address, which the gate refuses; allow the host name it stands for",
        "(and 7 denials the gate counted across many hosts at once)",
        "",
      ].join("\n"),
    );
    expect(deniedChoices(denied.hosts)).toEqual([
      { label: "b.test", hint: "×3, last 2026-01-02T10:00:00Z (not-allowed)" },
      {
        label: "10.1.2.3",
        hint: "×1, last 2026-01-02T10:00:00Z (ip-literal)",
        disabled: "it was asked for by IP address, which the gate refuses; allow the host name it stands for",
      },
    ]);
  });
});

describe("a running bottle's log and gate", () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.XDG_STATE_HOME;
    process.env.XDG_STATE_HOME = tempDir("bottle-allow-");
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.XDG_STATE_HOME;
    else process.env.XDG_STATE_HOME = saved;
  });

  const owner = { pid: process.pid, detach: false, startedAt: "2026-01-02T09:00:00.000Z" };

  test("deniedIn reads the rotated log and the current one, against the bottle's policy now", async () => {
    const plan = makePlan({ name: "bottle-dev", egress: { allow: ["api.anthropic.com", "since.test"] } });
    writeState(plan, owner);
    const log = auditLogPath("bottle-dev", "egress");
    mkdirSync(dirname(log), { recursive: true });
    writeFileSync(`${log}.1`, `${JSON.stringify(deny("old.test", "not-allowed"))}\n${JSON.stringify(deny("since.test", "not-allowed"))}\n`);
    writeFileSync(log, `${JSON.stringify(deny("old.test", "not-allowed", { time: "2026-01-02T12:00:00.000Z" }))}\n`);
    expect((await deniedIn(recordingExec(), "bottle-dev")).hosts).toEqual([
      { host: "old.test", allow: "old.test", rules: ["not-allowed"], count: 2, last: "2026-01-02T12:00:00.000Z" },
      { host: "since.test", rules: ["not-allowed"], count: 1, last: "2026-01-02T10:00:00.000Z", note: "allowed by now" },
    ]);
  });

  test("no such bottle: one error naming it", async () => {
    expect(await caught(deniedIn(recordingExec(), "bottle-none"))).toBeInstanceOf(BottleError);
    expect(await caught(allowHosts(recordingExec(), "bottle-none", ["x.test"]))).toBeInstanceOf(BottleError);
  });

  test("allowHosts: one config write and one reload for all; the plan follows; the manifest lines quote what YAML would misread", async () => {
    const plan = makePlan({ name: "bottle-dev", bottle: { name: "dev", sources: ["/home/u/.config/bottle/bottles/dev.yaml"] } });
    writeState(plan, owner);
    const exec = recordingExec((argv) => (argv.includes("cat") ? { stdout: JSON.stringify({ allow: ["api.anthropic.com", "b.test"] }) } : undefined));
    const result = await allowHosts(exec, "bottle-dev", ["a.test", "b.test", "*.c.test"]);
    expect(result.added).toEqual(["a.test", "*.c.test"]);
    expect(result.already).toEqual(["b.test"]);
    expect(result.manifestHint).toBe('to keep them, add to the bottle "dev" (/home/u/.config/bottle/bottles/dev.yaml):\n  egress:\n    allow:\n      - a.test\n      - b.test\n      - "*.c.test"');
    expect(exec.calls.map((call) => call.argv.slice(0, 3))).toEqual([
      ["docker", "exec", "bottle-dev-gate"],
      ["docker", "cp", "-"],
      ["docker", "kill", "--signal"],
    ]);
    expect(readPlan("bottle-dev")?.egress.allow).toEqual(["api.anthropic.com", "b.test", "a.test", "*.c.test"]);
  });

  test("a preset or a bad host is refused before the gate is touched", async () => {
    writeState(makePlan({ name: "bottle-dev" }), owner);
    const exec = recordingExec();
    const preset = await caught(allowHosts(exec, "bottle-dev", ["npm"]));
    expect((preset as BottleError).message).toBe("npm is a preset, not a host");
    expect((preset as BottleError).fix).toBe("add it to the bottle: egress.presets: [npm] (it takes effect at the next bottle up)");
    expect(((await caught(allowHosts(exec, "bottle-dev", ["https://x.test/"]))) as BottleError).message).toBe('https://x.test/: expected a host name, got "https://x.test/" — write the host only: x.test');
    expect(exec.calls).toEqual([]);
  });
});
