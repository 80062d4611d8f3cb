/**
 * Test helpers for the egress gate: local upstream servers, a captured real
 * TLS ClientHello, a gate started on 127.0.0.1 random ports with an injected
 * resolver, and raw-socket clients. Nothing here talks to a non-loopback
 * address.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as dgram from "node:dgram";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import type { AuditRecord } from "../../../../lib/gates/egress/daemon/audit.ts";
import type { EgressConfig } from "../../../../lib/gates/egress/daemon/config-schema.ts";
import { EgressGate, type EgressGateOptions } from "../../../../lib/gates/egress/daemon/gate.ts";
import type { Resolver } from "../../../../lib/gates/egress/daemon/state.ts";

/** Builds a minimal ClientHello with the given extensions. */
export function buildHello(extensions: Buffer[]): Buffer {
  const ext = Buffer.concat(extensions);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32, 7),
    Buffer.from([0]), // session id
    Buffer.from([0x00, 0x02, 0x13, 0x01]), // one cipher suite
    Buffer.from([0x01, 0x00]), // null compression
    Buffer.from([ext.length >> 8, ext.length & 0xff]),
    ext,
  ]);
  const handshake = Buffer.concat([Buffer.from([0x01, 0, body.length >> 8, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01, handshake.length >> 8, handshake.length & 0xff]), handshake]);
}

/** A server_name extension listing `names` as host_names. */
export function sniExtension(...names: string[]): Buffer {
  const entries = Buffer.concat(
    names.map((name) => {
      const bytes = Buffer.from(name, "latin1");
      return Buffer.concat([Buffer.from([0, bytes.length >> 8, bytes.length & 0xff]), bytes]);
    }),
  );
  const list = Buffer.concat([Buffer.from([entries.length >> 8, entries.length & 0xff]), entries]);
  return Buffer.concat([Buffer.from([0, 0, list.length >> 8, list.length & 0xff]), list]);
}

/** An encrypted_client_hello extension (0xfe0d), outer variant: its payload is opaque to the gate. */
export function echExtension(): Buffer {
  // type outer (0), cipher suite HKDF-SHA256/AES-128-GCM, config id, empty enc, 16 bytes of "encrypted" payload.
  const body = Buffer.concat([Buffer.from([0x00, 0x00, 0x01, 0x00, 0x01, 0x2a, 0x00, 0x00, 0x00, 0x10]), Buffer.alloc(16, 0xee)]);
  return Buffer.concat([Buffer.from([0xfe, 0x0d, body.length >> 8, body.length & 0xff]), body]);
}

/** Captures the ClientHello a real TLS client (node:tls) sends for `servername`. */
export async function captureClientHello(servername: string | null): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => {
      let buf = Buffer.alloc(0);
      socket.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 5) return;
        const length = buf.readUInt16BE(3);
        if (buf.length >= 5 + length) {
          socket.destroy();
          server.close();
          resolve(buf);
        }
      });
      socket.on("error", () => undefined);
    });
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      const options: tls.ConnectionOptions = { host: "127.0.0.1", port, rejectUnauthorized: false };
      if (servername !== null) options.servername = servername;
      const client = tls.connect(options);
      client.on("error", () => undefined);
    });
  });
}

export interface Upstream {
  port: number;
  /** Raw bytes received, one Buffer per connection. */
  received: Buffer[];
  connections: number;
  close(): Promise<void>;
}

/**
 * A tiny HTTP/1.1 origin: records what it receives and answers each request
 * head with `respond(headText)` (default: 200 "hello"). With `raw`, it never
 * answers and just records bytes (a TLS-ish sink for CONNECT tests); with
 * `tls`, it speaks HTTPS.
 */
