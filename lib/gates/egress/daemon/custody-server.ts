/**
 * Credential custody's listeners in the gate:
 *
 *  - Claude Code's route: a plain-HTTP listener on the gate's listen
 *    addresses (`ANTHROPIC_BASE_URL=http://gate:3129/anthropic`). Each request
 *    goes over TLS to the configured upstream with the placeholder swapped
 *    for the real token.
 *  - Credential routes: CONNECTs to a route's host:port are spliced (by the
 *    proxy) to a loopback TLS server with a certificate from the gate's own
 *    CA; each request inside gets the route's credential when its method and
 *    path match, and goes on over TLS to the real host.
 *
 * Each request is forwarded by forward.ts.
 */
import type * as http from "node:http";
import * as net from "node:net";
import type * as tls from "node:tls";
import { ensureGateTls } from "./certs.ts";
import type { AnthropicRouteConfig, EgressConfig, RouteConfig } from "./config-schema.ts";
import {
  ScrubRules,
  injectAnthropic,
  injectRoute,
  matchRoute,
  pathOf,
  placeholderFor,
  plainPath,
  stripPrefix,
  upstreamTarget,
} from "./custody.ts";
import { Dlp, MIN_SECRET_LENGTH } from "./dlp.ts";
import { type Forwarder, forward, headerPairs, refuseRequest, requestContext } from "./forward.ts";
import { hostHeaderProblem } from "./headers.ts";
import { bindServer } from "./listen.ts";
import { httpModule, tlsModule } from "./node-http.ts";
import { type HostTarget, normalizeHost } from "./policy.ts";
import { refuse } from "./refusal.ts";
import type { GateState, TlsTerminator } from "./state.ts";

export interface CustodyOptions {
  /** Extra options for TLS to upstreams (tests: a CA). The gate trusts the system bundle plus NODE_EXTRA_CA_CERTS. */
  upstreamTls?: tls.ConnectionOptions;
  /** The openssl binary (default: from PATH). */
  openssl?: string;
}

/** Credential custody in a running gate: its listeners, and the TLS terminator the proxy splices a route's CONNECTs to. */
export class Custody implements TlsTerminator {
  readonly routes: RouteConfig[];
  readonly anthropic: AnthropicRouteConfig | undefined;
  /** The gate's CA certificate (PEM) when there are routes. */
  caPem: string | null = null;
  private readonly credentials: Map<string, string>;
  private readonly forwarder: Forwarder;
  private readonly options: CustodyOptions;
  private readonly terminatedHttp: http.Server;
  private tlsServer: tls.Server | null = null;
  private tlsPort = 0;
  private routeServers: http.Server[] = [];

  constructor(
    private readonly gate: GateState,
    config: EgressConfig,
    credentials: Map<string, string>,
    options: CustodyOptions = {},
  ) {
    this.routes = config.routes ?? [];
    this.anthropic = config.anthropic;
    this.credentials = credentials;
    this.options = options;
    // Values too short to be told from ordinary text are not scrubbed (DLP ignores them too).
    const held = [...credentials.entries()].filter(([, value]) => value.length >= MIN_SECRET_LENGTH);
    this.forwarder = {
      gate,
      scrubRules: new ScrubRules(held.map(([name, value]) => [value, placeholderFor(name)])),
      echoCheck: new Dlp(
        held.map(([, value]) => value),
        { patterns: false },
      ),
      upstreamTls: options.upstreamTls,
    };
    this.terminatedHttp = this.httpServer((req, res) => this.onTerminated(req, res));
  }

