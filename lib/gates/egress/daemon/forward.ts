/**
 * Credential custody in the gate: the listeners and the request forwarder.
 *
 *  - Claude Code's route: a plain-HTTP listener on the gate's internal
 *    address (`ANTHROPIC_BASE_URL=http://gate:3129/anthropic`). Each request
 *    goes over TLS to the configured upstream with the placeholder swapped
 *    for the real token.
 *  - Credential routes: CONNECTs to a route's host:port are spliced (by the
 *    proxy) to a loopback TLS server with a certificate from the gate's own
 *    CA; each request inside gets the route's credential when its method and
 *    path match, and goes on over TLS to the real host.
 *
 * Every forwarded request is admitted, refused and audited by the same code
 * as the proxy's (admission.ts: rate limit, byte budget, DLP on what the
 * bottle sent, allowlist, private addresses), on its own audit line
 * (`auth: injected (NAME)`, never the value), and its response has every
 * credential value, in every form of secret-forms.ts, replaced by its
 * placeholder: in header names and values and in the body. A response whose headers still carry a credential in a
 * form DLP sees through (double percent-encoding, …) is refused with a 502.
 * Request bodies on credential routes go through DLP's body guard; Claude
 * Code's are not scanned (a conversation may quote anything).
 */
import type * as http from "node:http";
import * as net from "node:net";
import { Transform, type TransformCallback } from "node:stream";
import type * as tls from "node:tls";
import * as zlib from "node:zlib";
import {
  type Counters,
  type Denial,
  type RequestContext,
  admit,
  auditAllowed,
  bodyDenial,
  bodyGuards,
  chargeBytesOut,
  deny,
  isAdmitted,
  requestTexts,
  resolveAndVet,
} from "./admission.ts";
import { ensureGateTls } from "./certs.ts";
import type { EgressConfig } from "./config.ts";
import {
  type AnthropicRouteConfig,
  type RouteConfig,
  ScrubRules,
  Scrubber,
  injectAnthropic,
  injectRoute,
  matchRoute,
  pathOf,
  placeholderFor,
  plainPath,
  stripPrefix,
  upstreamTarget,
} from "./custody.ts";
import { refusalHeaders } from "./denial-messages.ts";
import { Dlp, type DlpFinding, MIN_SECRET_LENGTH } from "./dlp.ts";
import { type Header, hostHeaderProblem, removeHeaders, responseHeaders, serializeHeaders, stripHopByHop } from "./headers.ts";
import { bindServer } from "./listen.ts";
import { type HostTarget, normalizeHost } from "./policy.ts";
import { refuse } from "./refusal.ts";
import type { GateState, TlsTerminator } from "./state.ts";
import { connectVetted } from "./upstream.ts";

/*
 * node:http and node:tls are loaded only when a Custody needs them, and never
 * with `import * as`: Node builds an ES namespace of node:http by reading
 * every export, and its lazy WebSocket export pulls in crypto, tls and http2.
 * That cost about 40 ms of every gate's start, custody or not.
 */
function httpModule(): typeof http {
  return process.getBuiltinModule("node:http");
}

function tlsModule(): typeof tls {
  return process.getBuiltinModule("node:tls");
}

export interface CustodyOptions {
  /** Extra options for TLS to upstreams (tests: a CA). The gate trusts the system bundle plus NODE_EXTRA_CA_CERTS. */
  upstreamTls?: tls.ConnectionOptions;
  /** The openssl binary (default: from PATH). */
  openssl?: string;
}

interface ForwardSpec {
  /** Host header value for the upstream. */
  hostHeader: string;
  /** Origin-form target sent upstream. */
  path: string;
  /** Adds the credential; null = forward as is. */
  inject: ((headers: Header[]) => Header[]) | null;
  /** Audit: which credential was injected. */
  credential?: string;
  /** Audit: what matched ("anthropic", "route api.github.com", "terminated api.github.com"). */
  match: string;
  /** The request bytes count against the byte budget here (not when a CONNECT relay already counted them). */
  countBudget: boolean;
  /** The request body goes through DLP's body guard (credential routes; not Claude Code's conversation). */
  scanBody: boolean;
}

function headerPairs(raw: readonly string[]): Header[] {
  const pairs: Header[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i] ?? "", raw[i + 1] ?? ""]);
  return pairs;
}