export async function startUpstream(
  options: { respond?: (head: string, body: Buffer) => Buffer | string; raw?: boolean; greeting?: string; tls?: { cert: string; key: string } } = {},
): Promise<Upstream> {
  const received: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const state = { connections: 0 };
  const onConnection = (socket: net.Socket): void => {
    state.connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    const index = received.length;
    received.push(Buffer.alloc(0));
    if (options.greeting) socket.write(options.greeting);
    socket.on("data", (chunk: Buffer) => {
      const all = Buffer.concat([received[index] ?? Buffer.alloc(0), chunk]);
      received[index] = all;
      if (options.raw) return;
      const end = all.indexOf("\r\n\r\n");
      if (end === -1) return;
      const head = all.subarray(0, end + 4).toString("latin1");
      const lengthMatch = /\r\ncontent-length: *([0-9]+)/i.exec(head);
      const bodyLength = lengthMatch ? Number(lengthMatch[1]) : 0;
      const chunked = /\r\ntransfer-encoding: *chunked/i.test(head);
      const body = all.subarray(end + 4);
      const chunkedDone = /(^|\r\n)0(;[^\r]*)?\r\n([^\r]+\r\n)*\r\n/.test(body.toString("latin1"));
      if (chunked ? !chunkedDone : body.length < bodyLength) return;
      if (socket.writableEnded) return;
      const answer = options.respond ? options.respond(head, body) : "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nhello";
      socket.end(answer);
    });
    socket.on("end", () => {
      if (!socket.writableEnded && options.raw) socket.end();
    });
  };
  // With `tls`, the same origin behind TLS (a credential route's upstream).
  const server = options.tls ? tls.createServer({ ...options.tls, allowHalfOpen: true }, onConnection) : net.createServer({ allowHalfOpen: true }, onConnection);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    received,
    get connections() {
      return state.connections;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface TestGate {
  gate: EgressGate;
  port: number;
  dir: string;
  configPath: string;
  auditPath: string;
  resolverCalls: string[];
  audit(): AuditRecord[];
  close(): Promise<void>;
}

export function baseConfig(dir: string, overrides: Partial<EgressConfig> = {}): EgressConfig {
  return {
    bottle: "testbottle",
    proxyPort: 0,
    dnsPort: 0,
    listen: ["127.0.0.1"],
    allow: [],
    allowPrivate: [],
    auditLog: join(dir, "audit.jsonl"),
    limits: { requestsPerMinute: 0, bytesOut: 0, idleTimeoutMs: 10_000, maxTunnelMs: 60_000, maxLogBytes: 0 },
    hostAddresses: [],
    ...overrides,
  };
}

/** A resolver backed by a fixed table; records every name it is asked for. */
export function tableResolver(table: Record<string, string[]>, calls: string[]): Resolver {
  return async (host) => {
    calls.push(host);
    const addresses = table[host];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    return addresses;
  };
}

export async function startGate(
  overrides: Partial<EgressConfig>,
  table: Record<string, string[]>,
  options: Omit<EgressGateOptions, "config" | "configPath"> = {},
): Promise<TestGate> {
  const dir = mkdtempSync(join(tmpdir(), "egress-test-"));
  const config = baseConfig(dir, overrides);
  const configPath = join(dir, "egress.json");
  writeFileSync(configPath, JSON.stringify(config));
  const resolverCalls: string[] = [];
  const errors: string[] = [];
  const custom = options.resolve;
  let gate: EgressGate | undefined;
  try {
    gate = new EgressGate({
      configPath,
      logError: (message) => errors.push(message),
      ...options,
      resolve: custom
        ? (host) => {
            resolverCalls.push(host);
            return custom(host);
          }
        : tableResolver(table, resolverCalls),
    });
    await gate.start();
  } catch (error) {
    // A gate that does not start leaves nothing behind either.
    await gate?.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    gate,
    port: gate.ports().proxy,
    dir,
    configPath,
    auditPath: config.auditLog,
    resolverCalls,
    audit: () => readAudit(config.auditLog),
    close: async () => {
      await gate.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function readAudit(path: string): AuditRecord[] {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as AuditRecord);
}

/** One DNS query over UDP to the gate; its answer. */
export function udpAsk(port: number, packet: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4");
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error("udp timeout"));
    }, 2000);
    socket.on("message", (message) => {
      clearTimeout(timer);
      socket.close();
      resolve(message);
    });
    socket.send(packet, port, "127.0.0.1");
  });
}

