/**
 * The SSH gate daemon inside the gate container (bundled for Node.js, run
 * by /etc/bottle/ssh/start after ssh-agent is loaded):
 *   - one TCP forwarder per listed host, on the gate's bottle-network
 *     address, to exactly that host:port (the gate resolves the name); the
 *     server's host key must be the pinned one (hostkey.ts);
 *   - the agent port: each connection is relayed to ssh-agent's unix socket
 *     through the agent-protocol filter (agent-filter.ts).
 * Every connection and every agent decision is one JSON line in ssh.jsonl.
 */
import { BlockList, createServer, connect, isIP, type Server, type Socket } from "node:net";
import { lookup } from "node:dns/promises";
import { CappedLog } from "../../common/capped-log.ts";
import { AgentFilter, signPolicy, type AgentDecision, type SignPolicy } from "./agent-filter.ts";
import type { SshGateConfig } from "./config.ts";
import { GATE_IDENT, HostKeyCheck, HostKeyError, disconnectPacket, fingerprintOf } from "./hostkey.ts";
import { keyBlob } from "./wire.ts";

/** Addresses a listed host may never resolve to: the gate itself, link-local (cloud metadata), multicast. */
const FORBIDDEN = new BlockList();
FORBIDDEN.addSubnet("0.0.0.0", 8, "ipv4");
FORBIDDEN.addSubnet("127.0.0.0", 8, "ipv4");
FORBIDDEN.addSubnet("169.254.0.0", 16, "ipv4");
FORBIDDEN.addSubnet("224.0.0.0", 3, "ipv4");
FORBIDDEN.addAddress("::", "ipv6");
FORBIDDEN.addAddress("::1", "ipv6");
FORBIDDEN.addSubnet("fe80::", 10, "ipv6");
FORBIDDEN.addSubnet("ff00::", 8, "ipv6");

export function forbiddenAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return FORBIDDEN.check(mapped[1]!, "ipv4");
  return FORBIDDEN.check(address, family === 6 ? "ipv6" : "ipv4");
}

/** Longest text from the bottle a log line keeps (after escaping). */
export const MAX_LOGGED_TEXT = 128;

/**
 * Text the bottle chose (a login's user name, its method), for the log: printable ASCII
 * stays; every other character, and the backslash, becomes \xNN (\u{…}
 * past 0xff), so that neither a terminal nor a reader of the log is fooled.
 */
export function printable(text: string): string {
  const escaped = text.replace(/[^\x20-\x5b\x5d-\x7e]/gu, (ch) => {
    const code = ch.codePointAt(0)!;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
  });
  return escaped.length > MAX_LOGGED_TEXT ? `${escaped.slice(0, MAX_LOGGED_TEXT)}…` : escaped;
}

/** ssh.jsonl, kept under the bottle's log cap (opened at the first line). */
function cappedWriter(config: Pick<SshGateConfig, "log" | "maxLogBytes">): (entry: Record<string, unknown>) => void {
  let file: CappedLog | undefined;
  return (entry) => {
    try {
      file ??= new CappedLog(config.log, config.maxLogBytes);
      file.append(`${JSON.stringify(entry)}\n`);
    } catch (error) {
      process.stderr.write(`ssh gate: cannot write ${config.log}: ${(error as Error).message}\n`);
    }
  };
}

export type Resolve = (host: string) => Promise<string[]>;
export const systemResolve: Resolve = async (host) => (await lookup(host, { all: true, verbatim: true })).map((entry) => entry.address);

export interface SshGateOptions {
  config: SshGateConfig;
  /** The address to listen on (the gate's address on the bottle network). */
  address: string;
  resolve?: Resolve;
  /** Whether a listed host may be reached at an address (default: anything but forbiddenAddress). */
  addressAllowed?: (address: string) => boolean;
  /** Connects to the real ssh-agent. */
  connectAgent?: () => Socket;
  log?: (entry: Record<string, unknown>) => void;
}

export class SshGate {
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly resolve: Resolve;
  private readonly addressAllowed: (address: string) => boolean;
  private readonly connectAgent: () => Socket;
  private readonly write: (entry: Record<string, unknown>) => void;
  private readonly policy: SignPolicy;

  constructor(private readonly options: SshGateOptions) {
    this.policy = signPolicy(options.config.hosts);
    this.resolve = options.resolve ?? systemResolve;
    this.addressAllowed = options.addressAllowed ?? ((address) => !forbiddenAddress(address));
    this.connectAgent = options.connectAgent ?? (() => connect(options.config.agentSocket));
    this.write = options.log ?? cappedWriter(options.config);
  }