/** What the audit line and a refusal say about a request to `target:port`, its path as it goes upstream. */
function requestContext(req: http.IncomingMessage, target: HostTarget | null, port: number, path: string): RequestContext & { path: string } {
  return { method: (req.method ?? "?").slice(0, 32), target, port, path, started: Date.now() };
}

function flat(headers: readonly Header[]): string[] {
  return headers.flatMap(([name, value]) => [name, value]);
}

function decoderFor(encoding: string): Transform | null | "unsupported" {
  switch (encoding) {
    case "":
    case "identity":
      return null;
    case "gzip":
    case "x-gzip":
      return zlib.createGunzip();
    case "deflate":
      return zlib.createInflate();
    case "br":
      return zlib.createBrotliDecompress();
    default:
      return "unsupported";
  }
}

class ScrubTransform extends Transform {
  constructor(private readonly scrubber: Scrubber) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const out = this.scrubber.push(chunk);
    callback(null, out.length > 0 ? out : undefined);
  }

  override _flush(callback: TransformCallback): void {
    const rest = this.scrubber.flush();
    callback(null, rest.length > 0 ? rest : undefined);
  }
}

export class Custody implements TlsTerminator {
  readonly routes: RouteConfig[];
  readonly anthropic: AnthropicRouteConfig | undefined;
  /** The gate's CA certificate (PEM) when there are routes. */
  caPem: string | null = null;
  private readonly credentials: Map<string, string>;
  private readonly scrubRules: ScrubRules;
  /** Finds a credential in response headers that scrubbing could not replace (no credential patterns: only the values). */
  private readonly echoCheck: Dlp;
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
    this.scrubRules = new ScrubRules(held.map(([name, value]) => [value, placeholderFor(name)]));
    this.echoCheck = new Dlp(
      held.map(([, value]) => value),
      { patterns: false },
    );
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
      this.deny(req, res, requestContext(req, upstream, port, target.startsWith("/") ? target : ""), { rule: "no-route", reason: `Claude Code's route is ${route.prefix}/…` });
      return;
    }
    const path = upstreamTarget(url.pathname === "/" ? "" : url.pathname, rest);
    const ctx = requestContext(req, upstream, port, path);
    if (!plainPath(pathOf(path))) {
      this.deny(req, res, ctx, { rule: "bad-request", reason: "dot segments or encoded slashes in the path" });
      return;
    }
    if (!upstream) {
      this.deny(req, res, ctx, { rule: "bad-request", reason: "malformed upstream host" });
      return;
    }
    const token = this.credentials.get(route.credential) ?? "";
    void this.forward(req, res, { ...ctx, target: upstream }, {
      hostHeader: url.host,
      path,
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
      this.deny(req, res, ctx, { rule: "bad-request", reason: "send origin-form requests (GET /path) inside the tunnel" });
      return;
    }
    // The tunnel's host is the route's: a Host header must name it, with the port of the tunnel (443 when it names none).
    const hostProblem = hostHeaderProblem(headerPairs(req.rawHeaders), upstream, port, 443);
    if (hostProblem) {
      this.deny(req, res, ctx, hostProblem);
      return;
    }
    const route = matchRoute(this.routes, host, port, req.method ?? "", target);
    const token = route ? this.credentials.get(route.credential) : undefined;
    void this.forward(req, res, { ...ctx, target: upstream }, {
      hostHeader: port === 443 ? host : `${host}:${port}`,
      path: target,
      inject: route && token !== undefined ? (headers) => injectRoute(headers, route, token) : null,
      ...(route ? { credential: route.credential } : {}),
      match: route ? `route ${host}` : `terminated ${host}`,
      countBudget: false,
      scanBody: true,
    });
  }

  /** Denies the request (audited) and answers why, unless the response already began. */
  private deny(req: http.IncomingMessage, res: http.ServerResponse, ctx: RequestContext, denial: Denial): void {
    const refusal = deny(this.gate, ctx, denial);
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const bytes = Buffer.from(refusal.body, "utf8");
    res.writeHead(refusal.status, Object.fromEntries(refusalHeaders(refusal.rule, bytes.length).map(([name, value]) => [name.toLowerCase(), value])));
    res.end(bytes);
    req.resume();
  }

  /** Upstream TLS on an already vetted connection; verifies the certificate against the host name. */
  private secure(raw: net.Socket, host: string, isName: boolean): Promise<tls.TLSSocket | string> {
    return new Promise((resolve) => {
      const socket = tlsModule().connect({
        ...this.options.upstreamTls,
        socket: raw,
        ...(isName ? { servername: host } : {}),
        host,
        ALPNProtocols: ["http/1.1"],
      });
      this.gate.track(socket);
      const timer = setTimeout(() => {
        socket.destroy();
        resolve("TLS handshake timed out");
      }, this.gate.timing.connectTimeoutMs);
      socket.once("error", (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(error.code ?? error.message);
      });
      socket.once("secureConnect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        socket.on("error", () => undefined);
        resolve(socket);
      });
    });
  }

  /** `ctx`: the request to the upstream, as the audit line shows it (its path as it goes upstream). */
  private async forward(req: http.IncomingMessage, res: http.ServerResponse, ctx: RequestContext & { target: HostTarget; path: string }, spec: ForwardSpec): Promise<void> {
    const gate = this.gate;
    const { target, port, method } = ctx;
    const deny = (denial: Denial): void => this.deny(req, res, ctx, denial);
    req.pause();
    const incoming = headerPairs(req.rawHeaders);
    // What the bottle sent must not carry a secret (a placeholder is fine; the real value is added below).
    const admitted = admit(gate, target, port, requestTexts(`${req.method ?? ""} ${req.url ?? ""}`, incoming));
    if (!isAdmitted(admitted)) return deny(admitted);
    const vetted = await resolveAndVet(gate, target);
    if (!("addresses" in vetted)) return deny(vetted);
    if (res.destroyed) return;
    const raw = await connectVetted(gate, vetted.addresses, port);
    if (!raw) return deny({ rule: "upstream-unreachable" });
    if (res.destroyed) {
      raw.destroy();
      return;
    }
    const upstreamSocket = await this.secure(raw, target.host, target.kind === "name");
    if (typeof upstreamSocket === "string") return deny({ rule: "upstream-tls", reason: upstreamSocket });
    if (res.destroyed) {
      upstreamSocket.destroy();
      return;
    }

    let headers = removeHeaders(stripHopByHop(incoming), ["host", "accept-encoding"]);
    // Plain bodies, so that a credential echoed back can be found and replaced.
    headers.push(["accept-encoding", "identity"]);
    if (spec.inject) headers = spec.inject(headers);
    headers = [["host", spec.hostHeader], ...headers];

    const scrubber = new Scrubber(this.scrubRules);
    const guard = spec.scanBody ? bodyGuards(gate).bodyGuard() : null;
    // The head as the gate writes it (node adds its own framing headers): on every path the head counts as bytes out.
    const head = Buffer.byteLength(`${method} ${ctx.path} HTTP/1.1\r\n${serializeHeaders(headers)}\r\n`, "latin1");
    const counters: Counters = { bytesIn: 0, bytesOut: 0 };
    let status: number | undefined;
    let finished = false;
    const finish = (end: string): void => {
      if (finished) return;
      finished = true;
      clearTimeout(maxTimer);
      auditAllowed(gate, ctx, counters, {
        rule: spec.credential ? "route" : "allowlist",
        match: spec.credential ? spec.match : admitted.entry,
        end,
        ...(status !== undefined ? { status } : {}),
        ...(spec.credential && spec.inject ? { auth: `injected (${spec.credential})` } : {}),
      });
    };
    const abort = (end: string): void => {
      upstreamSocket.destroy();
      res.destroy();
      finish(end);
    };
    // The gate's own refusal instead of the allow line: the upstream is cut off, the bottle gets `denial` unless its response started.
    const cutOff = (denial: Denial): void => {
      if (finished) return;
      finished = true;
      clearTimeout(maxTimer);
      upstreamReq.destroy();
      upstreamSocket.destroy();
      deny(denial);
    };
    const refuseBody = (finding: DlpFinding): void => cutOff(bodyDenial(finding));
    const { maxTunnelMs, idleTimeoutMs } = gate.config.limits;
    const maxTimer = setTimeout(() => abort("max-duration"), maxTunnelMs > 0 ? maxTunnelMs : 2 ** 31 - 1);
    if (idleTimeoutMs > 0) upstreamSocket.setTimeout(idleTimeoutMs, () => abort("idle-timeout"));

    if (spec.countBudget && !chargeBytesOut(gate, head)) {
      abort("bytes-out-limit");
      return;
    }
    counters.bytesOut += head;
    const upstreamReq = httpModule().request({
      createConnection: () => upstreamSocket,
      method,
      path: ctx.path,
      headers: flat(headers),
      setHost: false,
      // No agent: only then does node use createConnection (the vetted, verified socket).
    });
    upstreamReq.on("error", () => {
      if (finished) return;
      if (!res.headersSent && !res.destroyed) {
        cutOff({ rule: "upstream-unreachable", detail: "the upstream connection failed" });
        return;
      }
      abort("upstream-error");
    });
    res.on("close", () => {
      if (!res.writableFinished) abort("client-closed");
    });

    upstreamReq.on("response", (upstreamRes: http.IncomingMessage) => {
      status = upstreamRes.statusCode ?? 502;
      const noBody = method === "HEAD" || status === 204 || status === 304;
      // Node frames the body to the bottle itself (decoded, scrubbed): the upstream's Transfer-Encoding goes.
      let out = responseHeaders(headerPairs(upstreamRes.rawHeaders), true);
      let decoder: Transform | null = null;
      if (!noBody) {
        const encoding = (upstreamRes.headers["content-encoding"] ?? "").toString().trim().toLowerCase();
        const chosen = decoderFor(encoding);
        if (chosen === "unsupported") {
          cutOff({ rule: "bad-request", reason: `the upstream answered with an unsupported Content-Encoding (${encoding.slice(0, 32)})` });
          return;
        }
        decoder = chosen;
        // The body may change length (scrubbing, decoding): it goes out chunked.
        out = removeHeaders(out, decoder ? ["content-length", "content-encoding"] : ["content-length"]);
      }
      out = out.map(([name, value]) => [scrubber.text(name), scrubber.text(value)]);
      const message = scrubber.text(upstreamRes.statusMessage ?? "");
      // What scrubbing could not replace but DLP still sees (double percent-encoding, base64 of hex, …) must not reach the bottle.
      if (this.echoCheck.scan([message, ...out.map(([name, value]) => `${name}: ${value}`)])) {
        cutOff({ rule: "credential-echo" });
        return;
      }
      res.writeHead(status, message, flat(out));
      res.flushHeaders();
      upstreamRes.on("data", (chunk: Buffer) => {
        counters.bytesIn += chunk.length;
      });
      if (noBody) {
        upstreamRes.resume();
        upstreamRes.on("end", () => {
          res.end();
          finish("closed");
        });
        return;
      }
      const scrub = new ScrubTransform(scrubber);
      const source: NodeJS.ReadableStream = decoder ? upstreamRes.pipe(decoder) : upstreamRes;
      decoder?.on("error", () => abort("bad-response"));
      upstreamRes.on("error", () => abort("upstream-error"));
      source.pipe(scrub).pipe(res);
      res.on("finish", () => {
        upstreamSocket.end();
        finish("closed");
      });
    });

    // The request body, counted against the byte budget unless a CONNECT relay already did, and guarded by DLP.
    req.on("data", (chunk: Buffer) => {
      if (finished) return;
      if (spec.countBudget && !chargeBytesOut(gate, chunk.length)) {
        abort("bytes-out-limit");
        return;
      }
      counters.bytesOut += chunk.length;
      const safe = guard ? guard.push(chunk) : chunk;
      if (!Buffer.isBuffer(safe)) return refuseBody(safe);
      if (safe.length > 0 && !upstreamReq.write(safe)) req.pause();
    });
    upstreamReq.on("drain", () => req.resume());
    req.on("end", () => {
      if (finished) return;
      const rest = guard ? guard.end() : Buffer.alloc(0);
      if (!Buffer.isBuffer(rest)) return refuseBody(rest);
      if (rest.length > 0) upstreamReq.write(rest);
      upstreamReq.end();
    });
    req.on("error", () => abort("client-error"));
    req.resume();
  }
}