/** Sends raw bytes to the proxy and collects everything until the proxy closes (or `timeoutMs`). */
export async function rawRequest(port: number, data: string | Buffer, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString("latin1"));
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("end", done);
    socket.on("close", done);
    socket.on("error", done);
    socket.write(data);
  });
}

export interface Tunnel {
  socket: net.Socket;
  /** The proxy's reply to CONNECT (status line + headers). */
  reply: string;
  /** Bytes received after the reply. */
  data(): Buffer;
  closed: Promise<void>;
}

/** Opens a CONNECT tunnel; resolves once the proxy's reply head arrived (or the socket closed). */
export async function openTunnel(port: number, authority: string, extraHeaders = ""): Promise<Tunnel> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let buf = Buffer.alloc(0);
    let reply: string | null = null;
    let after = Buffer.alloc(0);
    let resolveClosed: () => void = () => undefined;
    const closed = new Promise<void>((r) => {
      resolveClosed = r;
    });
    const tunnel = (): Tunnel => ({ socket, reply: reply ?? buf.toString("latin1"), data: () => after, closed });
    socket.on("data", (chunk: Buffer) => {
      if (reply !== null) {
        after = Buffer.concat([after, chunk]);
        return;
      }
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf("\r\n\r\n");
      if (end === -1) return;
      reply = buf.subarray(0, end + 4).toString("latin1");
      after = Buffer.from(buf.subarray(end + 4));
      resolve(tunnel());
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      resolveClosed();
      if (reply === null) resolve(tunnel());
    });
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${extraHeaders}\r\n`);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it is true (or fails after `timeoutMs`). */
export async function waitFor(check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error("timed out waiting");
    await sleep(10);
  }
}

export function bodyOf(response: string): string {
  const end = response.indexOf("\r\n\r\n");
  return end === -1 ? "" : response.slice(end + 4);
}

export function statusOf(response: string): number {
  const match = /^HTTP\/1\.[01] ([0-9]{3})/.exec(response);
  return match ? Number(match[1]) : 0;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for a daemon the test starts). */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Bundles `entry` for Node as the build does (Bun.build, target node, ESM) into `dir`; returns the bundle's path. */
export async function bundleForNode(entry: string, dir: string, naming = "egress-gate.mjs"): Promise<string> {
  const result = await Bun.build({ entrypoints: [entry], target: "node", format: "esm", outdir: dir, naming });
  if (!result.success) throw new Error(result.logs.map(String).join("\n"));
  return join(dir, naming);
}

/** Starts `argv` with its stdout and stderr collected into `output` as they come. */
export function spawnCollecting(argv: string[], env?: Record<string, string | undefined>): { child: Bun.Subprocess<"ignore", "pipe", "pipe">; output: { stdout: string; stderr: string } } {
  const child = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", ...(env ? { env } : {}) });
  const output = { stdout: "", stderr: "" };
  const collect = async (stream: ReadableStream<Uint8Array>, key: "stdout" | "stderr"): Promise<void> => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) output[key] += decoder.decode(chunk, { stream: true });
  };
  void collect(child.stdout, "stdout");
  void collect(child.stderr, "stderr");
  return { child, output };
}

/** The body of a chunked message (its head already cut off). */
export function dechunk(body: string): string {
  let rest = body;
  let out = "";
  for (;;) {
    const line = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, line), 16);
    if (!(size > 0)) return out;
    out += rest.slice(line + 2, line + 2 + size);
    rest = rest.slice(line + 2 + size + 2);
  }
}
