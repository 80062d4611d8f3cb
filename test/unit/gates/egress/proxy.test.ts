import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import * as net from "node:net";
import type { UpstreamConnector } from "../../../../lib/gates/egress/daemon/state.ts";
import { defaultConnector } from "../../../../lib/gates/egress/daemon/upstream.ts";
import {
  type TestGate,
  type Upstream,
  baseConfig,
  bodyOf,
  buildHello,
  captureClientHello,
  echExtension,
  openTunnel,
  rawRequest,
  sleep,
  startGate,
  sniExtension,
  startUpstream,
  statusOf,
  waitFor,
} from "./helpers.ts";

const j = (...parts: string[]): string => parts.join("");
const AWS = j("AKIA", "Q3EXAMPLEZ7K2PLM");
const SECRET = j("bottle-", "secret-", "8c1f0e");
const TLS_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31]);

let hello: Buffer;
let evilHello: Buffer;
let noSniHello: Buffer;
beforeAll(async () => {
  hello = await captureClientHello("tls.test");
  evilHello = await captureClientHello("evil.test");
  noSniHello = await captureClientHello(null);
});

const gates: TestGate[] = [];
const upstreams: Upstream[] = [];
afterEach(async () => {
  await Promise.all(gates.splice(0).map((g) => g.close()));
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
});

async function upstream(options: Parameters<typeof startUpstream>[0] = {}): Promise<Upstream> {
  const server = await startUpstream(options);
  upstreams.push(server);
  return server;
}

async function gate(...args: Parameters<typeof startGate>): Promise<TestGate> {
  const started = await startGate(...args);
  gates.push(started);
  return started;
}

