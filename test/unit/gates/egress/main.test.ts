/**
 * Bundles the gate exactly like the build does (Bun.build, target node, ESM)
 * and runs it under the host's `node` (the gate image runs Node 20): ready
 * line, a refusal, SIGHUP reload, DNS, SIGTERM. Skipped when there is no node.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as dgram from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import type { EgressConfig } from "../../../../lib/gates/egress/daemon/config-schema.ts";
import { EGRESS_READY_LINE, readyLineAddresses } from "../../../../lib/gates/egress/daemon/ready-line.ts";
import { QTYPE, RCODE, decodeResponse, encodeQuery } from "../../../../lib/gates/egress/daemon/dns.ts";
import { bodyOf, bundleForNode, freePort, rawRequest, readAudit, spawnCollecting, startUpstream, statusOf, type Upstream, waitFor } from "./helpers.ts";

const node = Bun.which("node");

describe.skipIf(!node)("bundled gate under node", () => {
  let dir: string;
  let bundle: string;
  let origin: Upstream;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "egress-main-"));
    bundle = await bundleForNode(join(import.meta.dir, "../../../../lib/gates/egress/daemon/main.ts"), dir);
    origin = await startUpstream();
  });

  afterAll(async () => {
    await origin.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("only node:* imports in the bundle", async () => {
    const text = await Bun.file(bundle).text();
    const imports = [...text.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1] ?? "");
    expect(imports.length).toBeGreaterThan(0);
    for (const name of imports) expect(name.startsWith("node:")).toBe(true);
    expect(text).not.toContain("Bun.");
    // An ES import of node:http makes Node read all its exports, and the lazy
    // WebSocket one loads crypto, tls and http2: ~40 ms of every gate's start.
    // Custody loads node:http and node:tls itself, when it runs.
    expect(imports).not.toContain("node:http");
    expect(imports).not.toContain("node:tls");
    expect(imports).not.toContain("node:https");
  });

  test("the gate under node does not load node:http or node:tls until custody needs them", async () => {
    const configPath = join(dir, "lean.json");
    const config: EgressConfig = {
      bottle: "lean",
      proxyPort: await freePort(),
      dnsPort: await freePort(),
      listen: ["127.0.0.1"],
      allow: [],
      allowPrivate: [],
      auditLog: join(dir, "lean.jsonl"),
      limits: { requestsPerMinute: 100, bytesOut: 0, idleTimeoutMs: 5000, maxTunnelMs: 60_000, maxLogBytes: 0 },
      hostAddresses: [],
    };
    writeFileSync(configPath, JSON.stringify(config));
    // A preload that reports the loaded builtins once the gate is ready.
    const probe = join(dir, "loaded.cjs");
    writeFileSync(probe, `process.on("SIGUSR2", () => { process.stderr.write("LOADED " + process.moduleLoadList.join(",") + "\\n"); });\n`);
    const { child, output } = spawnCollecting([node ?? "node", "--require", probe, bundle, configPath]);
    try {
      await waitFor(() => output.stdout.includes(EGRESS_READY_LINE), 10_000);
      child.kill("SIGUSR2");
      await waitFor(() => output.stderr.includes("LOADED "), 5000);
      const loaded = output.stderr.slice(output.stderr.indexOf("LOADED ")).split(",");
      expect(loaded).toContain("NativeModule net");
      expect(loaded).not.toContain("NativeModule http");
      expect(loaded).not.toContain("NativeModule tls");
      expect(loaded).not.toContain("NativeModule http2");
    } finally {
      child.kill("SIGKILL");
    }
  });

  test("ready line, refusal, SIGHUP reload, DNS, SIGTERM", async () => {
    const proxyPort = await freePort();
    const dnsPort = await freePort();
    const configPath = join(dir, "egress.json");
    const auditLog = join(dir, "audit.jsonl");
    const config: EgressConfig = {
      bottle: "nodebottle",
      proxyPort,
      dnsPort,
      listen: ["127.0.0.1"],
      allow: ["allowed.test"],
      allowPrivate: ["127.0.0.1/32"],
      auditLog,
      limits: { requestsPerMinute: 100, bytesOut: 0, idleTimeoutMs: 5000, maxTunnelMs: 60_000, maxLogBytes: 0 },
      hostAddresses: [],
    };
    writeFileSync(configPath, JSON.stringify(config));
    const { child, output } = spawnCollecting([node ?? "node", bundle, configPath]);
    try {
      await waitFor(() => output.stdout.includes("\n"), 10_000);
      // The ready line names the machine's IPv4 addresses, loopback left out (the launch picks the gate's egress one).
      const own = Object.values(networkInterfaces())
        .flat()
        .filter((info) => info && info.family === "IPv4" && !info.internal)
        .map((info) => info!.address);
      expect(output.stdout).toBe(`${[EGRESS_READY_LINE, ...own].join(" ")}\n`);
      expect(readyLineAddresses(output.stdout)).toEqual(own);

      const url = `http://127.0.0.1:${origin.port}/`;
      const request = `GET ${url} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`;
      const refused = await rawRequest(proxyPort, request);
      expect(statusOf(refused)).toBe(403);
      expect(bodyOf(refused)).toContain("(rule: ip-literal)");
      expect(bodyOf(refused)).toContain(`bottle allow nodebottle 127.0.0.1:${origin.port}`);
      // The WHATWG number forms are IP literals under Node too.
      const numeric = await rawRequest(proxyPort, `GET http://2130706433:${origin.port}/ HTTP/1.1\r\n\r\n`);
      expect(bodyOf(numeric)).toContain("127.0.0.1 is an IP address");

      writeFileSync(configPath, JSON.stringify({ ...config, allow: [`127.0.0.1:${origin.port}`] }));
      child.kill("SIGHUP");
      await waitFor(() => output.stderr.includes("configuration reloaded"), 5_000);
      const allowed = await rawRequest(proxyPort, request);
      expect(statusOf(allowed)).toBe(200);
      expect(bodyOf(allowed)).toBe("hello");

      const answer = await new Promise<Buffer>((resolve, reject) => {
        const socket = dgram.createSocket("udp4");
        const timer = setTimeout(() => reject(new Error("dns timeout")), 3000);
        socket.on("message", (message) => {
          clearTimeout(timer);
          socket.close();
          resolve(message);
        });
        socket.send(encodeQuery("exfil-data.evil.test", QTYPE.TXT), dnsPort, "127.0.0.1");
      });
      expect(decodeResponse(answer).rcode).toBe(RCODE.NXDOMAIN);

      // The second, identical ip-literal denial is counted, not listed at once (denials.ts)…
      await waitFor(() => readAudit(auditLog).length === 3);
      expect(readAudit(auditLog).map((line) => line.rule)).toEqual(["ip-literal", "allowlist", "dns-not-allowed"]);

      child.kill("SIGTERM");
      expect(await child.exited).toBe(0);
      // …and written when the gate stops, before its interval is up.
      expect(readAudit(auditLog).map((line) => line.rule)).toEqual(["ip-literal", "allowlist", "dns-not-allowed", "ip-literal"]);
    } finally {
      child.kill("SIGKILL");
    }
    expect(output.stderr).not.toContain("unexpected");
  });

  test("a bad config exits non-zero with the reason on stderr", async () => {
    const configPath = join(dir, "bad.json");
    writeFileSync(configPath, JSON.stringify({ bottle: "x" }));
    const child = Bun.spawn([node ?? "node", bundle, configPath], { stdout: "pipe", stderr: "pipe" });
    expect(await child.exited).toBe(1);
    const stderr = await new Response(child.stderr).text();
    expect(stderr).toContain("limits: expected an object");
  });
});
