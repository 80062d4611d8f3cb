/**
 * The plain proxy and the credential routes used to admit, vet, deny and
 * audit each with code of their own, and the copies had drifted apart. Each
 * test here sends the same thing both ways — a plain-HTTP request through
 * the proxy, and the same request inside a CONNECT tunnel whose TLS the
 * gate ends for a credential route — and shows one behaviour. The gate makes
 * its CA with openssl; without it these tests skip.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import * as tls from "node:tls";
import type { EgressConfig } from "../../../../lib/gates/egress/daemon/config-schema.ts";
import { defaultConnector } from "../../../../lib/gates/egress/daemon/upstream.ts";
import { cleanupTempDirs, tempDir } from "../../../helpers/unit.ts";
import { makeTestCa, type TestCa } from "../../../helpers/tls.ts";
import { type TestGate, type Upstream, bodyOf, dechunk, rawRequest, startGate, startUpstream, statusOf, waitFor } from "./helpers.ts";

const openssl = Bun.which("openssl");
const GH_TOKEN = "gh-REAL-route-token-0123456789";
/** One of the bottle's secrets (its secrets file). */
const SECRET = ["bottle", "secret", "8c1f0e"].join("-");
/** Every character the token grammar allows, in a header name. */
const TOKEN_NAME = "X-Tok!#$%&'*+.^_`|~en";

/** A response's header lines as [lower-case name, value]. */
function headerLines(response: string): Array<[string, string]> {
  const head = response.slice(0, response.indexOf("\r\n\r\n"));
  return head
    .split("\r\n")
    .slice(1)
    .map((line): [string, string] => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]);
}

function values(response: string, name: string): string[] {
  return headerLines(response)
    .filter(([n]) => n === name)
    .map(([, value]) => value);
}


