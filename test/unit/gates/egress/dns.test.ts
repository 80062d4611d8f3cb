import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as dgram from "node:dgram";
import * as net from "node:net";
import type { AuditInput } from "../../../../lib/gates/egress/daemon/audit.ts";
import { Dlp } from "../../../../lib/gates/egress/daemon/dlp.ts";
import {
  QTYPE,
  RCODE,
  decodeQuery,
  decodeResponse,
  encodeQuery,
  encodeResponse,
} from "../../../../lib/gates/egress/daemon/dns.ts";
import { DNS_TTL, type DnsState, answerDns } from "../../../../lib/gates/egress/daemon/dnsServer.ts";
import { RateLimiter } from "../../../../lib/gates/egress/daemon/limits.ts";
import { Policy } from "../../../../lib/gates/egress/daemon/policy.ts";
import { type TestGate, rawRequest, startGate, udpAsk } from "./helpers.ts";

describe("packet encode/decode", () => {
  test("a query round-trips", () => {
    const packet = encodeQuery("Api.Example.COM.", QTYPE.AAAA, 0xbeef);
    const decoded = decodeQuery(packet);
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    expect(decoded.query.id).toBe(0xbeef);
    expect(decoded.query.rd).toBe(true);
    expect(decoded.query.question).toMatchObject({ name: "api.example.com", qtype: QTYPE.AAAA, qclass: 1, wellFormed: true });
    expect(decoded.query.question.labels).toEqual(["Api", "Example", "COM"]);
  });

  test("a response echoes the question (case preserved) and carries answers", () => {
    const decoded = decodeQuery(encodeQuery("Api.Example.com", QTYPE.A, 7));
    if (!decoded.ok) throw new Error("decode");
    const response = encodeResponse(decoded.query, RCODE.NOERROR, [
      { type: QTYPE.A, ttl: 60, data: new Uint8Array([1, 2, 3, 4]) },
      { type: QTYPE.A, ttl: 60, data: new Uint8Array([5, 6, 7, 8]) },
    ]);
    const parsed = decodeResponse(response);
    expect(parsed.id).toBe(7);
    expect(parsed.rcode).toBe(RCODE.NOERROR);
    expect(parsed.flags & 0x8000).toBe(0x8000);
    expect(parsed.name).toBe("Api.Example.com");
    expect(parsed.answers.map((a) => Array.from(a.data))).toEqual([
      [1, 2, 3, 4],
      [5, 6, 7, 8],
    ]);
    expect(parsed.answers[0]?.name).toBe("Api.Example.com");
    expect(parsed.answers[0]?.ttl).toBe(60);
  });

  test("answers that do not fit in 512 bytes are left out", () => {
    const decoded = decodeQuery(encodeQuery("a.test", QTYPE.AAAA));
    if (!decoded.ok) throw new Error("decode");
    const answers = Array.from({ length: 40 }, () => ({ type: QTYPE.AAAA, ttl: 1, data: new Uint8Array(16) }));
    const response = encodeResponse(decoded.query, RCODE.NOERROR, answers, 512);
    expect(response.length).toBeLessThanOrEqual(512);
    expect(decodeResponse(response).answers.length).toBeGreaterThan(10);
  });

  test("malformed packets", () => {
    expect(decodeQuery(new Uint8Array(5))).toMatchObject({ ok: false, id: null });
    const response = Buffer.from(encodeQuery("a.test", QTYPE.A));
    response[2] = (response[2] ?? 0) | 0x80; // QR set: a response, dropped
    expect(decodeQuery(response)).toMatchObject({ ok: false, id: null });
    const twoQuestions = Buffer.from(encodeQuery("a.test", QTYPE.A));
    twoQuestions.writeUInt16BE(2, 4);
    expect(decodeQuery(twoQuestions)).toMatchObject({ ok: false, rcode: RCODE.FORMERR });
    const notQuery = Buffer.from(encodeQuery("a.test", QTYPE.A));
    notQuery[2] = (notQuery[2] ?? 0) | (5 << 3); // opcode UPDATE
    expect(decodeQuery(notQuery)).toMatchObject({ ok: false, rcode: RCODE.NOTIMP });
    const truncated = encodeQuery("a.test", QTYPE.A).subarray(0, 16);
    expect(decodeQuery(truncated)).toMatchObject({ ok: false, rcode: RCODE.FORMERR });
    // A compression pointer loop.
    const loop = Buffer.concat([encodeQuery("a.test", QTYPE.A).subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
    expect(decodeQuery(loop)).toMatchObject({ ok: false, rcode: RCODE.FORMERR });
    // Odd label bytes are decoded but never well-formed.
    const odd = Buffer.concat([encodeQuery("a", QTYPE.A).subarray(0, 12), Buffer.from([3, 0x61, 0x2e, 0x62, 0, 0, 1, 0, 1])]);
    const decoded = decodeQuery(odd);
    expect(decoded.ok && decoded.query.question.wellFormed).toBe(false);
  });
});

describe("answerDns", () => {
  const audit: AuditInput[] = [];
  // No resolver at all: the responder answers from the policy and its own address only.
  const state: DnsState = {
    policy: new Policy(["api.anthropic.com", "*.example.com", "svc.test:8443", "1.2.3.4", "private.test"], [], ["172.17.0.1"]),
    dlp: new Dlp([]),
    audit: { write: (entry) => audit.push(entry) },
    rate: new RateLimiter(0),
    dnsPort: 53,
    address: "198.18.4.2",
  };
  const GATE = [198, 18, 4, 2];
  const ask = async (name: string, qtype: number, on: DnsState = state) => {
    const response = await answerDns(on, encodeQuery(name, qtype), 512);
    if (!response) throw new Error("dropped");
    return decodeResponse(response);
  };

  test("allowed names, wildcard subdomains included: A is the gate's own address", async () => {
    audit.length = 0;
    for (const name of ["api.anthropic.com", "API.anthropic.com.", "www.example.com", "4f2a9c0d1e.deep.example.com", "svc.test", "private.test"]) {
      const a = await ask(name, QTYPE.A);
      expect({ name, rcode: a.rcode, answers: a.answers.map((r) => [r.type, r.ttl, Array.from(r.data)]) }).toEqual({
        name,
        rcode: RCODE.NOERROR,
        answers: [[QTYPE.A, DNS_TTL, GATE]],
      });
    }
    // Allowed answers are not decisions worth a line (the proxy audits the connection).
    expect(audit).toEqual([]);
  });

  test("allowed names, AAAA and every other type: empty NOERROR", async () => {
    for (const qtype of [QTYPE.AAAA, QTYPE.TXT, QTYPE.MX, QTYPE.HTTPS, QTYPE.ANY, QTYPE.CNAME, QTYPE.NS, QTYPE.SRV]) {
      for (const name of ["api.anthropic.com", "x.example.com"]) {
        expect(await ask(name, qtype)).toMatchObject({ qtype, name, rcode: RCODE.NOERROR, answers: [] });
      }
    }
  });

  test("a responder on an IPv6 address has no A answer to give", async () => {
    expect(await ask("api.anthropic.com", QTYPE.A, { ...state, address: "fd00::2" })).toMatchObject({ rcode: RCODE.NOERROR, answers: [] });
  });

  test("past the bottle's request rate: REFUSED and a rate-limit line; the bucket refills", async () => {
    let now = 0;
    const limited: DnsState = { ...state, rate: new RateLimiter(2, () => now) };
    audit.length = 0;
    expect((await ask("api.anthropic.com", QTYPE.A, limited)).rcode).toBe(RCODE.NOERROR);
    expect((await ask("off.test", QTYPE.A, limited)).rcode).toBe(RCODE.NXDOMAIN);
    expect((await ask("api.anthropic.com", QTYPE.AAAA, limited)).rcode).toBe(RCODE.REFUSED);
    expect((await ask("other.test", QTYPE.A, limited)).rcode).toBe(RCODE.REFUSED);
    expect(audit.map((entry) => [entry.host, entry.rule, entry.qtype])).toEqual([
      ["off.test", "dns-not-allowed", "A"],
      ["api.anthropic.com", "rate-limit", "AAAA"],
      ["other.test", "rate-limit", "A"],
    ]);
    now += 30_000;
    expect((await ask("api.anthropic.com", QTYPE.A, limited)).rcode).toBe(RCODE.NOERROR);
  });

  test("past the rate, a name carrying a secret is still logged redacted", async () => {
    const limited: DnsState = { ...state, dlp: new Dlp(["s3cr3t-value-xyz"]), rate: new RateLimiter(1, () => 0) };
    limited.rate.take();
    audit.length = 0;
    await ask("s3cr3t-value-xyz.evil.test", QTYPE.A, limited);
    expect(audit).toEqual([expect.objectContaining({ host: "<redacted>", rule: "dlp-secret" })]);
  });

  test("names off the allowlist: NXDOMAIN, audited", async () => {
    audit.length = 0;
    const names = [
      "evil.test",
      "example.com",
      "data-4f2a9c.exfil.evil.test",
      "api.anthropic.com.evil.test",
      "1.2.3.4",
      "4.3.2.1.in-addr.arpa",
      "localhost",
      "x".repeat(63) + "." + "y".repeat(63) + "." + "z".repeat(63) + "." + "w".repeat(60),
    ];
    for (const name of names) {
      for (const qtype of [QTYPE.A, QTYPE.AAAA, QTYPE.TXT, QTYPE.PTR]) {
        const response = await ask(name, qtype);
        expect(response.rcode).toBe(RCODE.NXDOMAIN);
        expect(response.answers).toEqual([]);
      }
    }
    expect(audit.length).toBe(names.length * 4);
    expect(audit[0]).toMatchObject({ method: "DNS", host: "evil.test", port: 53, decision: "deny", rule: "dns-not-allowed", qtype: "A" });
    for (const entry of audit) expect(entry.host.length).toBeLessThanOrEqual(253);
  });

  test("secrets in a query name under an allowed wildcard are refused, and redacted in the audit", async () => {
    audit.length = 0;
    const leaky: DnsState = { ...state, dlp: new Dlp(["topsecretvalue42"]) };
    const hex = Buffer.from("topsecretvalue42").toString("hex");
    const response = await answerDns(leaky, encodeQuery(`${hex}.example.com`, QTYPE.A), 512);
    expect(response && decodeResponse(response).rcode).toBe(RCODE.NXDOMAIN);
    expect(audit[0]).toMatchObject({ rule: "dlp-secret", host: "<redacted>" });
    expect(JSON.stringify(audit)).not.toContain(hex);
  });

  test("non-IN class and malformed queries", async () => {
    const chaos = Buffer.from(encodeQuery("version.bind", QTYPE.TXT));
    chaos.writeUInt16BE(3, chaos.length - 2);
    const response = await answerDns(state, chaos, 512);
    expect(response && decodeResponse(response).rcode).toBe(RCODE.REFUSED);
    const formerr = await answerDns(state, Buffer.from([0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]), 512);
    expect(formerr && decodeResponse(formerr).rcode).toBe(RCODE.FORMERR);
    expect(await answerDns(state, Buffer.from([1, 2, 3]), 512)).toBeNull();
  });
});

describe("DNS listeners (UDP and TCP)", () => {
  let gate: TestGate;
  beforeAll(async () => {
    gate = await startGate({ allow: ["allowed.test"] }, { "allowed.test": ["93.184.216.34"] });
  });
  afterAll(async () => {
    await gate.close();
  });

  const tcpAsk = (port: number, packets: Buffer[]): Promise<Buffer[]> =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port });
      let buf = Buffer.alloc(0);
      const out: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          out.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (out.length === packets.length) {
          socket.destroy();
          resolve(out);
        }
      });
      socket.on("error", reject);
      // Both queries in one write, the second split oddly: framing must cope.
      const framed = Buffer.concat(packets.map((p) => Buffer.concat([Buffer.from([p.length >> 8, p.length & 0xff]), p])));
      socket.write(framed.subarray(0, 3));
      setTimeout(() => socket.write(framed.subarray(3)), 20);
    });

  test("UDP", async () => {
    const ports = gate.gate.ports();
    const allowed = decodeResponse(await udpAsk(ports.dnsUdp, encodeQuery("allowed.test", QTYPE.A, 1)));
    expect(allowed).toMatchObject({ id: 1, rcode: RCODE.NOERROR });
    // The address of the responder that answered (the gate's listen address), not the name's.
    expect(Array.from(allowed.answers[0]?.data ?? [])).toEqual([127, 0, 0, 1]);
    const denied = decodeResponse(await udpAsk(ports.dnsUdp, encodeQuery("exfil.evil.test", QTYPE.A, 2)));
    expect(denied).toMatchObject({ id: 2, rcode: RCODE.NXDOMAIN });
    expect(gate.resolverCalls).toEqual([]);
    expect(gate.audit().some((entry) => entry.rule === "dns-not-allowed" && entry.host === "exfil.evil.test")).toBe(true);
  });

  test("TCP", async () => {
    const ports = gate.gate.ports();
    const [a, b] = await tcpAsk(ports.dnsTcp, [encodeQuery("allowed.test", QTYPE.A, 3), encodeQuery("other.test", QTYPE.A, 4)]);
    const byId = new Map([a, b].map((m) => (m ? decodeResponse(m) : null)).filter((m) => m !== null).map((m) => [m.id, m]));
    expect(byId.get(3)?.rcode).toBe(RCODE.NOERROR);
    expect(byId.get(4)?.rcode).toBe(RCODE.NXDOMAIN);
    expect(gate.resolverCalls.includes("other.test")).toBe(false);
  });

  test("garbage does not stop the responder", async () => {
    const ports = gate.gate.ports();
    const socket = dgram.createSocket("udp4");
    socket.send(Buffer.from("garbage garbage garbage"), ports.dnsUdp, "127.0.0.1");
    socket.send(Buffer.alloc(0), ports.dnsUdp, "127.0.0.1");
    await new Promise((r) => setTimeout(r, 50));
    socket.close();
    const ok = decodeResponse(await udpAsk(ports.dnsUdp, encodeQuery("allowed.test", QTYPE.A, 9)));
    expect(ok.rcode).toBe(RCODE.NOERROR);
  });
});

