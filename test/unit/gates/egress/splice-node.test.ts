/**
 * bottle-splice taking over bulk downloads, in the gate under Node (what the
 * gate image runs) with the real helper compiled from assets/bottle-splice.c:
 * bytes arrive whole and in order, both directions of a tunnel keep flowing,
 * the audit counts stay exact, small responses never spawn it, and the
 * gate's limits still end a spliced connection with no copier left behind.
 * Skipped without node or a C compiler.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EgressConfig } from "../../../../lib/gates/egress/daemon/config-schema.ts";
import { EGRESS_READY_LINE } from "../../../../lib/gates/egress/daemon/ready-line.ts";
import { baseConfig, bundleForNode, freePort, readAudit, spawnCollecting, waitFor } from "./helpers.ts";

const node = Bun.which("node");
const cc = Bun.which("cc") ?? Bun.which("gcc") ?? Bun.which("tcc");
const MB = 1 << 20;

/** `size` bytes where every 4-byte word is its own index: a lost, repeated or reordered chunk shows. */
function pattern(size: number, seed = 0): Buffer {
  const buf = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) buf.writeUInt32BE((i / 4 + seed) >>> 0, i);
  return buf;
}

describe.skipIf(!node || !cc)("bulk downloads through bottle-splice in the gate under node", () => {
  let dir: string;
  let bundle: string;
  let helper: string;
  /** The compiled helper itself, for the tests that drive it without a gate. */
  let real: string;
  let spawnLog: string;
  let httpServer: http.Server;
  let httpPort = 0;
  let rawServer: net.Server;
  let rawPort = 0;
  /** What the raw server received per connection (the tunnel's upload). */
  const rawReceived: Buffer[] = [];
  const BIG = pattern(8 * MB);
  const UP = pattern(3 * MB, 7);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "egress-splice-"));
    real = join(dir, "bottle-splice");
    const built = Bun.spawnSync([cc ?? "cc", "-Wall", "-Werror", "-o", real, join(import.meta.dir, "../../../../assets/bottle-splice.c")], { stderr: "pipe" });
    if (built.exitCode !== 0) throw new Error(`cc: ${built.stderr.toString()}`);
    // A wrapper that logs each spawn's pid; exec keeps the pid and the parent the helper checks.
    spawnLog = join(dir, "spawned");
    helper = join(dir, "helper.sh");
    writeFileSync(helper, `#!/bin/sh\necho $$ >> '${spawnLog}'\nexec '${real}' "$@"\n`);
    chmodSync(helper, 0o755);
    bundle = await bundleForNode(join(import.meta.dir, "splice-gate-entry.ts"), dir);

    httpServer = http.createServer((req, res) => {
      const size = Number(new URL(req.url ?? "/", "http://x").searchParams.get("bytes") ?? BIG.length);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(size) });
      if (size <= 2 * MB) return void res.end(BIG.subarray(0, size));
      // A pause after 2 MB, as a real upstream has now and then: the gate gets a quiet moment with
      // nothing in flight to hand over in. Without one, a fast sender and a slow reader may never
      // give it one before the end, and the download (rightly) stays in Node.js.
      res.write(BIG.subarray(0, 2 * MB));
      setTimeout(() => res.end(BIG.subarray(2 * MB, size)), 300);
    });
    await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", () => resolve()));
    httpPort = (httpServer.address() as net.AddressInfo).port;

    // The tunnel's far end: records the upload; sends BIG once it has the first bytes ("stall",
    // "deaf": only 2 MB) and ends its side when the client has ended its own.
    rawServer = net.createServer({ allowHalfOpen: true }, (socket) => {
      const index = rawReceived.push(Buffer.alloc(0)) - 1;
      let started = false;
      socket.on("error", () => undefined);
      socket.on("end", () => socket.end());
      socket.on("data", (chunk: Buffer) => {
        rawReceived[index] = Buffer.concat([rawReceived[index] ?? Buffer.alloc(0), chunk]);
        if (started) return;
        started = true;
        const first = chunk.toString("latin1");
        socket.write(first.startsWith("stall") || first.startsWith("deaf") ? BIG.subarray(0, 2 * MB) : BIG);
        // "deaf": never reads again, so the gate's writes upstream fill every buffer on the way.
        if (first.startsWith("deaf")) socket.pause();
      });
    });
    await new Promise<void>((resolve) => rawServer.listen(0, "127.0.0.1", () => resolve()));
    rawPort = (rawServer.address() as net.AddressInfo).port;
  });

  afterAll(() => {
    httpServer?.close();
    rawServer?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const spawned = (): number[] => {
    try {
      return readFileSync(spawnLog, "utf8").trim().split("\n").filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  async function withGate(
    limits: Partial<EgressConfig["limits"]>,
    body: (port: number, auditPath: string) => Promise<void>,
    copiers: { helper?: string; maxRunning?: number } = {},
  ): Promise<void> {
    rmSync(spawnLog, { force: true });
    const gateDir = mkdtempSync(join(dir, "gate-"));
    const [proxyPort, dnsPort] = await Promise.all([freePort(), freePort()]);
    const base = baseConfig(gateDir);
    const config: EgressConfig = {
      ...base,
      proxyPort,
      dnsPort,
      allow: [`localhost:${httpPort}`, `localhost:${rawPort}`],
      allowPrivate: ["127.0.0.1/32"],
      limits: { ...base.limits, ...limits },
    };
    const configPath = join(gateDir, "egress.json");
    writeFileSync(configPath, JSON.stringify(config));
    const argv = [node ?? "node", bundle, configPath, copiers.helper ?? helper, String(MB), String(copiers.maxRunning ?? 64)];
    const { child, output } = spawnCollecting(argv);
    try {
      await waitFor(() => output.stdout.includes(EGRESS_READY_LINE) || child.exitCode !== null, 15_000);
      expect(child.exitCode).toBeNull();
      await body(proxyPort, config.auditLog);
    } finally {
      child.kill();
      await child.exited;
    }
  }

  /** Sends `request` to the proxy; resolves with everything received until the gate closes. */
  function exchange(port: number, request: string, then?: (socket: net.Socket) => void): Promise<Buffer> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
      const chunks: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      socket.on("error", () => undefined); // a connection the gate ends by force is reset: still "closed"
      // Half-open until the gate ends its side: a tunnel may still upload after its download ended.
      socket.on("end", () => socket.end());
      socket.on("close", () => resolve(Buffer.concat(chunks)));
      socket.on("connect", () => {
        socket.write(request);
        then?.(socket);
      });
    });
  }
  const bodyAfterHead = (response: Buffer): Buffer => response.subarray(response.indexOf("\r\n\r\n") + 4);
  const tunnelTo = (): string => `CONNECT localhost:${rawPort} HTTP/1.1\r\nHost: localhost:${rawPort}\r\n\r\n`;

  /** A tunnel whose far end got `first` ("stall", "deaf"): resolves with the client's socket once the 2 MB it sends arrived. */
  function heldTunnel(port: number, first: string): Promise<net.Socket> {
    return new Promise((resolve) => {
      let got = 0;
      void exchange(port, tunnelTo(), (socket) => {
        socket.once("data", () => socket.write(first));
        socket.on("data", (chunk: Buffer) => {
          got += chunk.length;
          if (got >= 2 * MB) resolve(socket);
        });
      });
    });
  }

  test("the copier reports its total at most every 100 ms, and a total left when the source goes quiet within 100 ms", async () => {
    const entry = await bundleForNode(join(import.meta.dir, "splice-reports-entry.ts"), dir, "splice-reports.mjs");
    // 20 bursts of 256 KB, 20 ms apart: the copy waits for its source after every one.
    const run = Bun.spawnSync([node ?? "node", entry, real, "20", String(256 * 1024), "20", "600"], { stdout: "pipe", stderr: "pipe" });
    expect(run.stderr.toString()).toBe("");
    const { sent, received, lastWrite, reports } = JSON.parse(run.stdout.toString()) as {
      sent: number;
      received: number;
      lastWrite: number;
      reports: { at: number; total: number }[];
    };
    expect(received).toBe(sent);
    // One report per 100 ms at most (plus the first and the one after the last burst), not one per wait.
    expect(reports.length).toBeGreaterThan(0);
    expect(reports.length).toBeLessThanOrEqual(Math.ceil(lastWrite / 100) + 2);
    const last = reports.at(-1);
    expect(last?.total).toBe(sent);
    // With no EOF and no more bytes, the last total still arrives once its 100 ms are up (slack for a busy machine).
    expect(last?.at ?? Infinity).toBeLessThan(lastWrite + 400);
    expect(reports.map((r) => r.total)).toEqual([...reports.map((r) => r.total)].sort((a, b) => a - b));
  }, 30_000);

  test("a plain HTTP download is handed over once bulky, and arrives whole, in order and counted", async () => {
    await withGate({}, async (port, auditPath) => {
      const response = await exchange(port, `GET http://localhost:${httpPort}/ HTTP/1.1\r\nHost: localhost:${httpPort}\r\n\r\n`);
      expect(response.toString("latin1", 0, 12)).toBe("HTTP/1.1 200");
      expect(bodyAfterHead(response).equals(BIG)).toBe(true);
      await waitFor(() => readAudit(auditPath).length === 1);
      const [line] = readAudit(auditPath);
      expect(line).toMatchObject({ method: "GET", decision: "allow", status: 200, end: "closed" });
      // The gate counts the upstream's whole response: its head (which it rewrote) and the body.
      expect(line?.bytesIn).toBeGreaterThan(BIG.length);
      expect(line?.bytesIn).toBeLessThan(BIG.length + 512);
      expect(spawned()).toHaveLength(1);
      await waitFor(() => spawned().every((pid) => !alive(pid)));
    });
  }, 30_000);

  test("a small response never spawns the copier", async () => {
    await withGate({}, async (port, auditPath) => {
      const response = await exchange(port, `GET http://localhost:${httpPort}/?bytes=100000 HTTP/1.1\r\nHost: localhost:${httpPort}\r\n\r\n`);
      expect(bodyAfterHead(response).equals(BIG.subarray(0, 100_000))).toBe(true);
      await waitFor(() => readAudit(auditPath).length === 1);
      expect(spawned()).toEqual([]);
    });
  }, 30_000);

  test("without a helper to run, a bulk download stays in Node and still arrives whole", async () => {
    await withGate(
      {},
      async (port, auditPath) => {
        const response = await exchange(port, `GET http://localhost:${httpPort}/ HTTP/1.1\r\nHost: localhost:${httpPort}\r\n\r\n`);
        expect(bodyAfterHead(response).equals(BIG)).toBe(true);
        await waitFor(() => readAudit(auditPath).length === 1);
        expect(readAudit(auditPath)[0]).toMatchObject({ decision: "allow", status: 200, end: "closed" });
      },
      { helper: join(dir, "no-such-helper") },
    );
  }, 30_000);

  test("past the gate's limit of copiers at once, a bulk download stays in Node and still arrives whole", async () => {
    await withGate(
      {},
      async (port) => {
        const held = await heldTunnel(port, "stall");
        expect(spawned()).toHaveLength(1);
        const response = await exchange(port, `GET http://localhost:${httpPort}/ HTTP/1.1\r\nHost: localhost:${httpPort}\r\n\r\n`);
        expect(bodyAfterHead(response).equals(BIG)).toBe(true);
        expect(spawned()).toHaveLength(1);
        held.destroy();
      },
      { maxRunning: 1 },
    );
  }, 30_000);

  test("a tunnel keeps uploading through the gate while its download is spliced; both counts are exact", async () => {
    await withGate({}, async (port, auditPath) => {
      const connect = tunnelTo();
      const response = await exchange(port, connect, (socket) => {
        socket.once("data", () => {
          // The first upload bytes start the download; the rest goes up while it streams down.
          socket.write(UP.subarray(0, 64 * 1024));
          setTimeout(() => socket.end(UP.subarray(64 * 1024)), 50);
        });
      });
      const down = bodyAfterHead(response);
      expect(down.length).toBe(BIG.length);
      expect(down.equals(BIG)).toBe(true);
      await waitFor(() => readAudit(auditPath).length === 1);
      expect(rawReceived.at(-1)?.equals(UP)).toBe(true);
      expect(readAudit(auditPath)[0]).toMatchObject({ method: "CONNECT", decision: "allow", bytesIn: BIG.length, bytesOut: UP.length, end: "closed" });
      expect(spawned()).toHaveLength(1);
      await waitFor(() => spawned().every((pid) => !alive(pid)));
    });
  }, 30_000);

  test("the idle timeout still ends a spliced download that stalls, and the copier goes with it", async () => {
    await withGate({ idleTimeoutMs: 400 }, async (port, auditPath) => {
      const connect = tunnelTo();
      const response = await exchange(port, connect, (socket) => socket.once("data", () => socket.write("stall")));
      expect(bodyAfterHead(response).equals(BIG.subarray(0, 2 * MB))).toBe(true);
      await waitFor(() => readAudit(auditPath).length === 1);
      expect(readAudit(auditPath)[0]).toMatchObject({ decision: "allow", end: "idle-timeout", bytesIn: 2 * MB });
      expect(spawned()).toHaveLength(1);
      await waitFor(() => spawned().every((pid) => !alive(pid)));
    });
  }, 30_000);

  test("the byte budget still ends a tunnel whose download is spliced", async () => {
    await withGate({ bytesOut: MB }, async (port, auditPath) => {
      const connect = tunnelTo();
      await exchange(port, connect, (socket) =>
        socket.once("data", () => {
          socket.write("stall");
          // Well after the hand-over: 2 MB more up than the budget allows.
          setTimeout(() => socket.write(UP.subarray(0, 2 * MB)), 200);
        }),
      );
      await waitFor(() => readAudit(auditPath).length === 1);
      const [line] = readAudit(auditPath);
      expect(line).toMatchObject({ decision: "allow", end: "bytes-out-limit" });
      expect(line?.bytesOut).toBeLessThanOrEqual(MB);
      expect((rawReceived.at(-1) ?? Buffer.alloc(0)).length).toBeLessThanOrEqual(MB);
      expect(spawned()).toHaveLength(1);
      await waitFor(() => spawned().every((pid) => !alive(pid)));
    });
  }, 30_000);

  test("the gate's sockets stay non-blocking: a spliced tunnel whose upstream stops reading stalls nobody else", async () => {
    await withGate({}, async (port) => {
      const deaf = await heldTunnel(port, "deaf");
      expect(spawned()).toHaveLength(1);
      // 32 MB up into an upstream that reads nothing: the gate's writes must wait, not block its event loop.
      deaf.write(pattern(32 * MB));
      await Bun.sleep(300);
      const other = exchange(port, `GET http://localhost:${httpPort}/?bytes=1000 HTTP/1.1\r\nHost: localhost:${httpPort}\r\n\r\n`);
      const stalled = Bun.sleep(5_000).then(() => Buffer.from("the gate stalled"));
      const response = await Promise.race([other, stalled]);
      expect(response.toString("latin1", 0, 16)).toStartWith("HTTP/1.1 200");
      deaf.destroy();
    });
  }, 30_000);

  test("a client that goes away mid-download ends the copier", async () => {
    await withGate({}, async (port, auditPath) => {
      const connect = tunnelTo();
      await exchange(port, connect, (socket) => {
        socket.once("data", () => socket.write("stall"));
        let got = 0;
        socket.on("data", (chunk: Buffer) => {
          got += chunk.length;
          if (got > 1.5 * MB) socket.destroy();
        });
      });
      await waitFor(() => readAudit(auditPath).length === 1);
      expect(readAudit(auditPath)[0]).toMatchObject({ decision: "allow" });
      expect(spawned()).toHaveLength(1);
      await waitFor(() => spawned().every((pid) => !alive(pid)));
    });
  }, 30_000);
});