describe.skipIf(!openssl)("the plain proxy and the credential routes agree", () => {
  let ca: TestCa;
  let respond: (head: string) => string;
  let plainOrigin: Upstream;
  let tlsOrigin: Upstream;
  let g: TestGate;
  const answer = (head: string): string => respond(head);
  const hello = (): string => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

  beforeAll(async () => {
    ca = makeTestCa();
    plainOrigin = await startUpstream({ respond: answer });
    tlsOrigin = await startUpstream({ respond: answer, tls: ca.issue(["api.github.test", "alt.github.test"]) });
  });

  afterAll(async () => {
    await Promise.all([plainOrigin.close(), tlsOrigin.close()]);
    rmSync(ca.dir, { recursive: true, force: true });
    cleanupTempDirs();
  });

  /**
   * plain.test is reached over plain HTTP on ports 80 and 8080; the route
   * hosts api.github.test (443) and alt.github.test (8443) through the gate's
   * TLS, and Claude Code's route goes to api.github.test too. The gate's
   * connector maps those ports to the two local origins.
   */
  async function gateWith(overrides: Partial<EgressConfig> = {}): Promise<TestGate> {
    const dir = tempDir("paths-agree-");
    const credentials = join(dir, "credentials.json");
    writeFileSync(credentials, JSON.stringify({ GH_TOKEN }), { mode: 0o600 });
    const secrets = join(dir, "secrets.json");
    writeFileSync(secrets, JSON.stringify([SECRET]), { mode: 0o600 });
    const route = { header: "Authorization", scheme: "Bearer", credential: "GH_TOKEN", paths: [], methods: [] };
    const ports: Record<number, number> = { 80: plainOrigin.port, 8080: plainOrigin.port, 443: tlsOrigin.port, 8443: tlsOrigin.port };
    return startGate(
      {
        allow: ["plain.test", "plain.test:8080", "api.github.test", "alt.github.test:8443"],
        allowPrivate: ["127.0.0.1/32"],
        credentialsFile: credentials,
        secretsFile: secrets,
        tlsDir: join(dir, "tls"),
        anthropic: { port: 0, prefix: "/anthropic", upstream: "https://api.github.test", credential: "GH_TOKEN", kind: "oauth" },
        routes: [
          { host: "api.github.test", port: 443, ...route },
          { host: "alt.github.test", port: 8443, ...route },
        ],
        ...overrides,
      },
      { "plain.test": ["127.0.0.1"], "api.github.test": ["127.0.0.1"], "alt.github.test": ["127.0.0.1"] },
      { connect: (address, port) => defaultConnector(address, ports[port] ?? port), custody: { upstreamTls: { ca: ca.caPem } } },
    );
  }

  beforeEach(async () => {
    respond = hello;
    g = await gateWith();
  });

  afterEach(async () => {
    await g.close();
  });

  /** `GET http://<authority><path>` through the plain proxy; `headers` (CRLF-ended lines) carry the Host header, if any. */
  function viaProxy(authority: string, path: string, headers: string, gate = g): Promise<string> {
    return rawRequest(gate.port, `GET http://${authority}${path} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`);
  }

  /** The same request inside a CONNECT tunnel to `authority`, whose TLS the gate ends. */
  async function viaRoute(authority: string, path: string, headers: string, gate = g): Promise<string> {
    const tunnels = () => gate.audit().filter((line) => line.method === "CONNECT").length;
    const before = tunnels();
    const socket = net.connect({ host: "127.0.0.1", port: gate.port });
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    const reply = await new Promise<string>((resolve) => socket.once("data", (chunk: Buffer) => resolve(chunk.toString("latin1"))));
    expect(reply).toStartWith("HTTP/1.1 200");
    const secure = tls.connect({ socket, servername: authority.replace(/:[0-9]+$/, ""), ca: gate.gate.caPem ?? "" });
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", () => resolve());
      secure.once("error", reject);
    });
    secure.write(`GET ${path} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`);
    let out = "";
    secure.on("data", (chunk: Buffer) => (out += chunk.toString("latin1")));
    secure.on("error", () => undefined);
    await new Promise((resolve) => secure.on("close", resolve));
    // The tunnel's own line comes once the gate saw it close: then the gate is idle again.
    await waitFor(() => tunnels() > before);
    return out;
  }

  test("response headers: the same hop-by-hop headers are dropped; a chunked body arrives chunked once, whole", async () => {
    respond = () =>
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic realm=x\r\n" +
      "Upgrade: h2c\r\nTrailer: X-Sum\r\nTE: trailers\r\nX-Kept: yes\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    const seen = (response: string) => ({
      status: statusOf(response),
      transferEncoding: values(response, "transfer-encoding"),
      connection: values(response, "connection"),
      hopByHop: ["keep-alive", "proxy-authenticate", "upgrade", "trailer", "te"].filter((name) => values(response, name).length > 0),
      kept: values(response, "x-kept"),
      body: dechunk(bodyOf(response)),
    });
    const expected = { status: 200, transferEncoding: ["chunked"], connection: ["close"], hopByHop: [], kept: ["yes"], body: "hello" };
    expect(seen(await viaProxy("plain.test", "/h", "Host: plain.test\r\n"))).toEqual(expected);
    expect(seen(await viaRoute("api.github.test:443", "/h", "Host: api.github.test\r\n"))).toEqual(expected);
  });

  test("the Host grammar: an empty or missing port is the scheme's default; a port has at most five digits; one Host header", async () => {
    const both = async (plain: [string, string], route: [string, string]) => [
      statusOf(await viaProxy(plain[0], "/", plain[1])),
      statusOf(await viaRoute(route[0], "/", route[1])),
    ];
    // `host:` is the default port (80 plain, 443 through TLS), as is `host`.
    expect(await both(["plain.test", "Host: plain.test:\r\n"], ["api.github.test:443", "Host: api.github.test:\r\n"])).toEqual([200, 200]);
    expect(await both(["plain.test", "Host: plain.test\r\n"], ["api.github.test:443", "Host: api.github.test\r\n"])).toEqual([200, 200]);
    expect(await both(["plain.test", "Host: plain.test:00080\r\n"], ["api.github.test:443", "Host: api.github.test:00443\r\n"])).toEqual([200, 200]);
    // So a Host header without a port does not name a host on another port.
    expect(await both(["plain.test:8080", "Host: plain.test\r\n"], ["alt.github.test:8443", "Host: alt.github.test\r\n"])).toEqual([403, 403]);
    expect(await both(["plain.test:8080", "Host: plain.test:8080\r\n"], ["alt.github.test:8443", "Host: alt.github.test:8443\r\n"])).toEqual([200, 200]);
    expect(await both(["plain.test", "Host: plain.test:000080\r\n"], ["api.github.test:443", "Host: api.github.test:000443\r\n"])).toEqual([403, 403]);
    expect(await both(["plain.test", "Host: other.test\r\n"], ["api.github.test:443", "Host: alt.github.test\r\n"])).toEqual([403, 403]);
    expect(await both(["plain.test", "Host: plain.test\r\nHost: other.test\r\n"], ["api.github.test:443", "Host: api.github.test\r\nHost: alt.github.test\r\n"])).toEqual([400, 400]);
    // Repeated denials are counted on one line: every one is in the log once the gate flushes it.
    await g.gate.close();
    const denials: Record<string, number> = {};
    for (const line of g.audit().filter((entry) => entry.decision === "deny")) {
      const key = `${line.host} ${line.rule}`;
      denials[key] = (denials[key] ?? 0) + (line.count ?? 1);
    }
    expect(denials).toEqual({
      "plain.test host-header-mismatch": 3,
      "plain.test bad-request": 1,
      "alt.github.test host-header-mismatch": 1,
      "api.github.test host-header-mismatch": 2,
      "api.github.test bad-request": 1,
    });
  });

  test("the token grammar: a header name of every token character goes through both ways, and a route may inject it", async () => {
    const received = () => tlsOrigin.received.at(-1)?.toString("latin1") ?? "";
    expect(statusOf(await viaProxy("plain.test", "/t", `Host: plain.test\r\n${TOKEN_NAME}: 1\r\n`))).toBe(200);
    expect(plainOrigin.received.at(-1)?.toString("latin1")).toContain(`\r\n${TOKEN_NAME}: 1\r\n`);
    expect(statusOf(await viaRoute("api.github.test:443", "/t", `Host: api.github.test\r\n${TOKEN_NAME}: 1\r\n`))).toBe(200);
    expect(received()).toContain(`\r\n${TOKEN_NAME}: 1\r\n`);
    await g.close();
    g = await gateWith({ routes: [{ host: "api.github.test", port: 443, header: TOKEN_NAME, credential: "GH_TOKEN", paths: [], methods: [] }] });
    expect(statusOf(await viaRoute("api.github.test:443", "/t", "Host: api.github.test\r\n"))).toBe(200);
    expect(received()).toContain(`\r\n${TOKEN_NAME}: ${GH_TOKEN}\r\n`);
    // A header name outside the grammar: the head is malformed, on either path a 400 (node parses the route's).
    const proxied = await viaProxy("plain.test", "/t", "Host: plain.test\r\nX(bad): 1\r\n");
    const routed = await viaRoute("api.github.test:443", "/t", "Host: api.github.test\r\nX(bad): 1\r\n");
    for (const response of [proxied, routed]) {
      expect(statusOf(response)).toBe(400);
      expect(values(response, "x-bottle-egress-rule")).toEqual(["bad-request"]);
    }
    await g.gate.close();
    expect(g.audit().filter((line) => line.rule === "bad-request").reduce((sum, line) => sum + (line.count ?? 1), 0)).toBe(2);
  });

  /** The denials in the audit log once the gate flushed them: [rule, host, path]. */
  async function denialsOf(gate: TestGate): Promise<Array<[string, string, string | undefined]>> {
    await gate.gate.close();
    return gate
      .audit()
      .filter((line) => line.decision === "deny")
      .map((line) => [line.rule, line.host, line.path]);
  }

  test("DLP redacts what the audit line shows whatever rule denies: over the rate limit", async () => {
    const oneAMinute = { limits: { requestsPerMinute: 1, bytesOut: 0, idleTimeoutMs: 10_000, maxTunnelMs: 60_000, maxLogBytes: 0 } };
    await g.close();
    g = await gateWith(oneAMinute);
    // The plain proxy: the minute's one request goes out; the next, its host and path carrying the secret, is over the rate.
    expect(statusOf(await viaProxy("plain.test", "/", "Host: plain.test\r\n"))).toBe(200);
    const proxied = await viaProxy(`${SECRET}.plain.test`, `/x/${SECRET}`, "");
    expect(await denialsOf(g)).toEqual([["rate-limit", "<redacted>", "<redacted>"]]);
    // A route: the CONNECT is the minute's request; the one inside the tunnel, its path carrying the secret, is over the rate.
    await g.close();
    g = await gateWith(oneAMinute);
    const routed = await viaRoute("api.github.test:443", `/x/${SECRET}`, "Host: api.github.test\r\n");
    expect(await denialsOf(g)).toEqual([["rate-limit", "api.github.test", "<redacted>"]]);
    for (const response of [proxied, routed]) {
      expect(values(response, "x-bottle-egress-rule")).toEqual(["rate-limit"]);
      expect(response).not.toContain(SECRET);
    }
    expect(JSON.stringify(g.audit())).not.toContain(SECRET);
  });

  test("DLP redacts what the audit line shows whatever rule denies: a malformed request", async () => {
    const twoHosts = (host: string) => `Host: ${host}\r\nHost: ${host}\r\n`;
    const responses = [
      await viaProxy("plain.test", `/y/${SECRET}`, twoHosts("plain.test")),
      await viaProxy(`${SECRET}.plain.test`, "/", twoHosts("plain.test")),
      await viaRoute("api.github.test:443", `/y/${SECRET}`, twoHosts("api.github.test")),
    ];
    expect(responses.map(statusOf)).toEqual([400, 400, 400]);
    expect(await denialsOf(g)).toEqual([
      ["bad-request", "plain.test", "<redacted>"],
      ["bad-request", "<redacted>", "/"],
      ["bad-request", "api.github.test", "<redacted>"],
    ]);
    for (const response of responses) expect(response).not.toContain(SECRET);
    expect(JSON.stringify(g.audit())).not.toContain(SECRET);
  });

  test("a secret in the request line or a header: 403 on every path, the audit line's path redacted", async () => {
    const claude = await rawRequest(g.gate.ports().anthropic ?? 0, `GET /anthropic/v1/x HTTP/1.1\r\nHost: gate\r\nX-Leak: ${SECRET}\r\nConnection: close\r\n\r\n`);
    const proxied = await viaProxy("plain.test", "/z", `Host: plain.test\r\nX-Leak: ${SECRET}\r\n`);
    const routed = await viaRoute("api.github.test:443", "/z", `Host: api.github.test\r\nX-Leak: ${SECRET}\r\n`);
    for (const response of [claude, proxied, routed]) {
      expect(statusOf(response)).toBe(403);
      expect(values(response, "x-bottle-egress-rule")).toEqual(["dlp-secret"]);
      expect(response).not.toContain(SECRET);
    }
    expect(await denialsOf(g)).toEqual([
      ["dlp-secret", "api.github.test", "<redacted>"],
      ["dlp-secret", "plain.test", "<redacted>"],
      ["dlp-secret", "api.github.test", "<redacted>"],
    ]);
  });

  test("the byte budget counts a request's head on every path, Claude Code's route too", async () => {
    await g.close();
    g = await gateWith({ limits: { requestsPerMinute: 0, bytesOut: 300, idleTimeoutMs: 10_000, maxTunnelMs: 60_000, maxLogBytes: 0 } });
    const pad = `X-Pad: ${"p".repeat(400)}\r\n`;
    const before = { plain: plainOrigin.received.length, tls: tlsOrigin.received.join("").length };
    const proxied = await viaProxy("plain.test", "/big", `Host: plain.test\r\n${pad}`);
    const claude = await rawRequest(g.gate.ports().anthropic ?? 0, `GET /anthropic/big HTTP/1.1\r\nHost: gate\r\n${pad}Connection: close\r\n\r\n`);
    // Neither head fits the budget: the exchange is cut before a byte went upstream, and no response comes.
    expect([proxied, claude].map(statusOf)).toEqual([0, 0]);
    expect(plainOrigin.received.slice(before.plain).join("")).toBe("");
    expect(tlsOrigin.received.join("").length).toBe(before.tls);
    await g.gate.close();
    const lines = g.audit().map((line) => ({ path: line.path, decision: line.decision, end: line.end, bytesOut: line.bytesOut }));
    expect(lines).toEqual([
      { path: "/big", decision: "allow", end: "bytes-out-limit", bytesOut: 0 },
      { path: "/big", decision: "allow", end: "bytes-out-limit", bytesOut: 0 },
    ]);
  });
});
