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
 * Every forwarded request passes the same checks as the proxy (rate limit,
 * byte budget, DLP on what the bottle sent, allowlist, private addresses),
 * is audited on its own line (`auth: injected (NAME)`, never the value), and
 * its response has every credential value, in every form of
 * secret-forms.ts, replaced by its placeholder: in header names and values
 * and in the body. A response whose headers still carry a credential in a
 * form DLP sees through (double percent-encoding, …) is refused with a 502.
 * Request bodies on credential routes go through DLP's body guard; Claude
 * Code's are not scanned (a conversation may quote anything).
 */
import type * as http from "node:http";
import * as net from "node:net";
import { Transform, type TransformCallback } from "node:stream";
import type * as tls from "node:tls";
import * as zlib from "node:zlib";
import { type AuditInput, auditPath } from "./audit.ts";
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
import { Dlp, type DlpFinding, MIN_SECRET_LENGTH } from "./dlp.ts";
import { type Header, hostHeaderProblem, removeHeaders, responseHeaders, stripHopByHop } from "./headers.ts";
import { bindServer } from "./listen.ts";
import { type DenyRule, denialBody, statusFor } from "./messages.ts";
import { normalizeHost } from "./policy.ts";
import { type Denial, resolveAndVet } from "./admission.ts";
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
  /** Upstream host (normalised) and port. */
  host: string;
  port: number;
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
    server.on("clientError", (_error, socket) => socket.destroy());
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
    const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
    const port = url.port ? Number(url.port) : 443;
    const base = { method: req.method ?? "?", host, port };
    const target = req.url ?? "";
    const rest = target.startsWith("/") ? stripPrefix(route.prefix, target) : null;
    if (rest === null) {
      this.deny(req, res, { ...base, path: target.startsWith("/") ? target : "" }, { rule: "no-route", reason: `Claude Code's route is ${route.prefix}/…` });
      return;
    }
    const path = upstreamTarget(url.pathname === "/" ? "" : url.pathname, rest);
    if (!plainPath(pathOf(path))) {
      this.deny(req, res, { ...base, path }, { rule: "bad-request", reason: "dot segments or encoded slashes in the path" });
      return;
    }
    const token = this.credentials.get(route.credential) ?? "";
    void this.forward(req, res, {
      host,
      port,
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
    const base = { method: req.method ?? "?", host, port };
    if (!target.startsWith("/")) {
      this.deny(req, res, { ...base, path: "" }, { rule: "bad-request", reason: "send origin-form requests (GET /path) inside the tunnel" });
      return;
    }
    // The tunnel's host is the route's: a Host header must name it, with the port of the tunnel (443 when it names none).
    const hostProblem = hostHeaderProblem(headerPairs(req.rawHeaders), { kind: "name", host }, port, 443);
    if (hostProblem) {
      this.deny(req, res, { ...base, path: target }, hostProblem);
      return;
    }
    const route = matchRoute(this.routes, host, port, req.method ?? "", target);
    const token = route ? this.credentials.get(route.credential) : undefined;
    void this.forward(req, res, {
      host,
      port,
      hostHeader: port === 443 ? host : `${host}:${port}`,
      path: target,
      inject: route && token !== undefined ? (headers) => injectRoute(headers, route, token) : null,
      ...(route ? { credential: route.credential } : {}),
      match: route ? `route ${host}` : `terminated ${host}`,
      countBudget: false,
      scanBody: true,
    });
  }

  private deny(req: http.IncomingMessage, res: http.ServerResponse, where: { method: string; host: string; port: number; path: string }, denial: Denial, started = Date.now()): void {
    const isDlp = denial.rule.startsWith("dlp-");
    const entry: AuditInput = {
      method: where.method.slice(0, 32),
      host: where.host,
      port: where.port,
      path: isDlp ? "<redacted>" : auditPath(where.path),
      decision: "deny",
      rule: denial.rule,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: Date.now() - started,
    };
    if (denial.detail !== undefined) entry.detail = denial.detail;
    this.gate.audit.write(entry);
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const target = normalizeHost(where.host);
    const body = denialBody({
      rule: denial.rule,
      bottle: this.gate.config.bottle,
      host: where.host,
      port: where.port,
      ...(target ? { target } : {}),
      ...(denial.category !== undefined ? { category: denial.category } : {}),
      ...(denial.description !== undefined ? { description: denial.description } : {}),
      ...(denial.reason !== undefined ? { reason: denial.reason } : {}),
      ...(denial.rule === "rate-limit" ? { limit: this.gate.config.limits.requestsPerMinute } : {}),
      ...(denial.rule === "bytes-out-limit" ? { limit: this.gate.config.limits.bytesOut } : {}),
    });
    const bytes = Buffer.from(body, "utf8");
    res.writeHead(statusFor(denial.rule), {
      "content-type": "text/plain; charset=utf-8",
      "content-length": String(bytes.length),
      "x-bottle-egress-rule": denial.rule,
      connection: "close",
    });
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

  private async forward(req: http.IncomingMessage, res: http.ServerResponse, spec: ForwardSpec): Promise<void> {
    const gate = this.gate;
    const started = Date.now();
    const method = (req.method ?? "GET").slice(0, 32);
    const where = { method, host: spec.host, port: spec.port, path: spec.path };
    const deny = (denial: Denial): void => this.deny(req, res, where, denial, started);
    req.pause();
    if (!gate.rate.take()) return deny({ rule: "rate-limit" });
    if (gate.budget.exhausted) return deny({ rule: "bytes-out-limit" });
    const incoming = headerPairs(req.rawHeaders);
    // What the bottle sent must not carry a secret (a placeholder is fine; the real value is added below).
    const finding = gate.dlp.scan([`${method} ${req.url ?? ""}`, ...incoming.map(([name, value]) => `${name}: ${value}`)]);
    if (finding) return deny({ rule: finding.rule as DenyRule, description: finding.description });
    const target = normalizeHost(spec.host);
    if (!target) return deny({ rule: "bad-request", reason: "malformed upstream host" });
    const decision = gate.policy.checkHost(target, spec.port);
    if (!decision.ok) return deny({ rule: decision.rule });
    const vetted = await resolveAndVet(gate, target);
    if (!("addresses" in vetted)) return deny(vetted);
    if (res.destroyed) return;
    const raw = await connectVetted(gate, vetted.addresses, spec.port);
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
    const guard = spec.scanBody ? gate.dlp.bodyGuard() : null;
    const counters = { bytesIn: 0, bytesOut: 0 };
    let status: number | undefined;
    let finished = false;
    const finish = (end: string): void => {
      if (finished) return;
      finished = true;
      clearTimeout(maxTimer);
      const entry: AuditInput = {
        method,
        host: spec.host,
        port: spec.port,
        path: auditPath(spec.path),
        decision: "allow",
        rule: spec.credential ? "route" : "allowlist",
        match: spec.credential ? spec.match : decision.entry,
        bytesIn: counters.bytesIn,
        bytesOut: counters.bytesOut,
        durationMs: Date.now() - started,
        end,
      };
      if (spec.credential && spec.inject) entry.auth = `injected (${spec.credential})`;
      if (status !== undefined) entry.status = status;
      gate.audit.write(entry);
    };
    const abort = (end: string): void => {
      upstreamSocket.destroy();
      res.destroy();
      finish(end);
    };
    // The gate's own refusal instead of the allow line: the upstream is cut off, the bottle gets `denial` unless its response started.
    const refuse = (denial: Denial): void => {
      if (finished) return;
      finished = true;
      clearTimeout(maxTimer);
      upstreamReq.destroy();
      upstreamSocket.destroy();
      deny(denial);
    };
    const refuseBody = (finding: DlpFinding): void =>
      refuse({ rule: finding.rule as DenyRule, description: finding.description, reason: "in its body" });
    const { maxTunnelMs, idleTimeoutMs } = gate.config.limits;
    const maxTimer = setTimeout(() => abort("max-duration"), maxTunnelMs > 0 ? maxTunnelMs : 2 ** 31 - 1);
    if (idleTimeoutMs > 0) upstreamSocket.setTimeout(idleTimeoutMs, () => abort("idle-timeout"));

    const upstreamReq = httpModule().request({
      createConnection: () => upstreamSocket,
      method,
      path: spec.path,
      headers: flat(headers),
      setHost: false,
      // No agent: only then does node use createConnection (the vetted, verified socket).
    });
    upstreamReq.on("error", () => {
      if (finished) return;
      if (!res.headersSent && !res.destroyed) {
        refuse({ rule: "upstream-unreachable", detail: "the upstream connection failed" });
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
          refuse({ rule: "bad-request", reason: `the upstream answered with an unsupported Content-Encoding (${encoding.slice(0, 32)})` });
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
        refuse({ rule: "credential-echo" });
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
      if (spec.countBudget && !gate.budget.spend(chunk.length)) {
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
