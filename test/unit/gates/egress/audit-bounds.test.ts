import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { readAudit } from "../../../../lib/audit.ts";
import { QTYPE, RCODE, decodeResponse, encodeQuery } from "../../../../lib/gates/egress/dns.ts";
import { type TestGate, startGate, udpAsk } from "./helpers.ts";

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