function get(url: string, headers = "", method = "GET"): string {
  const host = /^http:\/\/([^/?#]*)/.exec(url)?.[1] ?? "";
  return `${method} ${url} HTTP/1.1\r\nHost: ${host}\r\n${headers}\r\n`;
}

/** Sends `writes` one at a time, 50 ms apart, and collects the answer until the proxy closes. */
async function writeSlowly(port: number, writes: string[]): Promise<string> {
  const socket = net.connect({ host: "127.0.0.1", port });
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  socket.on("error", () => undefined);
  const closed = new Promise((resolve) => socket.on("close", resolve));
  await new Promise((resolve) => socket.once("connect", resolve));
  for (const data of writes) {
    if (socket.destroyed) break;
    socket.write(data);
    await sleep(50);
  }
  await Promise.race([closed, sleep(3_000)]);
  socket.destroy();
  return Buffer.concat(chunks).toString("latin1");
}

/** A connector that records where the gate connects and maps port 443/80 to a local test server. */
function recordingConnector(calls: { address: string; port: number }[], map: Record<number, number>): UpstreamConnector {
  return (address, port) => {
    calls.push({ address, port });
    return defaultConnector(address, map[port] ?? port);
  };
}

describe("plain HTTP forward proxy", () => {
  test("round trip to a local origin, private resolution allowed via allowPrivate 127.0.0.1/32", async () => {
    const origin = await upstream();
    const g = await gate(
      { allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] },
      { "origin.test": ["127.0.0.1"] },
    );
    const response = await rawRequest(
      g.port,
      get(
        `http://Origin.Test:${origin.port}/path/x?q=1#frag`,
        "Proxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive, X-Drop\r\nKeep-Alive: 300\r\nX-Drop: 1\r\nX-Keep: yes\r\nTE: trailers\r\nUpgrade: h2c\r\n",
      ),
    );
    expect(statusOf(response)).toBe(200);
    expect(bodyOf(response)).toBe("hello");
    expect(response).toMatch(/\r\nConnection: close\r\n/i);
    expect(response).not.toMatch(/keep-alive/i);

    const sent = origin.received[0]?.toString("latin1") ?? "";
    expect(sent.startsWith("GET /path/x?q=1 HTTP/1.1\r\n")).toBe(true);
    expect(sent).toContain(`\r\nHost: Origin.Test:${origin.port}\r\n`);
    expect(sent).toContain("\r\nX-Keep: yes\r\n");
    expect(sent).toContain("\r\nConnection: close\r\n");
    for (const gone of ["Proxy-Authorization", "Proxy-Connection", "Keep-Alive", "X-Drop", "TE:", "Upgrade", "keep-alive"]) {
      expect(sent).not.toContain(gone);
    }
    expect(sent).not.toContain("frag");

    await waitFor(() => g.audit().length === 1);
    const [line] = g.audit();
    expect(line).toMatchObject({
      bottle: "testbottle",
      method: "GET",
      host: "origin.test",
      port: origin.port,
      path: "/path/x",
      decision: "allow",
      rule: "allowlist",
      match: `origin.test:${origin.port}`,
      status: 200,
    });
    expect(line?.bytesOut).toBe(origin.received[0]?.length);
    expect(line?.bytesIn).toBe(Buffer.byteLength(response, "latin1") - ("Connection: close\r\n".length - "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n".length));
    expect(typeof line?.time).toBe("string");
    expect(typeof line?.durationMs).toBe("number");
    // The audit log never carries header values.
    expect(JSON.stringify(g.audit())).not.toContain("Zm9vOmJhcg");
    expect(JSON.stringify(g.audit())).not.toContain("q=1");
  });

  test("without allowPrivate the loopback resolution is refused with a hint", async () => {
    const origin = await upstream();
    const g = await gate({ allow: [`origin.test:${origin.port}`] }, { "origin.test": ["127.0.0.1"] });
    const response = await rawRequest(g.port, get(`http://origin.test:${origin.port}/`));
    expect(statusOf(response)).toBe(403);
    expect(response).toContain("X-Bottle-Egress-Rule: private-address");
    expect(bodyOf(response)).toBe(
      "bottle egress gate: origin.test resolves to a loopback address, which a bottle may not reach (rule: private-address).\n" +
        "If this host is meant to be reachable, add to the bottle manifest:\n  egress:\n    allow_private:\n      - origin.test\n",
    );
    expect(origin.connections).toBe(0);
    expect(g.audit()[0]).toMatchObject({ decision: "deny", rule: "private-address", host: "origin.test" });
    expect(g.audit()[0]?.detail).toContain("127.0.0.0/8");
  });

  test("ANY private address among the answers refuses", async () => {
    const origin = await upstream();
    const g = await gate(
      { allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] },
      { "origin.test": ["127.0.0.1", "10.0.0.8"] },
    );
    const response = await rawRequest(g.port, get(`http://origin.test:${origin.port}/`));
    expect(statusOf(response)).toBe(403);
    expect(origin.connections).toBe(0);
  });

  test("Docker host addresses are refused even when allowPrivate covers them", async () => {
    const origin = await upstream();
    const g = await gate(
      { allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.0/8"], hostAddresses: ["127.0.0.1"] },
      { "origin.test": ["127.0.0.1"] },
    );
    const response = await rawRequest(g.port, get(`http://origin.test:${origin.port}/`));
    expect(statusOf(response)).toBe(403);
    expect(response).toContain("(rule: host-address)");
    expect(origin.connections).toBe(0);
  });

  test("a host off the allowlist: 403 naming the rule and how to allow it; never resolved", async () => {
    const g = await gate({ allow: ["api.anthropic.com"] }, {});
    const response = await rawRequest(g.port, get("http://evil.test/steal?x=1"));
    expect(statusOf(response)).toBe(403);
    expect(response).toContain("Content-Type: text/plain; charset=utf-8");
    expect(bodyOf(response)).toBe(
      "bottle egress gate: evil.test is not on this bottle's allowlist (rule: not-allowed).\n" +
        "To allow it, add to the bottle manifest:\n  egress:\n    allow:\n      - evil.test\n" +
        "or for this running bottle only: bottle allow testbottle evil.test\n",
    );
    expect(g.resolverCalls).toEqual([]);
    expect(g.audit()).toHaveLength(1);
    expect(g.audit()[0]).toMatchObject({ method: "GET", host: "evil.test", port: 80, path: "/steal", decision: "deny", rule: "not-allowed", bytesIn: 0, bytesOut: 0 });
  });

  test("a port that is not listed", async () => {
    const g = await gate({ allow: ["origin.test"] }, { "origin.test": ["93.184.216.34"] });
    const response = await rawRequest(g.port, get("http://origin.test:8080/"));
    expect(statusOf(response)).toBe(403);
    expect(bodyOf(response)).toContain("(rule: port-not-allowed)");
    expect(bodyOf(response)).toContain("      - origin.test:8080\n");
    expect(g.resolverCalls).toEqual([]);
  });

  test("IP literals are refused unless listed, in every spelling", async () => {
    const origin = await upstream();
    const g = await gate({ allow: [], allowPrivate: ["127.0.0.1/32"] }, {});
    for (const host of ["127.0.0.1", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "127.1"]) {
      const response = await rawRequest(g.port, get(`http://${host}:${origin.port}/`));
      expect(statusOf(response)).toBe(403);
      expect(bodyOf(response)).toContain("(rule: ip-literal)");
    }
    expect(origin.connections).toBe(0);
  });

  test("an IP literal that is listed (and permitted private) goes through", async () => {
    const origin = await upstream();
    const g = await gate({ allow: [`127.0.0.1:${origin.port}`], allowPrivate: ["127.0.0.1/32"] }, {});
    const response = await rawRequest(g.port, get(`http://127.0.0.1:${origin.port}/`));
    expect(statusOf(response)).toBe(200);
    expect(g.resolverCalls).toEqual([]);
  });

  test("Host header spoofing is refused", async () => {
    const origin = await upstream();
    const g = await gate({ allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] }, { "origin.test": ["127.0.0.1"] });
    const url = `http://origin.test:${origin.port}/`;
    for (const hostHeader of ["evil.test", `evil.test:${origin.port}`, "origin.test", `origin.test:${origin.port + 1}`]) {
      const response = await rawRequest(g.port, `GET ${url} HTTP/1.1\r\nHost: ${hostHeader}\r\n\r\n`);
      expect(statusOf(response)).toBe(403);
      expect(bodyOf(response)).toContain("(rule: host-header-mismatch)");
    }
    const twoHosts = await rawRequest(g.port, `GET ${url} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\nHost: evil.test\r\n\r\n`);
    expect(statusOf(twoHosts)).toBe(400);
    // Case and trailing dot do not matter; a missing Host header is filled in.
    expect(statusOf(await rawRequest(g.port, `GET ${url} HTTP/1.1\r\nHost: ORIGIN.test.:${origin.port}\r\n\r\n`))).toBe(200);
    expect(statusOf(await rawRequest(g.port, `GET ${url} HTTP/1.0\r\n\r\n`))).toBe(200);
    expect(origin.received.at(-1)?.toString("latin1")).toContain(`Host: origin.test:${origin.port}\r\n`);
    expect(origin.connections).toBe(2);
  });

  test("DLP: secrets and credential patterns in URL or headers; the 403 and audit never show them", async () => {
    const origin = await upstream();
    const g = await gate(
      { allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] },
      { "origin.test": ["127.0.0.1"] },
    );
    writeFileSync(`${g.dir}/secrets.json`, JSON.stringify([SECRET]));
    expect(g.gate.reload({ ...baseConfig(g.dir, { allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] }), secretsFile: `${g.dir}/secrets.json` })).toBe(true);
    const url = `http://origin.test:${origin.port}`;
    const cases: [string, string][] = [
      [get(`${url}/?k=${encodeURIComponent(SECRET)}`), "dlp-secret"],
      [get(`${url}/x/${Buffer.from(SECRET).toString("base64url")}`), "dlp-secret"],
      [get(`${url}/`, `Authorization: Basic ${Buffer.from(`me:${SECRET}`).toString("base64")}\r\n`), "dlp-secret"],
      [get(`${url}/`, `X-Hex: ${Buffer.from(SECRET).toString("hex")}\r\n`), "dlp-secret"],
      [get(`${url}/upload?key=${AWS}`), "dlp-aws-access-token"],
      [get(`${url}/`, `X-Token: ${j("ghp_", "Z".repeat(36))}\r\n`), "dlp-github-pat"],
    ];
    for (const [request, rule] of cases) {
      const response = await rawRequest(g.port, request);
      expect(statusOf(response)).toBe(403);
      expect(response).toContain(`(rule: ${rule})`);
      expect(response).not.toContain(SECRET);
      expect(response).not.toContain(AWS);
    }
    expect(origin.connections).toBe(0);
    const audit = JSON.stringify(g.audit());
    expect(audit).not.toContain(SECRET);
    expect(audit).not.toContain(AWS);
    expect(audit).not.toContain(Buffer.from(SECRET).toString("hex"));
    expect(g.audit().every((line) => line.path === undefined || line.path === "<redacted>")).toBe(true);
  });

  test("DLP: a secret in a request body (Content-Length or chunked, split across writes and chunks) is refused before it leaves", async () => {
    const origin = await upstream();
    const g = await gate({ allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] }, { "origin.test": ["127.0.0.1"] });
    writeFileSync(`${g.dir}/secrets.json`, JSON.stringify([SECRET]));
    expect(g.gate.reload({ ...baseConfig(g.dir, { allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] }), secretsFile: `${g.dir}/secrets.json` })).toBe(true);
    const url = `http://origin.test:${origin.port}/upload`;
    const base64 = Buffer.from(`x${SECRET}`).toString("base64");
    const half = (text: string) => [text.slice(0, 9), text.slice(9)];
    const attempts: string[][] = [
      // The secret cut between two writes.
      [get(url, `Content-Length: ${SECRET.length + 5}\r\n`, "POST") + `data=${SECRET.slice(0, 6)}`, SECRET.slice(6)],
      // Base64, cut between two chunks of a chunked body and between writes.
      [get(url, "Transfer-Encoding: chunked\r\n", "POST"), `5\r\ndata=\r\n9\r\n${half(base64)[0]}\r\n`, `${(base64.length - 9).toString(16)}\r\n${half(base64)[1]}\r\n0\r\n\r\n`],
    ];
    for (const writes of attempts) {
      const response = await writeSlowly(g.port, writes);
      expect(statusOf(response)).toBe(403);
      expect(response).toContain("(rule: dlp-secret)");
      expect(response).toContain("in its body");
    }
    const received = origin.received.map((bytes) => bytes.toString("latin1")).join("");
    expect(received).not.toContain(SECRET.slice(0, 6));
    expect(received).not.toContain(half(base64)[1]);
    expect(received).not.toContain(base64.slice(2, 9));
    // The same shapes with a harmless value go through.
    const clean = await writeSlowly(g.port, [get(url, "Content-Length: 11\r\n", "POST") + "data=", "harmle", ""]);
    expect(statusOf(clean)).toBe(200);
    // Both denials are audited: the first on its own line, the repeat counted (written when the gate stops).
    await g.gate.close();
    const denials = g.audit().filter((line) => line.rule === "dlp-secret");
    expect(denials.reduce((sum, line) => sum + (line.count ?? 1), 0)).toBe(2);
    expect(denials.every((line) => line.decision === "deny" && line.path === "<redacted>" && line.host === "origin.test")).toBe(true);
  });

  test("a request body (Content-Length) is forwarded exactly; pipelined extra requests are not", async () => {
    const origin = await upstream({ respond: (_head, body) => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body.toString("latin1")}` });
    const g = await gate({ allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] }, { "origin.test": ["127.0.0.1"] });
    const url = `http://origin.test:${origin.port}/post`;
    const smuggled = `GET http://origin.test:${origin.port}/second HTTP/1.1\r\nHost: evil.test\r\n\r\n`;
    const response = await rawRequest(g.port, `${get(url, "Content-Length: 11\r\n", "POST")}hello world${smuggled}`);
    expect(bodyOf(response)).toBe("hello world");
    const sent = origin.received[0]?.toString("latin1") ?? "";
    expect(sent.endsWith("\r\n\r\nhello world")).toBe(true);
    expect(sent).not.toContain("second");
    expect(origin.connections).toBe(1);
  });

  test("a chunked request body is forwarded to its end", async () => {
    const origin = await upstream();
    const g = await gate({ allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] }, { "origin.test": ["127.0.0.1"] });
    const body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
    const response = await rawRequest(g.port, `${get(`http://origin.test:${origin.port}/`, "Transfer-Encoding: chunked\r\n", "POST")}${body}JUNK`);
    expect(statusOf(response)).toBe(200);
    const sent = origin.received[0]?.toString("latin1") ?? "";
    expect(sent.endsWith(body)).toBe(true);
    expect(sent).toContain("Transfer-Encoding: chunked");
  });

  test("smuggling-prone framing and malformed requests get 400; the gate keeps serving", async () => {
    const origin = await upstream();
    const g = await gate({ allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] }, { "origin.test": ["127.0.0.1"] });
    const url = `http://origin.test:${origin.port}/`;
    const bad = [
      get(url, "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "POST"),
      get(url, "Content-Length: 3\r\nContent-Length: 4\r\n", "POST"),
      get(url, "Transfer-Encoding: gzip, chunked\r\n", "POST"),
      get(url, "X-Folded: a\r\n b\r\n"),
      get(url, "Bad Header: x\r\n"),
      `GET ${url} HTTP/1.1\nHost: origin.test\n\n\r\n\r\n`,
      "GARBAGE\r\n\r\n",
      `GET ${url} HTTP/2.0\r\n\r\n`,
      `GET  ${url} HTTP/1.1\r\n\r\n`,
      `GET http://user:pw@origin.test:${origin.port}/ HTTP/1.1\r\n\r\n`,
      "\u0016\u0003\u0001\u0000\u0005hello\r\n\r\n",
    ];
    for (const request of bad) {
      const response = await rawRequest(g.port, request);
      expect(statusOf(response)).toBe(400);
      expect(response).toContain("(rule: bad-request)");
    }
    const https = await rawRequest(g.port, `GET https://origin.test/ HTTP/1.1\r\nHost: origin.test\r\n\r\n`);
    expect(https).toContain("(rule: unsupported-scheme)");
    const originForm = await rawRequest(g.port, "GET /index.html HTTP/1.1\r\nHost: origin.test\r\n\r\n");
    expect(originForm).toContain("(rule: not-absolute-form)");
    const huge = await rawRequest(g.port, `GET ${url} HTTP/1.1\r\nX-Big: ${"a".repeat(70 * 1024)}\r\n\r\n`);
    expect(statusOf(huge)).toBe(400);
    expect(origin.connections).toBe(0);
    expect(statusOf(await rawRequest(g.port, get(url)))).toBe(200);
  });

  test("a stuck client does not block others", async () => {
    const origin = await upstream();
    const g = await gate({ allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] }, { "origin.test": ["127.0.0.1"] });
    const stuck = net.connect({ host: "127.0.0.1", port: g.port });
    stuck.on("error", () => undefined);
    stuck.write("GET http://origin.test/ HTTP/1.1\r\nHost: orig");
    const response = await rawRequest(g.port, get(`http://origin.test:${origin.port}/`));
    expect(statusOf(response)).toBe(200);
    stuck.destroy();
  });

  test("connects to the vetted address; a rebinding resolver gets one question per request", async () => {
    const origin = await upstream();
    let answers = 0;
    const connects: { address: string; port: number }[] = [];
    const started = await gate(
      { allow: [`rebind.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] },
      {},
      {
        connect: recordingConnector(connects, {}),
        // Changes its answer after the first question.
        resolve: async () => (answers++ === 0 ? ["127.0.0.1"] : ["10.9.9.9"]),
      },
    );
    const response = await rawRequest(started.port, get(`http://rebind.test:${origin.port}/`));
    expect(statusOf(response)).toBe(200);
    expect(answers).toBe(1);
    expect(connects).toEqual([{ address: "127.0.0.1", port: origin.port }]);
    const second = await rawRequest(started.port, get(`http://rebind.test:${origin.port}/`));
    expect(statusOf(second)).toBe(403);
    expect(connects).toHaveLength(1);
  });

  test("upstream answers are relayed, interim 100 Continue included", async () => {
    const origin = await upstream({
      respond: () => "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    });
    const g = await gate({ allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] }, { "origin.test": ["127.0.0.1"] });
    const response = await rawRequest(g.port, `${get(`http://origin.test:${origin.port}/`, "Content-Length: 2\r\nExpect: 100-continue\r\n", "PUT")}ok`);
    expect(response.startsWith("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n")).toBe(true);
    expect(response).toContain("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    await waitFor(() => g.audit().length === 1);
    expect(g.audit()[0]).toMatchObject({ method: "PUT", status: 201, decision: "allow" });
  });

  test("a malformed upstream response becomes a 502", async () => {
    const origin = await upstream({ respond: () => "NOT HTTP AT ALL\r\n\r\n" });
    const g = await gate({ allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] }, { "origin.test": ["127.0.0.1"] });
    const response = await rawRequest(g.port, get(`http://origin.test:${origin.port}/`));
    expect(statusOf(response)).toBe(502);
  });

  test("resolution failure and unreachable upstream are 502s", async () => {
    const closed = await upstream();
    const deadPort = closed.port;
    await closed.close();
    upstreams.splice(upstreams.indexOf(closed), 1);
    const g = await gate({ allow: [`dead.test:${deadPort}`, "nx.test"], allowPrivate: ["127.0.0.1/32"] }, { "dead.test": ["127.0.0.1"] });
    const nx = await rawRequest(g.port, get("http://nx.test/"));
    expect(statusOf(nx)).toBe(502);
    expect(nx).toContain("(rule: resolve-failed)");
    const dead = await rawRequest(g.port, get(`http://dead.test:${deadPort}/`));
    expect(statusOf(dead)).toBe(502);
    expect(dead).toContain("(rule: upstream-unreachable)");
  });
});

describe("CONNECT", () => {
  test("a TLS ClientHello whose SNI matches is spliced to the vetted address", async () => {
    const sink = await upstream({ raw: true });
    const connects: { address: string; port: number }[] = [];
    const g = await gate(
      { allow: ["tls.test"], allowPrivate: ["127.0.0.1/32"] },
      { "tls.test": ["127.0.0.1"] },
      { connect: recordingConnector(connects, { 443: sink.port }) },
    );
    const tunnel = await openTunnel(g.port, "tls.test:443");
    expect(tunnel.reply).toBe("HTTP/1.1 200 Connection established\r\n\r\n");
    // Send the hello in two pieces: the gate must wait for all of it.
    tunnel.socket.write(hello.subarray(0, 10));
    await sleep(30);
    expect(connects).toEqual([]);
    tunnel.socket.write(hello.subarray(10));
    await waitFor(() => (sink.received[0]?.length ?? 0) >= hello.length);
    expect(connects).toEqual([{ address: "127.0.0.1", port: 443 }]);
    expect(sink.received[0]?.equals(hello)).toBe(true);
    tunnel.socket.write("more");
    await waitFor(() => (sink.received[0]?.length ?? 0) === hello.length + 4);
    tunnel.socket.end();
    await tunnel.closed;
    await waitFor(() => g.audit().length === 1);
    expect(g.audit()[0]).toMatchObject({
      method: "CONNECT",
      host: "tls.test",
      port: 443,
      decision: "allow",
      rule: "allowlist",
      match: "tls.test",
      bytesOut: hello.length + 4,
      bytesIn: 0,
      end: "closed",
    });
    expect(g.audit()[0]?.path).toBeUndefined();
  });

  test("data flows back from upstream", async () => {
    const sink = await upstream({ raw: true, greeting: "server-bytes" });
    const g = await gate({ allow: ["tls.test"], allowPrivate: ["127.0.0.1/32"] }, { "tls.test": ["127.0.0.1"] }, { connect: recordingConnector([], { 443: sink.port }) });
    const tunnel = await openTunnel(g.port, "tls.test:443");
    tunnel.socket.write(hello);
    await waitFor(() => tunnel.data().toString() === "server-bytes");
    tunnel.socket.destroy();
    await waitFor(() => g.audit().length === 1);
    expect(g.audit()[0]?.bytesIn).toBe("server-bytes".length);
  });

  test("domain fronting (SNI differs from the CONNECT host) is refused before any upstream connection", async () => {
    const connects: { address: string; port: number }[] = [];
    const g = await gate({ allow: ["tls.test"], allowPrivate: ["127.0.0.1/32"] }, { "tls.test": ["127.0.0.1"] }, { connect: recordingConnector(connects, {}) });
    const tunnel = await openTunnel(g.port, "tls.test:443");
    expect(tunnel.reply).toContain("200");
    tunnel.socket.write(evilHello);
    await tunnel.closed;
    expect(tunnel.data().equals(TLS_ALERT)).toBe(true);
    expect(connects).toEqual([]);
    expect(g.audit()[0]).toMatchObject({ method: "CONNECT", host: "tls.test", decision: "deny", rule: "sni-mismatch" });
    expect(g.audit()[0]?.detail).toContain("evil.test");
  });

  test("a ClientHello with Encrypted Client Hello is refused (its SNI is only a cover name), on every kind of tunnel", async () => {
    const echHello = buildHello([sniExtension("tls.test"), echExtension()]);
    const sink = await upstream({ raw: true });
    const connects: { address: string; port: number }[] = [];
    const g = await gate(
      { allow: ["tls.test", `tls.test:${sink.port}`, `127.0.0.1:${sink.port}`], allowPrivate: ["127.0.0.1/32"] },
      { "tls.test": ["127.0.0.1"] },
      { connect: recordingConnector(connects, { 443: sink.port }) },
    );
    // An allowed name, an explicitly listed host:port (which takes non-TLS), an IP literal (which needs no SNI).
    for (const target of ["tls.test:443", `tls.test:${sink.port}`, `127.0.0.1:${sink.port}`]) {
      const tunnel = await openTunnel(g.port, target);
      expect(tunnel.reply).toContain("200");
      tunnel.socket.write(echHello);
      await tunnel.closed;
      expect({ target, reply: tunnel.data().equals(TLS_ALERT) }).toEqual({ target, reply: true });
    }
    expect(connects).toEqual([]);
    expect(sink.connections).toBe(0);
    expect(g.audit().map((line) => [line.host, line.decision, line.rule])).toEqual([
      ["tls.test", "deny", "tls-ech"],
      ["tls.test", "deny", "tls-ech"],
      ["127.0.0.1", "deny", "tls-ech"],
    ]);
    expect(g.audit()[0]?.detail).toContain("Encrypted Client Hello");
  });

  test("a ClientHello without SNI is refused for a named host", async () => {
    const connects: { address: string; port: number }[] = [];
    const g = await gate({ allow: ["tls.test"], allowPrivate: ["127.0.0.1/32"] }, { "tls.test": ["127.0.0.1"] }, { connect: recordingConnector(connects, {}) });
    const tunnel = await openTunnel(g.port, "tls.test:443");
    tunnel.socket.write(noSniHello);
    await tunnel.closed;
    expect(connects).toEqual([]);
    expect(g.audit()[0]).toMatchObject({ rule: "sni-missing", decision: "deny" });
  });

  test("non-TLS bytes on CONNECT to 443 are refused", async () => {
    const connects: { address: string; port: number }[] = [];
    const g = await gate({ allow: ["tls.test"], allowPrivate: ["127.0.0.1/32"] }, { "tls.test": ["127.0.0.1"] }, { connect: recordingConnector(connects, {}) });
    const tunnel = await openTunnel(g.port, "tls.test:443");
    tunnel.socket.write("GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n");
    await tunnel.closed;
    expect(tunnel.data().length).toBe(0);
    expect(connects).toEqual([]);
    expect(g.audit()[0]).toMatchObject({ rule: "not-tls", decision: "deny" });
  });

  test("non-TLS is refused on default port 80 too", async () => {
    const connects: { address: string; port: number }[] = [];
    const g = await gate({ allow: ["tls.test"], allowPrivate: ["127.0.0.1/32"] }, { "tls.test": ["127.0.0.1"] }, { connect: recordingConnector(connects, {}) });
    const tunnel = await openTunnel(g.port, "tls.test:80");
    tunnel.socket.write("GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n");
    await tunnel.closed;
    expect(connects).toEqual([]);
  });

  test("a client that never sends its ClientHello times out", async () => {
    const connects: { address: string; port: number }[] = [];
    const g = await gate(
      { allow: ["tls.test"], allowPrivate: ["127.0.0.1/32"] },
      { "tls.test": ["127.0.0.1"] },
      { connect: recordingConnector(connects, {}), timing: { helloTimeoutMs: 100 } },
    );
    const tunnel = await openTunnel(g.port, "tls.test:443");
    tunnel.socket.write(hello.subarray(0, 20));
    await tunnel.closed;
    expect(connects).toEqual([]);
    expect(g.audit()[0]).toMatchObject({ rule: "tls-timeout" });
  });

  test("an explicitly listed host:port takes non-TLS and server-speaks-first protocols, but still checks a ClientHello", async () => {
    const ssh = await upstream({ raw: true, greeting: "SSH-2.0-test\r\n" });
    const g = await gate(
      { allow: [`ssh.test:${ssh.port}`], allowPrivate: ["127.0.0.1/32"] },
      { "ssh.test": ["127.0.0.1"] },
      { timing: { serverFirstWaitMs: 50 } },
    );
    // Server speaks first: nothing from the client.
    const silent = await openTunnel(g.port, `ssh.test:${ssh.port}`);
    await waitFor(() => silent.data().toString() === "SSH-2.0-test\r\n");
    silent.socket.write("SSH-2.0-client\r\n");
    await waitFor(() => ssh.received[0]?.toString() === "SSH-2.0-client\r\n");
    silent.socket.destroy();
    // Client speaks first, not TLS.
    const plain = await openTunnel(g.port, `ssh.test:${ssh.port}`);
    plain.socket.write("HELLO\r\n");
    await waitFor(() => ssh.received[1]?.toString() === "HELLO\r\n");
    plain.socket.destroy();
    // TLS with a wrong SNI is still fronting.
    const fronted = await openTunnel(g.port, `ssh.test:${ssh.port}`);
    fronted.socket.write(evilHello);
    await fronted.closed;
    expect(ssh.connections).toBe(2);
  });

  test("an IP-literal CONNECT (listed) accepts a ClientHello without SNI", async () => {
    const sink = await upstream({ raw: true });
    const g = await gate({ allow: [`127.0.0.1:${sink.port}`], allowPrivate: ["127.0.0.1/32"] }, {});
    const tunnel = await openTunnel(g.port, `127.0.0.1:${sink.port}`);
    tunnel.socket.write(noSniHello);
    await waitFor(() => sink.received[0]?.equals(noSniHello) ?? false);
    tunnel.socket.destroy();
  });

  test("refusals before the tunnel are 403s with the rule", async () => {
    const g = await gate({ allow: ["tls.test"] }, { "tls.test": ["10.0.0.1"], "other.test": ["93.184.216.34"] });
    const notAllowed = await openTunnel(g.port, "other.test:443");
    expect(statusOf(notAllowed.reply)).toBe(403);
    await notAllowed.closed;
    const full = await rawRequest(g.port, "CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n");
    expect(bodyOf(full)).toContain("other.test is not on this bottle's allowlist (rule: not-allowed)");
    const privateAddr = await rawRequest(g.port, "CONNECT tls.test:443 HTTP/1.1\r\n\r\n");
    expect(bodyOf(privateAddr)).toContain("(rule: private-address)");
    expect(bodyOf(privateAddr)).toContain("allow_private:\n      - tls.test");
    const port = await rawRequest(g.port, "CONNECT tls.test:22 HTTP/1.1\r\n\r\n");
    expect(bodyOf(port)).toContain("(rule: port-not-allowed)");
    const literal = await rawRequest(g.port, "CONNECT 93.184.216.34:443 HTTP/1.1\r\n\r\n");
    expect(bodyOf(literal)).toContain("(rule: ip-literal)");
    const v6 = await rawRequest(g.port, "CONNECT [::1]:443 HTTP/1.1\r\n\r\n");
    expect(bodyOf(v6)).toContain("(rule: ip-literal)");
    const noPort = await rawRequest(g.port, "CONNECT tls.test HTTP/1.1\r\n\r\n");
    expect(statusOf(noPort)).toBe(400);
    const leak = await rawRequest(g.port, `CONNECT tls.test:443 HTTP/1.1\r\nX-Leak: ${AWS}\r\n\r\n`);
    expect(bodyOf(leak)).toContain("(rule: dlp-aws-access-token)");
    expect(leak).not.toContain(AWS);
    expect(g.resolverCalls).toEqual(["tls.test"]);
  });
});

describe("limits", () => {
  test("requests per minute", async () => {
    const origin = await upstream();
    const g = await gate(
      { allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"], limits: { requestsPerMinute: 2, bytesOut: 0, idleTimeoutMs: 5000, maxTunnelMs: 5000, maxLogBytes: 0 } },
      { "origin.test": ["127.0.0.1"] },
    );
    const url = `http://origin.test:${origin.port}/`;
    expect(statusOf(await rawRequest(g.port, get(url)))).toBe(200);
    expect(statusOf(await rawRequest(g.port, get(url)))).toBe(200);
    const third = await rawRequest(g.port, get(url));
    expect(statusOf(third)).toBe(403);
    expect(bodyOf(third)).toContain("more than 2 requests in a minute (rule: rate-limit)");
  });

  test("total bytes out: a tunnel over the budget is cut, later requests refused", async () => {
    const sink = await upstream({ raw: true });
    const g = await gate(
      { allow: [`tls.test:${sink.port}`], allowPrivate: ["127.0.0.1/32"], limits: { requestsPerMinute: 0, bytesOut: hello.length + 10, idleTimeoutMs: 5000, maxTunnelMs: 5000, maxLogBytes: 0 } },
      { "tls.test": ["127.0.0.1"] },
    );
    const tunnel = await openTunnel(g.port, `tls.test:${sink.port}`);
    tunnel.socket.write(hello);
    await waitFor(() => (sink.received[0]?.length ?? 0) === hello.length);
    tunnel.socket.write("0123456789"); // exactly at the limit: fine
    await waitFor(() => (sink.received[0]?.length ?? 0) === hello.length + 10);
    tunnel.socket.write("x"); // one byte over
    await tunnel.closed;
    expect(sink.received[0]?.length).toBe(hello.length + 10);
    await waitFor(() => g.audit().length === 1);
    expect(g.audit()[0]).toMatchObject({ decision: "allow", end: "bytes-out-limit", bytesOut: hello.length + 10 });
    const next = await rawRequest(g.port, `CONNECT tls.test:${sink.port} HTTP/1.1\r\n\r\n`);
    expect(bodyOf(next)).toContain("(rule: bytes-out-limit)");
  });

  test("idle timeout closes a quiet tunnel", async () => {
    const sink = await upstream({ raw: true });
    const g = await gate(
      { allow: [`tls.test:${sink.port}`], allowPrivate: ["127.0.0.1/32"], limits: { requestsPerMinute: 0, bytesOut: 0, idleTimeoutMs: 150, maxTunnelMs: 10_000, maxLogBytes: 0 } },
      { "tls.test": ["127.0.0.1"] },
    );
    const tunnel = await openTunnel(g.port, `tls.test:${sink.port}`);
    tunnel.socket.write(hello);
    const start = Date.now();
    await tunnel.closed;
    expect(Date.now() - start).toBeGreaterThanOrEqual(100);
    await waitFor(() => g.audit().length === 1);
    expect(g.audit()[0]).toMatchObject({ end: "idle-timeout" });
  });

  test("max duration closes a busy tunnel", async () => {
    const sink = await upstream({ raw: true });
    const g = await gate(
      { allow: [`tls.test:${sink.port}`], allowPrivate: ["127.0.0.1/32"], limits: { requestsPerMinute: 0, bytesOut: 0, idleTimeoutMs: 200, maxTunnelMs: 400, maxLogBytes: 0 } },
      { "tls.test": ["127.0.0.1"] },
    );
    const tunnel = await openTunnel(g.port, `tls.test:${sink.port}`);
    tunnel.socket.write(hello);
    const ticker = setInterval(() => {
      if (!tunnel.socket.destroyed) tunnel.socket.write(".");
    }, 50);
    await tunnel.closed;
    clearInterval(ticker);
    await waitFor(() => g.audit().length === 1);
    expect(g.audit()[0]).toMatchObject({ end: "max-duration" });
    expect(g.audit()[0]?.durationMs).toBeGreaterThanOrEqual(380);
  });

  test("idle timeout applies to plain HTTP exchanges with a stalled upstream", async () => {
    const stalled = await upstream({ raw: true });
    const g = await gate(
      { allow: [`origin.test:${stalled.port}`], allowPrivate: ["127.0.0.1/32"], limits: { requestsPerMinute: 0, bytesOut: 0, idleTimeoutMs: 150, maxTunnelMs: 10_000, maxLogBytes: 0 } },
      { "origin.test": ["127.0.0.1"] },
    );
    const response = await rawRequest(g.port, get(`http://origin.test:${stalled.port}/`), 3000);
    expect(response).toBe("");
    await waitFor(() => g.audit().length === 1);
    expect(g.audit()[0]).toMatchObject({ end: "idle-timeout" });
  });
});

describe("reload", () => {
  test("re-reads the config file: new allow entries apply to new requests", async () => {
    const origin = await upstream();
    const g = await gate({ allow: [], allowPrivate: ["127.0.0.1/32"] }, { "origin.test": ["127.0.0.1"] });
    const url = `http://origin.test:${origin.port}/`;
    expect(statusOf(await rawRequest(g.port, get(url)))).toBe(403);
    writeFileSync(g.configPath, JSON.stringify(baseConfig(g.dir, { bottle: "renamed", allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] })));
    expect(g.gate.reload()).toBe(true);
    expect(statusOf(await rawRequest(g.port, get(url)))).toBe(200);
    await waitFor(() => g.audit().length === 2);
    expect(g.audit()[1]?.bottle).toBe("renamed");
  });

  test("an invalid config keeps the previous one", async () => {
    const origin = await upstream();
    const g = await gate({ allow: [`origin.test:${origin.port}`], allowPrivate: ["127.0.0.1/32"] }, { "origin.test": ["127.0.0.1"] });
    writeFileSync(g.configPath, "{ not json");
    expect(g.gate.reload()).toBe(false);
    writeFileSync(g.configPath, JSON.stringify({ ...baseConfig(g.dir), allow: ["*"] }));
    expect(g.gate.reload()).toBe(false);
    writeFileSync(g.configPath, JSON.stringify({ ...baseConfig(g.dir), secretsFile: `${g.dir}/missing.json` }));
    expect(g.gate.reload()).toBe(false);
    expect(statusOf(await rawRequest(g.port, get(`http://origin.test:${origin.port}/`)))).toBe(200);
  });
});

describe("gate lifecycle", () => {
  let g: TestGate;
  beforeAll(async () => {
    g = await startGate({ allow: ["a.test"] }, {});
  });
  afterAll(async () => {
    await g.close();
  });
  test("ports are bound and distinct", () => {
    const ports = g.gate.ports();
    expect(ports.proxy).toBeGreaterThan(0);
    expect(ports.dnsUdp).toBeGreaterThan(0);
    expect(ports.dnsTcp).toBeGreaterThan(0);
  });
});
