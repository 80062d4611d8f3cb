import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as dgram from "node:dgram";
import * as net from "node:net";
import type { AuditInput } from "../../../../lib/gates/egress/audit.ts";
import { Dlp } from "../../../../lib/gates/egress/dlp.ts";
import {
  QTYPE,
  RCODE,
  decodeQuery,
  decodeResponse,
  encodeQuery,
  encodeResponse,
} from "../../../../lib/gates/egress/dns.ts";
import { type DnsState, answerDns } from "../../../../lib/gates/egress/dnsServer.ts";
import { RateLimiter } from "../../../../lib/gates/egress/limits.ts";
import { Policy } from "../../../../lib/gates/egress/policy.ts";
import { type TestGate, rawRequest, startGate, tableResolver, udpAsk } from "./helpers.ts";

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
  const calls: string[] = [];
  const state: DnsState = {
    policy: new Policy(["api.anthropic.com", "*.example.com", "svc.test:8443", "1.2.3.4", "private.test"], [], ["172.17.0.1"]),
    dlp: new Dlp([]),
    audit: { write: (entry) => audit.push(entry) },
    resolve: tableResolver(
      {
        "api.anthropic.com": ["160.79.104.10", "2607:6bc0::10"],
        "www.example.com": ["93.184.216.34"],
        "svc.test": ["8.8.4.4"],
        "private.test": ["10.0.0.5"],
        "host.example.com": ["172.17.0.1"],
        "v6only.example.com": ["2606:4700::1111"],
      },
      calls,
    ),
    rate: new RateLimiter(0),
    dnsPort: 53,
    resolveTimeoutMs: 1000,
  };
  const ask = async (name: string, qtype: number, on: DnsState = state) => {
    const response = await answerDns(on, encodeQuery(name, qtype), 512);
    if (!response) throw new Error("dropped");
    return decodeResponse(response);
  };

  test("allowed name: A and AAAA from the resolver", async () => {
    const a = await ask("api.anthropic.com", QTYPE.A);
    expect(a.rcode).toBe(RCODE.NOERROR);
    expect(a.answers.map((r) => Array.from(r.data))).toEqual([[160, 79, 104, 10]]);
    const aaaa = await ask("API.anthropic.com.", QTYPE.AAAA);
    expect(aaaa.answers).toHaveLength(1);
    expect(aaaa.answers[0]?.data.length).toBe(16);
    expect((await ask("www.example.com", QTYPE.A)).answers).toHaveLength(1);
    expect((await ask("svc.test", QTYPE.A)).answers).toHaveLength(1);
    expect((await ask("v6only.example.com", QTYPE.A))).toMatchObject({ rcode: RCODE.NOERROR, answers: [] });
  });

  test("allowed name, other types: empty NOERROR without resolving", async () => {
    calls.length = 0;
    for (const qtype of [QTYPE.TXT, QTYPE.MX, QTYPE.HTTPS, QTYPE.ANY, QTYPE.CNAME]) {
      const response = await ask("api.anthropic.com", qtype);
      expect(response).toMatchObject({ rcode: RCODE.NOERROR, answers: [] });
    }
    expect(calls).toEqual([]);
  });

  test("past the bottle's request rate: REFUSED and a rate-limit line, nothing resolved; the bucket refills", async () => {
    let now = 0;
    const limited: DnsState = { ...state, rate: new RateLimiter(2, () => now) };
    calls.length = 0;
    audit.length = 0;
    expect((await ask("api.anthropic.com", QTYPE.A, limited)).rcode).toBe(RCODE.NOERROR);
    expect((await ask("off.test", QTYPE.A, limited)).rcode).toBe(RCODE.NXDOMAIN);
    expect((await ask("api.anthropic.com", QTYPE.AAAA, limited)).rcode).toBe(RCODE.REFUSED);
    expect((await ask("other.test", QTYPE.A, limited)).rcode).toBe(RCODE.REFUSED);
    expect(calls).toEqual(["api.anthropic.com"]);
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

  test("names off the allowlist: NXDOMAIN, never resolved, audited", async () => {
    calls.length = 0;
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
    expect(calls).toEqual([]);
    expect(audit.length).toBe(names.length * 4);
    expect(audit[0]).toMatchObject({ method: "DNS", host: "evil.test", port: 53, decision: "deny", rule: "dns-not-allowed", qtype: "A" });
    for (const entry of audit) expect(entry.host.length).toBeLessThanOrEqual(253);
  });

  test("private or Docker-host answers are refused and audited", async () => {
    audit.length = 0;
    expect((await ask("private.test", QTYPE.A)).rcode).toBe(RCODE.REFUSED);
    expect((await ask("host.example.com", QTYPE.A)).rcode).toBe(RCODE.REFUSED);
    expect(audit.map((entry) => entry.rule)).toEqual(["dns-private-address", "dns-host-address"]);
  });

  test("resolver failures", async () => {
    expect((await ask("missing.example.com", QTYPE.A)).rcode).toBe(RCODE.NXDOMAIN);
    const failing: DnsState = { ...state, resolve: async () => Promise.reject(new Error("boom")) };
    const response = await answerDns(failing, encodeQuery("www.example.com", QTYPE.A), 512);
    expect(response && decodeResponse(response).rcode).toBe(RCODE.SERVFAIL);
  });

  test("secrets in a query name are refused before anything is resolved, and redacted in the audit", async () => {
    calls.length = 0;
    audit.length = 0;
    const leaky: DnsState = { ...state, dlp: new Dlp(["topsecretvalue42"]) };
    const hex = Buffer.from("topsecretvalue42").toString("hex");
    const response = await answerDns(leaky, encodeQuery(`${hex}.example.com`, QTYPE.A), 512);
    expect(response && decodeResponse(response).rcode).toBe(RCODE.NXDOMAIN);
    expect(calls).toEqual([]);
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
    expect(Array.from(allowed.answers[0]?.data ?? [])).toEqual([93, 184, 216, 34]);
    const denied = decodeResponse(await udpAsk(ports.dnsUdp, encodeQuery("exfil.evil.test", QTYPE.A, 2)));
    expect(denied).toMatchObject({ id: 2, rcode: RCODE.NXDOMAIN });
    expect(gate.resolverCalls).toEqual(["allowed.test"]);
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