describe("the gate's DNS rate", () => {
  test("a bucket of its own at requests_per_minute: past it REFUSED and one counted rate-limit line; the proxy's bucket is untouched", async () => {
    const gate = await startGate(
      { allow: ["allowed.test"], limits: { requestsPerMinute: 5, bytesOut: 0, idleTimeoutMs: 10_000, maxTunnelMs: 60_000, maxLogBytes: 0 } },
      { "allowed.test": ["93.184.216.34"] },
    );
    try {
      const { dnsUdp, proxy } = gate.gate.ports();
      const rcodes: number[] = [];
      for (let i = 0; i < 40; i++) rcodes.push(decodeResponse(await udpAsk(dnsUdp, encodeQuery("flood.evil.test", QTYPE.A, i))).rcode);
      expect(rcodes.slice(0, 5)).toEqual(new Array(5).fill(RCODE.NXDOMAIN));
      expect(rcodes.slice(5)).toEqual(new Array(35).fill(RCODE.REFUSED));
      // The proxy still has its whole minute's worth.
      for (let i = 0; i < 5; i++) expect(await rawRequest(proxy, "GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n")).toContain("X-Bottle-Egress-Rule: not-allowed");
      await gate.gate.close();
      const limited = gate.audit().filter((line) => line.rule === "rate-limit");
      expect(limited.map((line) => [line.method, line.host])).toEqual([
        ["DNS", "flood.evil.test"],
        ["DNS", "flood.evil.test"],
      ]);
      expect(limited.reduce((sum, line) => sum + (line.count ?? 1), 0)).toBe(35);
    } finally {
      await gate.close();
    }
  });
});
