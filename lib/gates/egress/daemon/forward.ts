/**
 * One request of credential custody, forwarded by the gate itself: Claude
 * Code's route and the requests inside a terminated tunnel (custody-server.ts
 * hands them over). It is admitted, refused and audited by the same code as
 * the proxy's (admission.ts: rate limit, byte budget, DLP on what the bottle
 * sent, allowlist, private addresses), on its own audit line (`auth: injected
 * (NAME)`, never the value); it goes upstream over verified TLS with the
 * credential added, and its response comes back with every credential, in
 * every form of secret-forms.ts, replaced by its placeholder: in header names
 * and values and in the body. A response whose headers still carry a
 * credential in a form DLP sees through (double percent-encoding, …) is
 * refused with a 502. Request bodies on credential routes go through DLP's
 * body guard; Claude Code's are not scanned (a conversation may quote
 * anything).
 */
import type * as http from "node:http";
import type * as net from "node:net";
import type { Transform } from "node:stream";
import type * as tls from "node:tls";
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
import { type ScrubRules, Scrubber } from "./custody.ts";
import { refusalHeaders } from "./denial-messages.ts";
import type { Dlp, DlpFinding } from "./dlp.ts";
import { type Header, removeHeaders, responseHeaders, serializeHeaders, stripHopByHop } from "./headers.ts";
import { httpModule, tlsModule } from "./node-http.ts";
import type { HostTarget } from "./policy.ts";
import { ScrubTransform, decoderFor } from "./response-scrub.ts";
import type { GateState } from "./state.ts";
import { connectVetted } from "./upstream.ts";

/** What forwarding needs besides the request: fixed for the gate's lifetime. */
export interface Forwarder {
  gate: GateState;
  /** Each credential value and its placeholder, for scrubbing responses. */
  scrubRules: ScrubRules;
  /** Finds a credential in response headers that scrubbing could not replace (no credential patterns: only the values). */
  echoCheck: Dlp;
  /** Extra options for TLS to upstreams (tests: a CA). */
  upstreamTls: tls.ConnectionOptions | undefined;
}

/** How a request goes upstream. */
export interface ForwardSpec {
  /** Host header value for the upstream. */
  hostHeader: string;
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

export function headerPairs(raw: readonly string[]): Header[] {
  const pairs: Header[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i] ?? "", raw[i + 1] ?? ""]);
  return pairs;
}

/** What the audit line and a refusal say about a request to `target:port`, its path as it goes upstream. */
export function requestContext(req: http.IncomingMessage, target: HostTarget | null, port: number, path: string): RequestContext & { path: string } {
  return { method: (req.method ?? "?").slice(0, 32), target, port, path, started: Date.now() };
}

function flat(headers: readonly Header[]): string[] {
  return headers.flatMap(([name, value]) => [name, value]);
}

/** Denies the request (audited) and answers why, unless the response already began. */
export function refuseRequest(gate: GateState, req: http.IncomingMessage, res: http.ServerResponse, ctx: RequestContext, denial: Denial): void {
  const refusal = deny(gate, ctx, denial);
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
function secure(forwarder: Forwarder, raw: net.Socket, host: string, isName: boolean): Promise<tls.TLSSocket | string> {
  return new Promise((resolve) => {
    const socket = tlsModule().connect({
      ...forwarder.upstreamTls,
      socket: raw,
      ...(isName ? { servername: host } : {}),
      host,
      ALPNProtocols: ["http/1.1"],
    });
    forwarder.gate.track(socket);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve("TLS handshake timed out");
    }, forwarder.gate.timing.connectTimeoutMs);
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

/**
 * Forwards one request: admitted, sent over verified TLS with the credential
 * added, its response scrubbed on the way back. `ctx`: the request to the
 * upstream as the audit line shows it (its path as it goes upstream).
 */
export async function forward(
  forwarder: Forwarder,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  ctx: RequestContext & { target: HostTarget; path: string },
  spec: ForwardSpec,
): Promise<void> {
  const { gate } = forwarder;
  const { target, port, method } = ctx;
  const refuse = (denial: Denial): void => refuseRequest(gate, req, res, ctx, denial);
  req.pause();
  const incoming = headerPairs(req.rawHeaders);
  // What the bottle sent must not carry a secret (a placeholder is fine; the real value is added below).
  const admitted = admit(gate, target, port, requestTexts(`${req.method ?? ""} ${req.url ?? ""}`, incoming));
  if (!isAdmitted(admitted)) return refuse(admitted);
  const vetted = await resolveAndVet(gate, target);
  if (!("addresses" in vetted)) return refuse(vetted);
  if (res.destroyed) return;
  const raw = await connectVetted(gate, vetted.addresses, port);
  if (!raw) return refuse({ rule: "upstream-unreachable" });
  if (res.destroyed) {
    raw.destroy();
    return;
  }
  const upstreamSocket = await secure(forwarder, raw, target.host, target.kind === "name");
  if (typeof upstreamSocket === "string") return refuse({ rule: "upstream-tls", reason: upstreamSocket });
  if (res.destroyed) {
    upstreamSocket.destroy();
    return;
  }

  let headers = removeHeaders(stripHopByHop(incoming), ["host", "accept-encoding"]);
  // Plain bodies, so that a credential echoed back can be found and replaced.
  headers.push(["accept-encoding", "identity"]);
  if (spec.inject) headers = spec.inject(headers);
  headers = [["host", spec.hostHeader], ...headers];

  const scrubber = new Scrubber(forwarder.scrubRules);
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
    refuse(denial);
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
    if (forwarder.echoCheck.scan([message, ...out.map(([name, value]) => `${name}: ${value}`)])) {
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
