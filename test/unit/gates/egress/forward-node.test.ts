/**
 * Credential custody in the bundled gate under Node (what the gate image
 * runs): Claude Code's route and a TLS-terminated credential route against a
 * local HTTPS upstream named `localhost`. Skipped without node or openssl.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import type { EgressConfig } from "../../../../lib/gates/egress/daemon/config-schema.ts";
import { EGRESS_READY_LINE, readyLineCa } from "../../../../lib/gates/egress/daemon/ready-line.ts";
import { makeTestCa } from "../../../helpers/tls.ts";
import { bundleForNode, freePort, readAudit, spawnCollecting, waitFor } from "./helpers.ts";

const node = Bun.which("node");
const openssl = Bun.which("openssl");
const TOKEN = "sk-ant-oat01-node-REAL-token-0123456789";
const GH = "gh-node-REAL-token-0123456789";

describe.skipIf(!node || !openssl)("credential custody in the bundled gate under node", () => {
  let dir: string;
  let bundle: string;
  let upstream: https.Server;
  let upstreamPort = 0;
  const seen: Array<{ url: string; authorization?: string }> = [];
  let caPath = "";

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "egress-node-custody-"));
    bundle = await bundleForNode(join(import.meta.dir, "../../../../lib/gates/egress/daemon/main.ts"), dir);
    const ca = makeTestCa();
    caPath = ca.caPath;
    const { cert, key } = ca.issue(["localhost"]);
    upstream = https.createServer({ cert, key }, (req, res) => {
      seen.push({ url: req.url ?? "", ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first\n");
      setTimeout(() => res.end(`echo ${req.headers.authorization ?? ""}\n`), 50);
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", () => resolve()));
    upstreamPort = (upstream.address() as net.AddressInfo).port;
  });

  afterAll(() => {
    upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("Claude Code's route and a credential route, with the real token only upstream", async () => {
    const [proxyPort, dnsPort, routePort] = await Promise.all([freePort(), freePort(), freePort()]);
    const credentials = join(dir, "credentials.json");
    writeFileSync(credentials, JSON.stringify({ CLAUDE_CODE_OAUTH_TOKEN: TOKEN, GH_TOKEN: GH }), { mode: 0o600 });
    const auditLog = join(dir, "audit.jsonl");
    const config: EgressConfig = {
      bottle: "nodecustody",
      proxyPort,
      dnsPort,
      listen: ["127.0.0.1"],
      allow: [`localhost:${upstreamPort}`],
      allowPrivate: ["127.0.0.1/32", "::1/128"],
      auditLog,
      limits: { requestsPerMinute: 100, bytesOut: 0, idleTimeoutMs: 5000, maxTunnelMs: 60_000, maxLogBytes: 0 },
      hostAddresses: [],
      credentialsFile: credentials,
      tlsDir: join(dir, "tls"),
      routes: [{ host: "localhost", port: upstreamPort, header: "Authorization", scheme: "Bearer", credential: "GH_TOKEN", paths: ["/repos/acme/"], methods: [] }],
      anthropic: { port: routePort, prefix: "/anthropic", upstream: `https://localhost:${upstreamPort}`, credential: "CLAUDE_CODE_OAUTH_TOKEN", kind: "oauth" },
    };
    const configPath = join(dir, "egress.json");
    writeFileSync(configPath, JSON.stringify(config));
    const { child, output } = spawnCollecting([node ?? "node", bundle, configPath], { ...process.env, NODE_EXTRA_CA_CERTS: caPath });
    try {
      await waitFor(() => output.stdout.includes(EGRESS_READY_LINE) || child.exitCode !== null, 15_000);
      expect(output.stderr).toBe("");
      const response = await fetch(`http://127.0.0.1:${routePort}/anthropic/v1/messages?beta=true`, {
        method: "POST",
        headers: { authorization: "Bearer bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN" },
        body: "{}",
      });
      expect(await response.text()).toBe("first\necho Bearer bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN\n");
      expect(seen.at(-1)).toEqual({ url: "/v1/messages?beta=true", authorization: `Bearer ${TOKEN}` });

      // The credential route through the proxy; the gate's CA is in its tls dir, and its ready line carries it (for the bottle to trust).
      const gateCa = await Bun.file(join(dir, "tls", "ca.pem")).text();
      expect(readyLineCa(output.stdout)).toBe(gateCa);
      const socket = net.connect({ host: "127.0.0.1", port: proxyPort });
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.write(`CONNECT localhost:${upstreamPort} HTTP/1.1\r\nHost: localhost:${upstreamPort}\r\n\r\n`);
      await new Promise((resolve) => socket.once("data", resolve));
      const secure = tls.connect({ socket, servername: "localhost", ca: gateCa });
      await new Promise((resolve, reject) => {
        secure.once("secureConnect", resolve);
        secure.once("error", reject);
      });
      secure.write(`GET /repos/acme/x HTTP/1.1\r\nHost: localhost:${upstreamPort}\r\nAuthorization: Bearer bottle-placeholder-GH_TOKEN\r\nConnection: close\r\n\r\n`);
      let out = "";
      secure.on("data", (chunk: Buffer) => (out += chunk.toString()));
      await new Promise((resolve) => secure.on("close", resolve));
      expect(out).toContain("echo Bearer bottle-placeholder-GH_TOKEN");
      expect(out).not.toContain(GH);
      expect(seen.at(-1)).toEqual({ url: "/repos/acme/x", authorization: `Bearer ${GH}` });
      await waitFor(() => readAudit(auditLog).filter((line) => line.auth).length === 2);
      expect(readAudit(auditLog).filter((line) => line.auth).map((line) => line.auth)).toEqual(["injected (CLAUDE_CODE_OAUTH_TOKEN)", "injected (GH_TOKEN)"]);
      child.kill("SIGTERM");
      expect(await child.exited).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
    expect(output.stderr).not.toContain("unexpected");
  }, 30_000);
});
