/**
 * Credential custody in a real (in-process) egress gate: Claude Code's
 * plain-HTTP route and TLS-terminated credential routes, against a local
 * HTTPS upstream with a test CA. The gate makes its own CA with openssl, as
 * it does in its image; without openssl on this machine these tests skip.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import type { IncomingHttpHeaders } from "node:http";
import * as net from "node:net";
import { join } from "node:path";
import * as tls from "node:tls";
import { gzipSync } from "node:zlib";
import type { EgressConfig } from "../../../../lib/gates/egress/daemon/config-schema.ts";
import { Dlp } from "../../../../lib/gates/egress/daemon/dlp.ts";
import { spellings } from "../../../helpers/spellings.ts";
import { cleanupTempDirs, tempDir } from "../../../helpers/unit.ts";
import { makeTestCa, type TestCa } from "../../../helpers/tls.ts";
import { type TestGate, baseConfig, dechunk, rawRequest, startGate, waitFor } from "./helpers.ts";

const openssl = Bun.which("openssl");
const CLAUDE_TOKEN = "sk-ant-oat01-REAL-claude-token-0123456789";
const API_KEY = "sk-ant-api03-REAL-api-key-0123456789abcdef";
const GH_TOKEN = "gh-REAL-route-token-0123456789";

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}


type Handler = (seen: Seen, res: import("node:http").ServerResponse) => void | Promise<void>;

describe.skipIf(!openssl)("credential custody in the gate", () => {
  let ca: TestCa;
  let upstream: https.Server;
  let port = 0;
  const seen: Seen[] = [];
  let handler: Handler;
  const gates: TestGate[] = [];

  const defaultHandler: Handler = (request, res) => {
    res.writeHead(200, { "content-type": "application/json", "x-echo-authorization": String(request.headers.authorization ?? "") });
    res.end(JSON.stringify({ url: request.url, authorization: request.headers.authorization ?? null, apiKey: request.headers["x-api-key"] ?? null }));
  };

  beforeAll(async () => {
    ca = makeTestCa();
    const { cert, key } = ca.issue(["api.anthropic.test", "api.github.test", "plain.test"]);
    upstream = https.createServer({ cert, key }, (req, res) => {
      let body = "";
      req.on("data", (chunk) => (body += chunk));
      req.on("end", () => {
        const request = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, rawHeaders: req.rawHeaders, body };
        seen.push(request);
        void handler(request, res);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", () => resolve()));
    port = (upstream.address() as net.AddressInfo).port;
  });

  afterEach(async () => {
    await Promise.all(gates.splice(0).map((g) => g.close()));
    seen.length = 0;
    handler = defaultHandler;
  });

  afterAll(() => {
    upstream.close();
    cleanupTempDirs();
  });

  handler = defaultHandler;

  const TABLE = { "api.anthropic.test": ["127.0.0.1"], "api.github.test": ["127.0.0.1"], "plain.test": ["127.0.0.1"], "private.test": ["10.1.2.3"] };

  async function custodyGate(overrides: Partial<EgressConfig> = {}, options: { trust?: boolean; kind?: "oauth" | "api-key" } = {}): Promise<TestGate & { anthropicPort: number }> {
    const dir = tempDir("custody-gate-");
    const credentials = join(dir, "credentials.json");
    writeFileSync(credentials, JSON.stringify({ CLAUDE_CODE_OAUTH_TOKEN: CLAUDE_TOKEN, ANTHROPIC_API_KEY: API_KEY, GH_TOKEN }), { mode: 0o600 });
    const kind = options.kind ?? "oauth";
    const g = await startGate(
      {
        allow: [`api.anthropic.test:${port}`, `api.github.test:${port}`, `plain.test:${port}`],
        allowPrivate: ["127.0.0.1/32"],
        credentialsFile: credentials,
        tlsDir: join(dir, "tls"),
        routes: [
          { host: "api.github.test", port, header: "Authorization", scheme: "Bearer", credential: "GH_TOKEN", paths: ["/repos/acme/"], methods: [] },
          { host: "api.github.test", port, header: "Authorization", scheme: "Bearer", credential: "GH_TOKEN", paths: ["/gists"], methods: ["GET"] },
        ],
        listen: ["127.0.0.0/8"],
        anthropic: {
          port: 0,
          prefix: "/anthropic",
          upstream: `https://api.anthropic.test:${port}`,
          credential: kind === "oauth" ? "CLAUDE_CODE_OAUTH_TOKEN" : "ANTHROPIC_API_KEY",
          kind,
        },
        ...overrides,
      },
      TABLE,
      { custody: options.trust === false ? {} : { upstreamTls: { ca: ca.caPem } }, interfaces: () => ["127.0.0.1", "10.9.9.9"] },
    );
    gates.push(g);
    return Object.assign(g, { anthropicPort: g.gate.ports().anthropic ?? 0 });
  }

  /** One request through a CONNECT tunnel whose TLS the gate terminates (trusting the gate's CA). */
  async function viaTunnel(g: TestGate, host: string, request: string, caPem = g.gate.caPem ?? ""): Promise<string> {
    const socket = net.connect({ host: "127.0.0.1", port: g.port });
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`);
    const reply = await new Promise<string>((resolve) => socket.once("data", (chunk: Buffer) => resolve(chunk.toString("latin1"))));
    expect(reply).toStartWith("HTTP/1.1 200");
    const secure = tls.connect({ socket, servername: host, ca: caPem });
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", () => resolve());
      secure.once("error", reject);
    });
    secure.write(request);
    let out = "";
    secure.on("data", (chunk: Buffer) => (out += chunk.toString("latin1")));
    await new Promise((resolve) => secure.on("close", resolve));
    return out;
  }

  const get = (host: string, path: string, headers = "", method = "GET") =>
    `${method} ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\n${headers}Connection: close\r\n\r\n`;

  test("Claude Code's route: the upstream gets the real OAuth token; the stream comes back as it is written, the token replaced", async () => {
    const g = await custodyGate();
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    handler = async (_request, res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "x-echo": `Bearer ${CLAUDE_TOKEN}` });
      res.write('event: message_start\ndata: {"type":"message_start"}\n\n');
      await released;
      res.write(`event: content_block_delta\ndata: {"text":"leak ${CLAUDE_TOKEN.slice(0, 10)}`);
      res.end(`${CLAUDE_TOKEN.slice(10)} done"}\n\n`);
    };
    const response = await fetch(`http://127.0.0.1:${g.anthropicPort}/anthropic/v1/messages?beta=true`, {
      method: "POST",
      headers: {
        authorization: "Bearer bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN",
        "content-type": "application/json",
        "accept-encoding": "gzip, br",
      },
      body: JSON.stringify({ model: "claude", messages: [] }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-echo")).toBe("Bearer bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN");
    const reader = response.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    // The first event arrived while the upstream was still holding the rest back.
    expect(first).toContain("message_start");
    release();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toContain("leak bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN done");
    expect(rest).not.toContain(CLAUDE_TOKEN.slice(0, 20));
    const request = seen.at(-1)!;
    expect(request.url).toBe("/v1/messages?beta=true");
    expect(request.headers.authorization).toBe(`Bearer ${CLAUDE_TOKEN}`);
    expect(request.headers["x-api-key"]).toBeUndefined();
    expect(request.headers.host).toBe(`api.anthropic.test:${port}`);
    expect(request.headers["accept-encoding"]).toBe("identity");
    expect(JSON.parse(request.body)).toEqual({ model: "claude", messages: [] });
    const audit = g.audit().find((line) => line.path === "/v1/messages");
    expect(audit).toMatchObject({ decision: "allow", rule: "route", match: "anthropic", auth: "injected (CLAUDE_CODE_OAUTH_TOKEN)", status: 200, host: "api.anthropic.test" });
    expect(JSON.stringify(g.audit())).not.toContain(CLAUDE_TOKEN);
  });

  test("an API key goes as x-api-key, and the placeholder in Authorization is dropped", async () => {
    const g = await custodyGate({}, { kind: "api-key" });
    const response = await fetch(`http://127.0.0.1:${g.anthropicPort}/anthropic/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": "bottle-placeholder-ANTHROPIC_API_KEY", authorization: "Bearer bottle-placeholder-ANTHROPIC_API_KEY" },
      body: "{}",
    });
    const body = (await response.json()) as { apiKey: string; authorization: string | null };
    expect(body.apiKey).toBe("bottle-placeholder-ANTHROPIC_API_KEY");
    expect(body.authorization).toBeNull();
    expect(seen.at(-1)!.headers["x-api-key"]).toBe(API_KEY);
    expect(seen.at(-1)!.headers.authorization).toBeUndefined();
  });

  test("a compressed answer is decoded so that it can be scrubbed", async () => {
    const g = await custodyGate();
    handler = (_request, res) => {
      const body = gzipSync(`{"echo":"${CLAUDE_TOKEN}"}`);
      res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip", "content-length": String(body.length) });
      res.end(body);
    };
    const response = await fetch(`http://127.0.0.1:${g.anthropicPort}/anthropic/v1/x`, { headers: { "accept-encoding": "identity" } });
    expect(response.headers.get("content-encoding")).toBeNull();
    expect(await response.text()).toBe('{"echo":"bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN"}');
  });

  test("outside the route's prefix: 404; dot segments: 400; nothing reaches the upstream", async () => {
    const g = await custodyGate();
    const outside = await fetch(`http://127.0.0.1:${g.anthropicPort}/v1/messages`);
    expect(outside.status).toBe(404);
    expect(outside.headers.get("x-bottle-egress-rule")).toBe("no-route");
    expect(await outside.text()).toContain("/anthropic");
    // Raw, since fetch would resolve the dots itself.
    for (const path of ["/anthropic/v1/../admin", "/anthropic/v1/%2e%2e/admin", "/anthropic//v1"]) {
      const dots = await rawRequest(g.anthropicPort, `GET ${path} HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n`);
      expect(dots).toStartWith("HTTP/1.1 400");
    }
    expect(seen).toEqual([]);
  });

  test("the upstream must pass the allowlist and the private-address rules", async () => {
    const notAllowed = await custodyGate({ allow: [] });
    const denied = await fetch(`http://127.0.0.1:${notAllowed.anthropicPort}/anthropic/v1/messages`, { method: "POST", body: "{}" });
    expect(denied.status).toBe(403);
    expect(denied.headers.get("x-bottle-egress-rule")).toBe("not-allowed");
    const privateGate = await custodyGate({ allowPrivate: [] });
    const refused = await fetch(`http://127.0.0.1:${privateGate.anthropicPort}/anthropic/v1/messages`, { method: "POST", body: "{}" });
    expect(refused.status).toBe(403);
    expect(refused.headers.get("x-bottle-egress-rule")).toBe("private-address");
    expect(seen).toEqual([]);
    expect(privateGate.audit().at(-1)).toMatchObject({ decision: "deny", rule: "private-address", host: "api.anthropic.test" });
  });

  test("the upstream's certificate is verified: an untrusted one is a 502, and the token was never sent", async () => {
    const g = await custodyGate({}, { trust: false });
    const response = await fetch(`http://127.0.0.1:${g.anthropicPort}/anthropic/v1/messages`, { method: "POST", body: "{}" });
    expect(response.status).toBe(502);
    expect(response.headers.get("x-bottle-egress-rule")).toBe("upstream-tls");
    expect(seen).toEqual([]);
  });

  test("DLP: a request that carries the real token (which the bottle should never have) is refused", async () => {
    const g = await custodyGate();
    const response = await fetch(`http://127.0.0.1:${g.anthropicPort}/anthropic/v1/messages`, { method: "POST", headers: { "x-leak": GH_TOKEN }, body: "{}" });
    expect(response.status).toBe(403);
    expect(response.headers.get("x-bottle-egress-rule")).toBe("dlp-secret");
    expect(await response.text()).not.toContain(GH_TOKEN);
    expect(seen).toEqual([]);
    // Through the forward proxy too.
    const socket = net.connect({ host: "127.0.0.1", port: g.port });
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(`CONNECT plain.test:${port} HTTP/1.1\r\nHost: plain.test:${port}\r\nX-Leak: ${CLAUDE_TOKEN}\r\n\r\n`);
    const reply = await new Promise<string>((resolve) => socket.once("data", (chunk: Buffer) => resolve(chunk.toString("latin1"))));
    socket.destroy();
    expect(reply).toContain("dlp-secret");
  });

  test("a credential route: the gate terminates TLS with its own CA; matching paths get the real token, others the placeholder", async () => {
    const g = await custodyGate();
    const placeholder = "Authorization: Bearer bottle-placeholder-GH_TOKEN\r\n";
    const matching = await viaTunnel(g, "api.github.test", get("api.github.test", "/repos/acme/issues", placeholder));
    expect(matching).toStartWith("HTTP/1.1 200");
    expect(seen.at(-1)!.headers.authorization).toBe(`Bearer ${GH_TOKEN}`);
    // The echo comes back scrubbed, in the body and in the header.
    expect(matching).toContain('"authorization":"Bearer bottle-placeholder-GH_TOKEN"');
    expect(matching.toLowerCase()).toContain("x-echo-authorization: bearer bottle-placeholder-gh_token");
    expect(matching).not.toContain(GH_TOKEN);

    await viaTunnel(g, "api.github.test", get("api.github.test", "/repos/other/issues", placeholder));
    expect(seen.at(-1)!.headers.authorization).toBe("Bearer bottle-placeholder-GH_TOKEN");
    await viaTunnel(g, "api.github.test", get("api.github.test", "/repos/acme/../other", placeholder));
    expect(seen.at(-1)!.headers.authorization).toBe("Bearer bottle-placeholder-GH_TOKEN");
    // A method-limited route.
    await viaTunnel(g, "api.github.test", get("api.github.test", "/gists/1", ""));
    expect(seen.at(-1)!.headers.authorization).toBe(`Bearer ${GH_TOKEN}`);
    await viaTunnel(g, "api.github.test", get("api.github.test", "/gists/1", "Content-Length: 0\r\n", "DELETE"));
    expect(seen.at(-1)!.headers.authorization).toBeUndefined();

    // A tunnel's line is written when it closes, which may trail the response.
    const tunnels = () => g.audit().filter((line) => line.host === "api.github.test" && line.method === "CONNECT");
    await waitFor(() => tunnels().length >= 5);
    const lines = g.audit().filter((line) => line.host === "api.github.test");
    expect(tunnels().every((line) => line.detail?.includes("TLS terminated"))).toBe(true);
    expect(lines.find((line) => line.path === "/repos/acme/issues")).toMatchObject({ rule: "route", auth: "injected (GH_TOKEN)", status: 200 });
    expect(lines.find((line) => line.path === "/repos/other/issues")).toMatchObject({ rule: "allowlist" });
    expect(lines.find((line) => line.path === "/repos/other/issues")?.auth).toBeUndefined();
    expect(JSON.stringify(g.audit())).not.toContain(GH_TOKEN);
  });

  test("a route host that reflects the token in any form (header names, values, body) hands the bottle only the placeholder", async () => {
    const g = await custodyGate();
    handler = (request, res) => {
      const token = String(request.headers.authorization ?? "").replace(/^Bearer /, "");
      const forms = spellings(token);
      res.writeHead(200, [
        ["content-type", "application/json"],
        [`x-echo-${token}`, "name"],
        [`x-hex-${Buffer.from(token).toString("hex")}`, "name"],
        ...Object.values(forms).map((text, i): [string, string] => [`x-form-${i}`, text]),
      ].flat());
      // Small writes, so that forms are cut between chunks.
      const body = JSON.stringify(forms);
      for (let i = 0; i < body.length; i += 7) res.write(body.slice(i, i + 7));
      res.end();
    };
    const out = await viaTunnel(g, "api.github.test", get("api.github.test", "/repos/acme/echo"));
    expect(out).toStartWith("HTTP/1.1 200");
    expect(seen.at(-1)!.headers.authorization).toBe(`Bearer ${GH_TOKEN}`);
    expect(out.toLowerCase()).toContain("x-echo-bottle-placeholder-gh_token: name");
    const body = dechunk(out.slice(out.indexOf("\r\n\r\n") + 4));
    for (const [form, text] of Object.entries(spellings(GH_TOKEN))) {
      expect({ form, raw: out.includes(text), body: body.includes(text) }).toEqual({ form, raw: false, body: false });
    }
    expect(new Dlp([GH_TOKEN]).scan([out, body])).toBeNull();
  });

  test("a response whose headers still carry the token in a form DLP decodes is refused: 502 credential-echo, nothing of it passed on", async () => {
    const g = await custodyGate();
    const doubled = [...Buffer.from(GH_TOKEN)].map((byte) => `%25${byte.toString(16).padStart(2, "0")}`).join("");
    handler = (_request, res) => {
      res.writeHead(200, { "x-double": doubled, "content-type": "text/plain" });
      res.end(`body ${doubled}`);
    };
    const out = await viaTunnel(g, "api.github.test", get("api.github.test", "/repos/acme/echo"));
    expect(out).toStartWith("HTTP/1.1 502");
    expect(out).toContain("x-bottle-egress-rule: credential-echo");
    expect(out).not.toContain(doubled);
    expect(new Dlp([GH_TOKEN]).scan([out])).toBeNull();
    expect(g.audit().find((line) => line.path === "/repos/acme/echo")).toMatchObject({ decision: "deny", rule: "credential-echo" });
  });

  test("a credential route's request body that carries a secret is refused (403, audited redacted) before the secret leaves", async () => {
    const g = await custodyGate();
    const body = `{"text":"${Buffer.from(`x:${GH_TOKEN}`).toString("base64")}"}`;
    const out = await viaTunnel(
      g,
      "api.github.test",
      get("api.github.test", "/repos/acme/issues", `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n`, "POST") + body,
    );
    expect(out).toStartWith("HTTP/1.1 403");
    expect(out).toContain("x-bottle-egress-rule: dlp-secret");
    expect(out).toContain("in its body");
    await Bun.sleep(100);
    expect(seen).toEqual([]);
    const line = g.audit().find((entry) => entry.rule === "dlp-secret");
    expect(line).toMatchObject({ decision: "deny", host: "api.github.test", path: "<redacted>" });
    // A clean body on the same route goes through whole.
    const clean = '{"title":"hello"}';
    await viaTunnel(g, "api.github.test", get("api.github.test", "/repos/acme/issues", `Content-Length: ${clean.length}\r\n`, "POST") + clean);
    expect(seen.at(-1)!.body).toBe(clean);
  });

  test("Claude Code's route does not scan bodies: a conversation may quote anything", async () => {
    const g = await custodyGate();
    const body = JSON.stringify({ messages: [{ role: "user", content: `what is ${GH_TOKEN}?` }] });
    const response = await fetch(`http://127.0.0.1:${g.anthropicPort}/anthropic/v1/messages`, { method: "POST", body });
    expect(response.status).toBe(200);
    expect(seen.at(-1)!.body).toBe(body);
  });

  test("inside a terminated tunnel the Host header must name the tunnel's host", async () => {
    const g = await custodyGate();
    const out = await viaTunnel(g, "api.github.test", `GET /repos/acme/x HTTP/1.1\r\nHost: plain.test:${port}\r\nConnection: close\r\n\r\n`);
    expect(out).toStartWith("HTTP/1.1 403");
    expect(out).toContain("host-header-mismatch");
    expect(seen).toEqual([]);
  });

  test("other allowed hosts stay plain tunnels: their certificate is the real one, not the gate's", async () => {
    const g = await custodyGate();
    const out = await viaTunnel(g, "plain.test", get("plain.test", "/x", "Authorization: Bearer bottle-placeholder-GH_TOKEN\r\n"), ca.caPem);
    expect(out).toStartWith("HTTP/1.1 200");
    expect(seen.at(-1)!.headers.authorization).toBe("Bearer bottle-placeholder-GH_TOKEN");
    await expect(viaTunnel(g, "plain.test", get("plain.test", "/x"), g.gate.caPem!)).rejects.toThrow();
  });

  test("the gate's CA: name-constrained to the route hosts, its key only readable by the gate", async () => {
    const g = await custodyGate();
    const pem = g.gate.caPem!;
    const text = Bun.spawnSync(["openssl", "x509", "-noout", "-text"], { stdin: new Blob([pem]), stdout: "pipe" }).stdout.toString();
    expect(text).toContain("X509v3 Name Constraints: critical");
    expect(text).toContain("DNS:api.github.test");
    expect(text).toContain("CA:TRUE");
    const tlsDir = g.gate.config.tlsDir!;
    expect(statSync(join(tlsDir, "ca.key")).mode & 0o077).toBe(0);
    expect(statSync(tlsDir).mode & 0o077).toBe(0);
  });

  test("the gate's leaf: signed by its CA, not a CA itself, for TLS servers only, naming every route host", async () => {
    const g = await custodyGate();
    const tlsDir = g.gate.config.tlsDir!;
    const leaf = readFileSync(join(tlsDir, "leaf.pem"), "utf8");
    const text = Bun.spawnSync(["openssl", "x509", "-noout", "-text"], { stdin: new Blob([leaf]), stdout: "pipe" }).stdout.toString();
    expect(text).toContain("CA:FALSE");
    expect(text).toMatch(/Extended Key Usage:\s*\n\s*TLS Web Server Authentication\s*\n/);
    const hosts = (g.gate.config.routes ?? []).map((route) => `DNS:${route.host}`);
    expect(hosts.length).toBeGreaterThan(0);
    for (const host of hosts) expect(text).toContain(host);
    const verify = Bun.spawnSync(["openssl", "verify", "-CAfile", join(tlsDir, "ca.pem"), join(tlsDir, "leaf.pem")], { stdout: "pipe", stderr: "pipe" });
    expect(verify.stdout.toString()).toContain(": OK");
    expect(statSync(join(tlsDir, "leaf.key")).mode & 0o077).toBe(0);
  });

  test("Claude Code's route binds only to local addresses inside the gate's listen ranges", async () => {
    await expect(custodyGate({ listen: ["10.255.0.0/16"] })).rejects.toThrow("no local address inside 10.255.0.0/16");
  });

  test("a reload keeps the credential routes (they change only on restart)", async () => {
    const g = await custodyGate();
    const next = { ...g.gate.config, allow: [...g.gate.config.allow, "new.test"] } as EgressConfig;
    delete next.routes;
    expect(g.gate.reload(next)).toBe(true);
    expect(g.gate.config.allow).toContain("new.test");
    expect(g.gate.config.routes?.length).toBe(2);
    await viaTunnel(g, "api.github.test", get("api.github.test", "/repos/acme/x"));
    expect(seen.at(-1)!.headers.authorization).toBe(`Bearer ${GH_TOKEN}`);
  });

  test("a gate without custody config has no terminator and no route listener", async () => {
    const dir = tempDir();
    const g = await startGate(baseConfig(dir, { allow: ["x.test"] }), {});
    gates.push(g);
    expect(g.gate.terminator).toBeNull();
    expect(g.gate.ports().anthropic).toBeUndefined();
    expect(g.gate.caPem).toBeNull();
  });
});