  private httpServer(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): http.Server {
    const server = httpModule().createServer(
      { requestTimeout: 0, headersTimeout: this.gate.timing.headTimeoutMs, keepAliveTimeout: 5_000, maxHeaderSize: 64 * 1024 },
      (req, res) => {
        try {
          handler(req, res);
        } catch (error) {
          this.gate.logError(`egress gate: custody: ${error instanceof Error ? error.message : String(error)}`);
          res.destroy();
        }
      },
    );
    const idle = this.gate.config.limits.idleTimeoutMs;
    if (idle > 0) server.setTimeout(idle);
    server.on("connection", (socket: net.Socket) => {
      this.gate.track(socket);
      socket.setNoDelay(true);
    });
    server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
      // A head node cannot parse is refused as the proxy refuses one; a timeout or a reset just closes.
      if (error.code?.startsWith("HPE_") && socket.writable) {
        refuse(this.gate, socket as net.Socket, { method: "?", target: null, port: 0, started: Date.now() }, { rule: "bad-request", reason: "malformed request head" });
      } else socket.destroy();
    });
    return server;
  }

  terminates(host: string, port: number): boolean {
    return this.tlsServer !== null && this.routes.some((route) => route.host === host && route.port === port);
  }

  connect(): Promise<net.Socket | null> {
    return new Promise((resolve) => {
      if (!this.tlsServer) {
        resolve(null);
        return;
      }
      const socket = net.connect({ host: "127.0.0.1", port: this.tlsPort, allowHalfOpen: true, noDelay: true });
      this.gate.track(socket);
      socket.once("error", () => resolve(null));
      socket.once("connect", () => {
        socket.on("error", () => undefined);
        resolve(socket);
      });
    });
  }

  /** Makes the CA and certificate (routes), binds the TLS terminator and Claude Code's route (on `addresses`, the gate's listen addresses). */
  async start(tlsDir: string | undefined, bottle: string, addresses: readonly string[]): Promise<void> {
    if (this.routes.length > 0) {
      if (!tlsDir) throw new Error("credential routes need tlsDir");
      const hosts = [...new Set(this.routes.map((route) => route.host))];
      const made = ensureGateTls(tlsDir, hosts, bottle, this.options.openssl);
      this.caPem = made.caPem;
      const server = tlsModule().createServer({ cert: made.certPem, key: made.keyPem, ALPNProtocols: ["http/1.1"], minVersion: "TLSv1.2" }, (socket) => {
        this.terminatedHttp.emit("connection", socket);
      });
      server.on("tlsClientError", (_error, socket) => socket.destroy());
      // Reached only by the proxy's splice, inside the gate.
      await bindServer(server, "127.0.0.1", 0);
      server.on("error", (error) => this.gate.logError(`egress gate: TLS terminator: ${error.message}`));
      this.tlsServer = server;
      const address = server.address();
      this.tlsPort = typeof address === "object" && address ? address.port : 0;
    }
    if (this.anthropic) {
      const route = this.anthropic;
      for (const address of addresses) {
        const server = this.httpServer((req, res) => this.onAnthropic(req, res));
        await bindServer(server, address, route.port);
        server.on("error", (error) => this.gate.logError(`egress gate: Claude Code route: ${error.message}`));
        this.routeServers.push(server);
      }
    }
  }

  ports(): { anthropic?: number; terminator?: number } {
    const first = this.routeServers[0]?.address();
    return {
      ...(typeof first === "object" && first ? { anthropic: first.port } : {}),
      ...(this.tlsServer ? { terminator: this.tlsPort } : {}),
    };
  }

  async close(): Promise<void> {
    const servers: Array<net.Server> = [...this.routeServers, ...(this.tlsServer ? [this.tlsServer] : [])];
    this.routeServers = [];
    this.tlsServer = null;
    this.terminatedHttp.close();
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }

  // ---------------------------------------------------------------- handlers

  private onAnthropic(req: http.IncomingMessage, res: http.ServerResponse): void {
    const route = this.anthropic;
    if (!route) return void res.destroy();
    const url = new URL(route.upstream);
    const upstream = normalizeHost(url.hostname);
    const port = url.port ? Number(url.port) : 443;
    const target = req.url ?? "";
    const rest = target.startsWith("/") ? stripPrefix(route.prefix, target) : null;
    if (rest === null) {
      refuseRequest(this.gate, req, res, requestContext(req, upstream, port, target.startsWith("/") ? target : ""), { rule: "no-route", reason: `Claude Code's route is ${route.prefix}/…` });
      return;
    }
    const path = upstreamTarget(url.pathname === "/" ? "" : url.pathname, rest);
    const ctx = requestContext(req, upstream, port, path);
    if (!plainPath(pathOf(path))) {
      refuseRequest(this.gate, req, res, ctx, { rule: "bad-request", reason: "dot segments or encoded slashes in the path" });
      return;
    }
    if (!upstream) {
      refuseRequest(this.gate, req, res, ctx, { rule: "bad-request", reason: "malformed upstream host" });
      return;
    }
    const token = this.credentials.get(route.credential) ?? "";
    void forward(this.forwarder, req, res, { ...ctx, target: upstream }, {
      hostHeader: url.host,
      inject: (headers) => injectAnthropic(headers, route.kind, token),
      credential: route.credential,
      match: "anthropic",
      countBudget: true,
      scanBody: false,
    });
  }

  private onTerminated(req: http.IncomingMessage, res: http.ServerResponse): void {
    const socket = req.socket as tls.TLSSocket;
    const host = typeof socket.servername === "string" ? socket.servername.toLowerCase() : "";
    const first = this.routes.find((route) => route.host === host);
    if (!first) return void res.destroy();
    const port = first.port;
    const target = req.url ?? "";
    const upstream: HostTarget = { kind: "name", host };
    const ctx = requestContext(req, upstream, port, target.startsWith("/") ? target : "");
    if (!target.startsWith("/")) {
      refuseRequest(this.gate, req, res, ctx, { rule: "bad-request", reason: "send origin-form requests (GET /path) inside the tunnel" });
      return;
    }
    // The tunnel's host is the route's: a Host header must name it, with the port of the tunnel (443 when it names none).
    const hostProblem = hostHeaderProblem(headerPairs(req.rawHeaders), upstream, port, 443);
    if (hostProblem) {
      refuseRequest(this.gate, req, res, ctx, hostProblem);
      return;
    }
    const route = matchRoute(this.routes, host, port, req.method ?? "", target);
    const token = route ? this.credentials.get(route.credential) : undefined;
    void forward(this.forwarder, req, res, { ...ctx, target: upstream }, {
      hostHeader: port === 443 ? host : `${host}:${port}`,
      inject: route && token !== undefined ? (headers) => injectRoute(headers, route, token) : null,
      ...(route ? { credential: route.credential } : {}),
      match: route ? `route ${host}` : `terminated ${host}`,
      countBudget: false,
      scanBody: true,
    });
  }
}
