import { describe, expect, test } from "bun:test";
import type { AuditInput } from "../../../../lib/gates/egress/daemon/audit.ts";
import { type DenialBounds, DenialAggregator, MANY_HOSTS } from "../../../../lib/gates/egress/daemon/denials.ts";
import { RateLimiter } from "../../../../lib/gates/egress/daemon/limits.ts";

/** An aggregator over an array, on a clock the test moves. */
function setup(bounds: Partial<DenialBounds> = {}) {
  let now = 1_000_000;
  const lines: AuditInput[] = [];
  const aggregator = new DenialAggregator(
    { write: (line) => lines.push(line) },
    { intervalMs: 10_000, linesPerSecond: 20, burst: 200, maxKeys: 4096, ...bounds },
    () => now,
  );
  return {
    aggregator,
    lines,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const deny = (host: string, extra: Partial<AuditInput> = {}): AuditInput => ({
  method: "GET",
  host,
  port: 80,
  decision: "deny",
  rule: "not-allowed",
  bytesIn: 0,
  bytesOut: 0,
  durationMs: 1,
  ...extra,
});
const dnsDeny = (name: string): AuditInput => ({ ...deny(name), method: "DNS", port: 53, rule: "dns-not-allowed", qtype: "A" });
const allow = (host: string): AuditInput => ({ ...deny(host), decision: "allow", rule: "allowlist", match: host });

/** Every denial a log's lines stand for. */
const denials = (lines: AuditInput[]) => lines.filter((line) => line.decision === "deny").reduce((sum, line) => sum + (line.count ?? 1), 0);

describe("DenialAggregator", () => {
  test("allowed traffic passes unchanged, one line per decision", () => {
    const { aggregator, lines } = setup({ burst: 1, linesPerSecond: 1 });
    for (let i = 0; i < 50; i++) aggregator.write(allow("a.test"));
    expect(lines).toHaveLength(50);
    expect(lines.every((line) => line.count === undefined)).toBe(true);
  });

  test("a denial is written at once and in full; its repeats are one line with a count when the interval ends", () => {
    const { aggregator, lines, advance } = setup();
    aggregator.write(deny("denied.test", { path: "/first", detail: "same" }));
    expect(lines).toEqual([deny("denied.test", { path: "/first", detail: "same" })]);
    for (let i = 0; i < 99; i++) aggregator.write(deny("denied.test", { path: `/p${i}`, detail: "same", durationMs: i }));
    expect(lines).toHaveLength(1);
    advance(10_000);
    aggregator.flush();
    // The fields all repeats shared stay; the path differed, so it is left out.
    expect(lines[1]).toEqual({ method: "GET", host: "denied.test", port: 80, decision: "deny", rule: "not-allowed", bytesIn: 0, bytesOut: 0, durationMs: 98, detail: "same", count: 99 });
    expect(denials(lines)).toBe(100);
  });

  test("a single repeat is written as it was, without a count", () => {
    const { aggregator, lines } = setup();
    aggregator.write(dnsDeny("x.test"));
    aggregator.write({ ...dnsDeny("x.test"), qtype: "AAAA" });
    aggregator.flush();
    expect(lines).toEqual([dnsDeny("x.test"), { ...dnsDeny("x.test"), qtype: "AAAA" }]);
  });

  test("different method, port or rule is a different denial: each written at once", () => {
    const { aggregator, lines } = setup();
    aggregator.write(deny("d.test"));
    aggregator.write(deny("d.test", { method: "CONNECT", port: 443 }));
    aggregator.write(deny("d.test", { rule: "rate-limit" }));
    aggregator.write(deny("e.test"));
    expect(lines).toHaveLength(4);
  });

  test("a steady stream of one denial is one line per interval, and every denial is counted", () => {
    const { aggregator, lines, advance } = setup();
    for (let second = 0; second < 60; second++) {
      for (let i = 0; i < 100; i++) aggregator.write(deny("flood.test"));
      advance(1_000);
      if (second % 10 === 9) aggregator.flush();
    }
    // The first denial, then one line per interval.
    expect(lines).toHaveLength(1 + 6);
    expect(lines.slice(1).map((line) => line.count)).toEqual([999, 1000, 1000, 1000, 1000, 1000]);
    expect(denials(lines)).toBe(6000);
  });

  test("a denial quiet for a whole interval is news again: written at once", () => {
    const { aggregator, lines, advance } = setup();
    aggregator.write(deny("d.test"));
    advance(10_000);
    aggregator.flush();
    advance(10_000);
    aggregator.flush();
    aggregator.write(deny("d.test", { path: "/later" }));
    expect(lines.map((line) => line.path)).toEqual([undefined, "/later"]);
  });

  test("the interval also ends with the next denial after it, without a timer", () => {
    const { aggregator, lines, advance } = setup();
    aggregator.write(deny("d.test"));
    aggregator.write(deny("d.test"));
    aggregator.write(deny("d.test"));
    advance(10_001);
    aggregator.write(deny("other.test"));
    expect(lines.map((line) => [line.host, line.count])).toEqual([
      ["d.test", undefined],
      ["d.test", 2],
      ["other.test", undefined],
    ]);
  });

  test("a flood of distinct names: lines stay within the per-second budget, the rest is one counted line per rule", () => {
    const { aggregator, lines, advance } = setup({ linesPerSecond: 20, burst: 50 });
    // 5000 distinct names a second for 10 seconds.
    for (let second = 0; second < 10; second++) {
      for (let i = 0; i < 5000; i++) aggregator.write(dnsDeny(`n${second}-${i}.evil.test`));
      for (let i = 0; i < 10; i++) aggregator.write(deny(`h${second}-${i}.evil.test`, { path: `/${i}` }));
      advance(1_000);
    }
    aggregator.flush();
    // The burst, then 20 a second, then one line per rule for the rest.
    expect(lines.length).toBeLessThanOrEqual(50 + 20 * 10 + 2);
    const counted = lines.filter((line) => (line.count ?? 1) > 1);
    expect(counted.map((line) => [line.method, line.host, line.rule])).toEqual([
      ["DNS", MANY_HOSTS, "dns-not-allowed"],
      ["GET", MANY_HOSTS, "not-allowed"],
    ]);
    expect(counted[0]).toMatchObject({ port: 53, qtype: "A", detail: "denials past the log's 20 lines a second, counted here" });
    expect(counted[1]?.path).toBeUndefined();
    expect(denials(lines)).toBe(50_100);
  });

  test("what is counted at once is bounded (maxKeys): past it, denials count as over the budget", () => {
    const { aggregator, lines } = setup({ maxKeys: 3, burst: 100 });
    for (let i = 0; i < 10; i++) aggregator.write(deny(`k${i}.test`));
    expect(lines).toHaveLength(3);
    aggregator.flush();
    expect(lines.at(-1)).toMatchObject({ host: MANY_HOSTS, count: 7 });
  });

  test("repeats whose line finds no budget left are counted with their rule's", () => {
    const { aggregator, lines } = setup({ burst: 2, linesPerSecond: 1 });
    aggregator.write(deny("a.test"));
    aggregator.write(deny("b.test"));
    aggregator.write(deny("a.test"));
    aggregator.write(deny("b.test"));
    aggregator.write(deny("b.test"));
    aggregator.flush();
    expect(lines.map((line) => [line.host, line.count])).toEqual([
      ["a.test", undefined],
      ["b.test", undefined],
      [MANY_HOSTS, 3],
    ]);
    expect(denials(lines)).toBe(5);
  });
});

describe("RateLimiter", () => {
  test("a burst smaller than a minute's worth, refilled at the rate", () => {
    let now = 0;
    const limiter = new RateLimiter(60, () => now, 5);
    expect(Array.from({ length: 7 }, () => limiter.take())).toEqual([true, true, true, true, true, false, false]);
    now += 2_000;
    expect([limiter.take(), limiter.take(), limiter.take()]).toEqual([true, true, false]);
    now += 60_000;
    expect(Array.from({ length: 6 }, () => limiter.take()).filter(Boolean)).toHaveLength(5);
  });

  test("without a burst, a minute's worth; 0 = unlimited", () => {
    const limiter = new RateLimiter(3, () => 0);
    expect(Array.from({ length: 4 }, () => limiter.take())).toEqual([true, true, true, false]);
    const open = new RateLimiter(0, () => 0);
    expect(Array.from({ length: 100 }, () => open.take()).every(Boolean)).toBe(true);
  });
});