  private log(entry: Record<string, unknown>): void {
    this.write({ time: new Date().toISOString(), bottle: this.options.config.bottle, ...entry });
  }

  /** Bind every listener; resolves with the bound ports once all listen. */
  async start(): Promise<number[]> {
    const { config, address } = this.options;
    const listeners: Array<[number, (socket: Socket) => void]> = [
      [config.agentPort, (socket) => this.agent(socket)],
      ...config.hosts.map((host): [number, (socket: Socket) => void] => {
        const pinned = keyBlob(host.hostKey);
        return [host.listenPort, (socket) => this.forward(socket, host, pinned)];
      }),
    ];
    return Promise.all(
      listeners.map(
        ([port, handle]) =>
          new Promise<number>((resolve, reject) => {
            const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
              this.sockets.add(socket);
              socket.once("close", () => this.sockets.delete(socket));
              handle(socket);
            });
            this.servers.push(server);
            server.once("error", reject);
            server.listen({ host: address, port, exclusive: true }, () => {
              const bound = server.address();
              resolve(typeof bound === "object" && bound ? bound.port : port);
            });
          }),
      ),
    );
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }

  /** The bottle's agent connection, through the filter. */
  private agent(client: Socket): void {
    let upstream: Socket | undefined;
    let clientEnded = false;
    const closeBoth = () => {
      client.destroy();
      upstream?.destroy();
    };
    /** The bottle stopped sending: close once the agent has answered what it asked. */
    const closeWhenAnswered = () => {
      if (clientEnded && filter.idle) {
        client.end();
        upstream?.destroy();
      }
    };
    const agentSocket = () => {
      if (upstream) return upstream;
      upstream = this.connectAgent();
      this.sockets.add(upstream);
      upstream.on("data", (chunk: Buffer) => {
        filter.agentData(chunk);
        closeWhenAnswered();
      });
      upstream.on("error", (error) => {
        this.log({ event: "agent", decision: "error", detail: `ssh-agent: ${error.message}` });
        closeBoth();
      });
      upstream.on("close", () => {
        this.sockets.delete(upstream!);
        client.destroy();
      });
      return upstream;
    };
    const filter = new AgentFilter(
      {
        toClient: (bytes) => client.write(bytes),
        toAgent: (bytes) => agentSocket().write(bytes),
        decided: (decision) => this.logAgent(decision),
        fail: (reason) => {
          this.log({ event: "agent", decision: "deny", detail: reason });
          closeBoth();
        },
      },
      this.policy,
    );
    client.on("data", (chunk: Buffer) => filter.clientData(chunk));
    client.on("error", () => closeBoth());
    client.on("end", () => {
      clientEnded = true;
      closeWhenAnswered();
    });
    client.on("close", () => upstream?.destroy());
  }

  private logAgent(decision: AgentDecision): void {
    // Listing public keys, and the session-bind ssh sends before every login: not worth a line each.
    if ((decision.allow && decision.request === "request-identities") || (!decision.allow && decision.routine)) return;
    if (decision.allow) this.log({ event: "agent", decision: "allow", request: "sign", user: printable(decision.user), key: `${decision.keyType} ${fingerprintOf(decision.key)}` });
    // The reason may quote the request (a login's method name): escaped like the user.
    else this.log({ event: "agent", decision: "deny", request: decision.request, ...(decision.user === undefined ? {} : { user: printable(decision.user) }), detail: printable(decision.reason) });
  }

  /**
   * One bottle connection to a listed host: resolve, connect, check the host
   * key, pipe, log. Until the host key is checked, server bytes reach the
   * bottle only in whole packets, so that a refusal can still be told to the
   * bottle's ssh as a cleartext DISCONNECT ("Received disconnect …: why").
   */
  private forward(client: Socket, host: SshGateConfig["hosts"][number], pinned: Uint8Array): void {
    const started = Date.now();
    const check = new HostKeyCheck(pinned);
    let upstream: Socket | undefined;
    let address: string | undefined;
    let bytesUp = 0;
    let bytesDown = 0;
    /** Server bytes passed to the bottle, and those held back (an incomplete packet) while the check runs. */
    let released = 0;
    let held: Buffer = Buffer.alloc(0);
    let outcome: { decision: "allow" | "deny" | "error"; detail?: string } | undefined;
    let logged = false;
    let clientEnded = false;
    const pendingFromClient: Buffer[] = [];

    const logOnce = () => {
      if (logged) return;
      logged = true;
      const result = outcome ?? (check.done ? { decision: "allow" as const } : { decision: "error" as const, detail: "closed before the host key was checked" });
      this.log({
        event: "connect",
        host: host.host,
        port: host.port,
        ...(address ? { address } : {}),
        decision: result.decision,
        bytesUp,
        bytesDown,
        durationMs: Date.now() - started,
        ...(result.detail ? { detail: result.detail } : {}),
      });
    };
    /** Cut the connection; before the key exchange ends, tell the bottle's ssh why. */
    const refuse = (decision: "deny" | "error", detail: string, hostKey = false) => {
      if (outcome) return;
      outcome = { decision, detail };
      upstream?.destroy();
      if (client.destroyed) return;
      const versionEnd = check.serverVersionEnd;
      const notice = Buffer.from(disconnectPacket(`bottle ssh gate: ${detail}`, hostKey));
      client.end(versionEnd !== undefined && released >= versionEnd ? notice : Buffer.concat([Buffer.from(GATE_IDENT), notice]));
      setTimeout(() => client.destroy(), 2000).unref();
    };

    client.on("data", (chunk: Buffer) => {
      if (outcome) return;
      bytesUp += chunk.length;
      try {
        check.fromClient(chunk);
      } catch (error) {
        refuse("deny", (error as Error).message);
        return;
      }
      if (!upstream) {
        pendingFromClient.push(chunk);
        return;
      }
      if (!upstream.write(chunk)) client.pause();
    });
    client.on("end", () => {
      clientEnded = true;
      upstream?.end();
    });
    client.on("error", () => {
      outcome ??= { decision: "error", detail: "the bottle's connection failed" };
      upstream?.destroy();
    });
    client.on("close", () => {
      if (!upstream || upstream.destroyed) logOnce();
      upstream?.destroy();
    });

    void (async () => {
      let addresses: string[];
      try {
        addresses = isIP(host.host) ? [host.host] : await this.resolve(host.host);
      } catch (error) {
        refuse("error", `cannot resolve ${host.host} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
        return;
      }
      const usable = addresses.filter((candidate) => this.addressAllowed(candidate));
      if (usable.length === 0) {
        refuse("deny", addresses.length ? `${host.host} resolves to a forbidden address (${addresses.join(", ")})` : `${host.host} does not resolve`);
        return;
      }
      if (client.destroyed || outcome) return;
      address = usable[0]!;
      const socket = connect({ host: address, port: host.port, allowHalfOpen: true, noDelay: true });
      upstream = socket;
      this.sockets.add(socket);
      socket.setTimeout(15_000, () => {
        if (!check.done) refuse("error", `${host.host}:${host.port} did not answer`);
      });
      socket.on("connect", () => socket.setTimeout(0));
      for (const chunk of pendingFromClient.splice(0)) socket.write(chunk);
      if (clientEnded) socket.end();
      socket.on("data", (chunk: Buffer) => {
        if (outcome) return;
        bytesDown += chunk.length;
        let pass: Buffer = chunk;
        if (!check.done) {
          held = held.length ? Buffer.concat([held, chunk]) : chunk;
          try {
            check.fromServer(chunk);
          } catch (error) {
            refuse(error instanceof HostKeyError ? "deny" : "error", (error as Error).message, /host key mismatch/.test((error as Error).message));
            return;
          }
          // Verified: everything held goes on. Otherwise only what was read completely.
          const release = check.done ? held.length : check.serverConsumed - released;
          pass = held.subarray(0, release);
          held = held.subarray(release);
          released += release;
          if (pass.length === 0) return;
        }
        if (!client.write(pass)) socket.pause();
      });
      socket.on("drain", () => client.resume());
      client.on("drain", () => socket.resume());
      socket.on("end", () => {
        if (!outcome) client.end();
      });
      socket.on("error", (error: NodeJS.ErrnoException) => {
        if (check.done) {
          outcome ??= { decision: "error", detail: `${host.host}:${host.port}: ${error.code ?? error.message}` };
          client.destroy();
        } else refuse("error", `cannot reach ${host.host}:${host.port} (${error.code ?? error.message})`);
      });
      socket.on("close", () => {
        this.sockets.delete(socket);
        if (!outcome) client.end();
        logOnce();
      });
    })();
  }
}
