/**
 * The gate's DNS responder (UDP and TCP). It never forwards or resolves
 * anything: names outside the allowlist get NXDOMAIN, and names on it are
 * answered locally — A with the gate's own address, every other type with
 * an empty NOERROR. The bottle needs no real address (every connection goes
 * through the proxy, which resolves the name itself when it connects), so no
 * query name ever leaves the gate: not even a subdomain the agent invents
 * under a wildcard allow, which would otherwise reach whoever runs that zone.
 */
import * as dgram from "node:dgram";
import * as net from "node:net";
import { parseIp } from "./addresses.ts";
import type { AuditInput, AuditSink } from "./audit.ts";
import type { Dlp } from "./dlp.ts";
import type { RateLimiter } from "./limits.ts";
import { CLASS_IN, QTYPE, RCODE, decodeQuery, encodeError, encodeResponse, qtypeName } from "./dns.ts";
import { type Policy, normalizeHost } from "./policy.ts";

export interface DnsState {
  readonly policy: Policy;
  readonly dlp: Dlp;
  readonly audit: AuditSink;
  /** Queries per minute, a bucket of their own at the bottle's request rate. */
  readonly rate: RateLimiter;
  readonly dnsPort: number;
  /** The gate's address this responder listens on: the A answer for allowed names (a direct connection then fails fast at the gate). */
  readonly address: string;
}

export const DNS_TTL = 60;
const MAX_AUDIT_NAME = 253;


/** Answers one DNS message; null means "drop it" (not a query at all). */
export async function answerDns(state: DnsState, packet: Uint8Array, maxSize: number): Promise<Buffer | null> {
  const started = Date.now();
  const decoded = decodeQuery(packet);
  if (!decoded.ok) {
    if (decoded.id === null) return null;
    return encodeError(decoded.id, decoded.opcode, decoded.rd, decoded.rcode);
  }
  const query = decoded.query;
  const { question } = query;
  const qtype = qtypeName(question.qtype);
  const deny = (rule: string, rcode: number, host: string, detail?: string): Buffer => {
    const entry: AuditInput = {
      method: "DNS",
      host: host.slice(0, MAX_AUDIT_NAME),
      port: state.dnsPort,
      decision: "deny",
      rule,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: Date.now() - started,
      qtype,
    };
    if (detail !== undefined) entry.detail = detail;
    state.audit.write(entry);
    return encodeResponse(query, rcode, [], maxSize);
  };
  // Data smuggled in a name (e.g. under an allowed wildcard) is caught before anything is resolved.
  const finding = state.dlp.scan([question.labels.join("."), question.name]);
  if (finding) return deny(finding.rule, RCODE.NXDOMAIN, "<redacted>");
  // The audit line shows the name as printable ASCII only.
  const shownName = question.name.replace(/[^\x21-\x7e]/g, "?");
  // The bottle's request rate holds for DNS too: past it, queries are refused (and counted in the log), not resolved.
  if (!state.rate.take()) return deny("rate-limit", RCODE.REFUSED, shownName);
  if (question.qclass !== CLASS_IN) return deny("dns-not-allowed", RCODE.REFUSED, shownName, "query class is not IN");
  const target = question.wellFormed && question.name !== "" ? normalizeHost(question.name) : null;
  if (!target || target.kind !== "name" || !state.policy.nameAllowed(target.host)) {
    return deny("dns-not-allowed", RCODE.NXDOMAIN, shownName);
  }
  // Answered here, never resolved: the proxy resolves when it connects.
  const own = parseIp(state.address);
  const answers = question.qtype === QTYPE.A && own?.family === 4 ? [{ type: QTYPE.A, ttl: DNS_TTL, data: own.bytes }] : [];
  return encodeResponse(query, RCODE.NOERROR, answers, maxSize);
}

export interface DnsServers {
  udp: dgram.Socket;
  tcp: net.Server;
  udpPort: number;
  tcpPort: number;
  close(): Promise<void>;
}

const TCP_IDLE_MS = 10_000;
const MAX_TCP_CONNECTIONS = 256;

/** Binds the UDP and TCP responders on `listen:port` (port 0: each gets a free port). */
export async function startDns(
  getState: () => DnsState,
  listen: string,
  port: number,
  logError: (message: string) => void,
): Promise<DnsServers> {
  const family = parseIp(listen)?.family === 6 ? "udp6" : "udp4";
  const udp = dgram.createSocket({ type: family });
  udp.on("message", (message, remote) => {
    answerDns(getState(), message, 512)
      .then((response) => {
        if (response) udp.send(response, remote.port, remote.address);
      })
      .catch((error: unknown) => logError(`egress gate: dns: ${error instanceof Error ? error.message : String(error)}`));
  });
  udp.on("error", (error) => logError(`egress gate: dns udp: ${error.message}`));

  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    let buf: Buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const length = buf.readUInt16BE(0);
        if (buf.length < 2 + length) break;
        const message = buf.subarray(2, 2 + length);
        buf = buf.subarray(2 + length);
        answerDns(getState(), Buffer.from(message), 65535)
          .then((response) => {
            if (!response || socket.destroyed) return;
            const prefix = Buffer.alloc(2);
            prefix.writeUInt16BE(response.length);
            socket.write(Buffer.concat([prefix, response]));
          })
          .catch((error: unknown) => logError(`egress gate: dns: ${error instanceof Error ? error.message : String(error)}`));
      }
    });
  });
  tcp.maxConnections = MAX_TCP_CONNECTIONS;
  tcp.on("error", (error) => logError(`egress gate: dns tcp: ${error.message}`));

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    tcp.once("error", onError);
    tcp.listen({ host: listen, port }, () => {
      tcp.removeListener("error", onError);
      resolve();
    });
  });
  const tcpAddress = tcp.address();
  const tcpPort = typeof tcpAddress === "object" && tcpAddress ? tcpAddress.port : port;
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    udp.once("error", onError);
    udp.bind({ address: listen, port }, () => {
      udp.removeListener("error", onError);
      resolve();
    });
  });
  const udpPort = udp.address().port;
  return {
    udp,
    tcp,
    udpPort,
    tcpPort,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await Promise.all([
        new Promise<void>((resolve) => tcp.close(() => resolve())),
        new Promise<void>((resolve) => {
          try {
            udp.close(() => resolve());
          } catch {
            resolve();
          }
        }),
      ]);
    },
  };
}
