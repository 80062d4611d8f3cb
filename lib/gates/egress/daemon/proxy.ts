/**
 * The HTTP forward proxy (absolute-form requests) and CONNECT tunnel of the
 * egress gate, on plain node:net sockets with a strict hand-written HTTP/1
 * head parser. One client connection carries one request (plain HTTP) or one
 * tunnel (CONNECT); every decision is audited.
 */
import * as net from "node:net";
import { formatIp, type Ip } from "./addresses.ts";
import type { AuditInput, AuditSink } from "./audit.ts";
import { auditPath } from "./audit.ts";
import type { EgressConfig } from "./config.ts";
import type { Dlp, DlpFinding } from "./dlp.ts";
import { type Header, headerValues, hostHeaderProblem, parseAuthority, parseHostPort, responseHeaders, serializeHeaders, stripHopByHop } from "./headers.ts";
import { type RequestHead, MAX_HEAD, findHeadEnd, parseRequestHead, parseResponseHead, requestFraming } from "./http1.ts";
import type { ByteBudget, RateLimiter } from "./limits.ts";
import { type DenyRule, denialBody, httpResponse, statusFor } from "./messages.ts";
import type { HostTarget, Policy } from "./policy.ts";
import { RequestBody } from "./request-body.ts";
import { MAX_CLIENT_HELLO, parseClientHello } from "./sni.ts";
import { closeWhenWritten, type DownloadSplice, downloadSplice, type Splicer } from "./splice.ts";
import { errorCode, withTimeout } from "./async.ts";

/** Resolves a host name to all its addresses (node:dns lookup in the gate; a fake in tests). */
export type Resolver = (host: string) => Promise<string[]>;
/** Opens a TCP connection to an already vetted IP address. */
export type UpstreamConnector = (address: string, port: number) => net.Socket;

export interface Timing {
  /** Wait this long for the TLS ClientHello after `200 Connection established`. */
  helloTimeoutMs: number;
  /** On an explicitly listed non-443 port: wait this long for the client to speak before assuming a server-speaks-first protocol. */
  serverFirstWaitMs: number;
  connectTimeoutMs: number;
  resolveTimeoutMs: number;
  /** Longest time to wait for a complete request head. */
  headTimeoutMs: number;
}

export const DEFAULT_TIMING: Timing = {
  helloTimeoutMs: 10_000,
  serverFirstWaitMs: 1_500,
  connectTimeoutMs: 10_000,
  resolveTimeoutMs: 10_000,
  headTimeoutMs: 30_000,
};

/**
 * Credential custody's TLS termination: CONNECTs to a credential route's
 * host:port are spliced to a local TLS server instead of the upstream.
 */
export interface TlsTerminator {
  terminates(host: string, port: number): boolean;
  /** A connection to the local TLS server (null when it is gone). */
  connect(): Promise<net.Socket | null>;
}

/** What the proxy needs from the gate; read at request time so reloads apply to new requests. */
export interface GateState {
  readonly config: EgressConfig;
  readonly policy: Policy;
  readonly dlp: Dlp;
  readonly audit: AuditSink;
  readonly rate: RateLimiter;
  readonly budget: ByteBudget;
  readonly resolve: Resolver;
  readonly connect: UpstreamConnector;
  readonly timing: Timing;
  /** Registers a socket so that closing the gate ends it. */
  track(socket: net.Socket): void;
  logError(message: string): void;
  /** Set when the bottle has credential routes. */
  readonly terminator?: TlsTerminator | null;
  /** Set when bottle-splice is there to take over bulk downloads. */
  readonly splice?: Splicer | null;
}

export const defaultConnector: UpstreamConnector = (address, port) =>
  net.connect({ host: address, port, allowHalfOpen: true, noDelay: true });

const TLS_ALERT_ACCESS_DENIED = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31]);
const REDACTED = "<redacted>";


export interface Denial {
  rule: DenyRule;
  detail?: string;
  category?: string;
  description?: string;
  reason?: string;
  /** Redact the host in the audit line and the response (DLP hit in the host itself). */
  redactHost?: boolean;
}

interface RequestContext {
  method: string;
  target: HostTarget | null;
  port: number;
  /** Plain HTTP: the path for the audit line. */
  path?: string;
  started: number;
}

function displayHost(ctx: RequestContext, denial?: Denial): string {
  if (denial?.redactHost) return REDACTED;
  return ctx.target?.host ?? "";
}

/** Sends the refusal, audits it, closes the connection. */
function refuse(state: GateState, client: net.Socket, ctx: RequestContext, denial: Denial): void {
  const host = auditDenial(state, ctx, denial);
  const body = denialBody({
    rule: denial.rule,
    bottle: state.config.bottle,
    host,
    port: ctx.port,
    ...(ctx.target ? { target: ctx.target } : {}),
    ...(denial.category !== undefined ? { category: denial.category } : {}),
    ...(denial.description !== undefined ? { description: denial.description } : {}),
    ...(denial.reason !== undefined ? { reason: denial.reason } : {}),
    ...(denial.rule === "rate-limit" ? { limit: state.config.limits.requestsPerMinute } : {}),
    ...(denial.rule === "bytes-out-limit" ? { limit: state.config.limits.bytesOut } : {}),
  });
  endWith(client, httpResponse(statusFor(denial.rule), denial.rule, body));
}

/** Writes the audit line of a refusal (a DLP finding's path redacted); returns the host as shown. */
function auditDenial(state: GateState, ctx: RequestContext, denial: Denial): string {
  const host = displayHost(ctx, denial);
  const isDlp = denial.rule.startsWith("dlp-");
  const entry: AuditInput = {
    method: ctx.method,
    host,
    port: ctx.port,
    decision: "deny",
    rule: denial.rule,
    bytesIn: 0,
    bytesOut: 0,
    durationMs: Date.now() - ctx.started,
  };
  if (ctx.path !== undefined) entry.path = isDlp ? REDACTED : auditPath(ctx.path);
  if (denial.detail !== undefined) entry.detail = denial.detail;
  state.audit.write(entry);
  return host;
}

function endWith(client: net.Socket, data: Buffer): void {
  if (client.destroyed) return;
  client.resume(); // drain whatever else the client sends
  client.end(data);
  setTimeout(() => client.destroy(), 2_000).unref();
}

/** Rate limit, byte budget, DLP and the allowlist, in that order. */
function admit(state: GateState, target: HostTarget, port: number, texts: string[]): Denial | { entry: string } {
  if (!state.rate.take()) return { rule: "rate-limit" };
  if (state.budget.exhausted) return { rule: "bytes-out-limit" };
  const finding = state.dlp.scan(texts);
  if (finding) {
    return {
      rule: finding.rule as DenyRule,
      description: finding.description,
      redactHost: state.dlp.scan([target.host]) !== null,
    };
  }
  const decision = state.policy.checkHost(target, port);
  if (!decision.ok) return { rule: decision.rule };
  return { entry: decision.entry };
}

export async function resolveAndVet(state: GateState, target: HostTarget): Promise<Denial | { addresses: Ip[] }> {
  let addresses: string[];
  if (target.kind === "ip") {
    addresses = [target.host];
  } else {
    try {
      addresses = await withTimeout(state.resolve(target.host), state.timing.resolveTimeoutMs, "resolve");
    } catch (error) {
      return { rule: "resolve-failed", detail: errorCode(error) || (error instanceof Error ? error.message : "lookup failed") };
    }
  }
  const vet = state.policy.vet(target, addresses);
  if (!vet.ok) {
    return { rule: vet.rule, detail: vet.detail, ...(vet.category !== undefined ? { category: vet.category } : {}) };
  }
  return { addresses: vet.addresses };
}

function connectOne(state: GateState, address: string, port: number): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    let socket: net.Socket;
    try {
      socket = state.connect(address, port);
    } catch {
      resolve(null);
      return;
    }
    state.track(socket);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(null);
    }, state.timing.connectTimeoutMs);
    const onError = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(null);
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeListener("error", onError);
      socket.on("error", () => undefined); // handled by the relay's close handling
      resolve(socket);
    });
  });
}

/** Connects to the vetted addresses in order (never resolving again). */
export async function connectVetted(state: GateState, addresses: readonly Ip[], port: number): Promise<net.Socket | null> {
  for (const ip of addresses) {
    const socket = await connectOne(state, formatIp(ip), port);
    if (socket) return socket;
  }
  return null;
}

function isAccepted(value: Denial | { entry: string }): value is { entry: string } {
  return "entry" in value;
}

/** Entry point for each accepted client connection. Never throws. */
export function handleClient(state: GateState, client: net.Socket): void {
  state.track(client);
  client.on("error", () => undefined);
  client.setNoDelay(true);
  const started = Date.now();
  const chunks: Buffer[] = [];
  let size = 0;
  const headTimer = setTimeout(() => client.destroy(), state.timing.headTimeoutMs);
  const onEnd = (): void => {
    clearTimeout(headTimer);
    client.destroy();
  };
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    size += chunk.length;
    const buf = chunks.length === 1 ? chunk : Buffer.concat(chunks);
    if (chunks.length > 1) {
      chunks.length = 0;
      chunks.push(buf);
    }
    const end = findHeadEnd(buf);
    if (end === -1 && size <= MAX_HEAD) return;
    client.removeListener("data", onData);
    client.removeListener("end", onEnd);
    client.pause();
    clearTimeout(headTimer);
    const ctx: RequestContext = { method: "?", target: null, port: 0, started };
    if (end === -1 || end > MAX_HEAD) {
      refuse(state, client, ctx, { rule: "bad-request", reason: "request head too large" });
      return;
    }
    const head = buf.subarray(0, end).toString("latin1");
    const rest = Buffer.from(buf.subarray(end));
    dispatch(state, client, head, rest, ctx).catch((error: unknown) => {
      state.logError(`egress gate: request failed: ${error instanceof Error ? error.message : String(error)}`);
      client.destroy();
    });
  };
  client.on("data", onData);
  client.on("end", onEnd);
}

async function dispatch(state: GateState, client: net.Socket, rawHead: string, rest: Buffer, ctx: RequestContext): Promise<void> {
  const head = parseRequestHead(rawHead);
  if (typeof head === "string") {
    refuse(state, client, ctx, { rule: "bad-request", reason: head });
    return;
  }
  ctx.method = head.method.slice(0, 32);
  if (head.method === "CONNECT") await handleConnect(state, client, head, rest, ctx);
  else await handlePlain(state, client, head, rest, ctx);
}

function headerTexts(headers: readonly Header[]): string[] {
  return headers.map(([name, value]) => `${name}: ${value}`);
}

// ---------------------------------------------------------------- CONNECT

type FirstBytes =
  | { kind: "hello"; sni: string | null; ech: boolean; data: Buffer }
  | { kind: "not-tls"; data: Buffer }
  | { kind: "invalid"; reason: string; data: Buffer }
  /** Explicit port: the client said nothing within serverFirstWaitMs. */
  | { kind: "silent" }
  | { kind: "timeout" }
  | { kind: "closed" };

function readFirstBytes(client: net.Socket, initial: Buffer, helloTimeoutMs: number, silentMs: number | null): Promise<FirstBytes> {
  return new Promise((resolve) => {
    let buf = initial;
    let settled = false;
    const timers: ReturnType<typeof setTimeout>[] = [];
    const finish = (result: FirstBytes): void => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      client.removeListener("data", onData);
      client.removeListener("end", onClose);
      client.removeListener("close", onClose);
      client.pause();
      resolve(result);
    };
    const check = (): void => {
      if (buf.length === 0) return;
      const parsed = parseClientHello(buf);
      switch (parsed.kind) {
        case "need-more":
          if (buf.length > MAX_CLIENT_HELLO + 1024) finish({ kind: "invalid", reason: "ClientHello too large", data: buf });
          return;
        case "not-tls":
          finish({ kind: "not-tls", data: buf });
          return;
        case "invalid":
          finish({ kind: "invalid", reason: parsed.reason, data: buf });
          return;
        case "hello":
          finish({ kind: "hello", sni: parsed.sni, ech: parsed.ech, data: buf });
          return;
      }
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      check();
    };
    const onClose = (): void => finish({ kind: "closed" });
    timers.push(setTimeout(() => finish({ kind: "timeout" }), helloTimeoutMs));
    if (silentMs !== null) {
      timers.push(
        setTimeout(() => {
          if (buf.length === 0) finish({ kind: "silent" });
        }, silentMs),
      );
    }
    check();
    if (settled) return;
    client.on("data", onData);
    client.once("end", onClose);
    client.once("close", onClose);
    client.resume();
  });
}

async function handleConnect(state: GateState, client: net.Socket, head: RequestHead, rest: Buffer, ctx: RequestContext): Promise<void> {
  const authority = parseAuthority(head.target);
  if (!authority) {
    refuse(state, client, ctx, { rule: "bad-request", reason: "CONNECT needs host:port" });
    return;
  }
  const { target, port } = authority;
  ctx.target = target;
  ctx.port = port;
  const admitted = admit(state, target, port, [`CONNECT ${head.target}`, ...headerTexts(head.headers)]);
  if (!isAccepted(admitted)) {
    refuse(state, client, ctx, admitted);
    return;
  }
  const vetted = await resolveAndVet(state, target);
  if (!("addresses" in vetted)) {
    refuse(state, client, ctx, vetted);
    return;
  }
  if (client.destroyed) return;
  client.write("HTTP/1.1 200 Connection established\r\n\r\n");

  const explicitPort = state.policy.explicitPort(target, port);
  const helloTimeout = Math.min(
    state.timing.helloTimeoutMs,
    state.config.limits.idleTimeoutMs > 0 ? state.config.limits.idleTimeoutMs : Number.MAX_SAFE_INTEGER,
  );
  const first = await readFirstBytes(client, rest, helloTimeout, explicitPort ? state.timing.serverFirstWaitMs : null);
  const tunnelDeny = (rule: string, detail?: string, alert = true): void => {
    const entry: AuditInput = {
      method: "CONNECT",
      host: target.host,
      port,
      decision: "deny",
      rule,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: Date.now() - ctx.started,
    };
    if (detail !== undefined) entry.detail = detail;
    state.audit.write(entry);
    if (alert && !client.destroyed) endWith(client, TLS_ALERT_ACCESS_DENIED);
    else client.destroy();
  };
  const tunnelAllowed = (counters: Counters, end: string, detail?: string): void =>
    state.audit.write(allowedEntry(ctx, target, port, admitted.entry, counters, end, detail !== undefined ? { detail } : {}));
  let initial: Buffer = Buffer.alloc(0);
  switch (first.kind) {
    case "closed":
      tunnelAllowed({ bytesIn: 0, bytesOut: 0 }, "client-closed");
      client.destroy();
      return;
    case "timeout":
      tunnelDeny("tls-timeout", "no complete TLS ClientHello in time", false);
      return;
    case "invalid":
      tunnelDeny("tls-invalid", first.reason);
      return;
    case "not-tls":
      if (!explicitPort) {
        tunnelDeny("not-tls", "CONNECT carries only TLS unless host:port is listed explicitly", false);
        return;
      }
      initial = first.data;
      break;
    case "silent":
      break;
    case "hello": {
      // With Encrypted Client Hello the outer SNI is only a cover name: the server really asked for is hidden from the gate.
      if (first.ech) {
        tunnelDeny("tls-ech", "the ClientHello carries Encrypted Client Hello, which hides the server it asks for");
        return;
      }
      if (first.sni === null) {
        if (target.kind !== "ip") {
          tunnelDeny("sni-missing", "the ClientHello names no server");
          return;
        }
      } else if (first.sni !== target.host) {
        const clean = state.dlp.scan([first.sni]) === null;
        tunnelDeny("sni-mismatch", clean ? `ClientHello names ${first.sni}` : "ClientHello names another server");
        return;
      }
      initial = first.data;
      break;
    }
  }

  // A credential route's host: TLS ends in the gate, which forwards each request itself.
  const terminated = target.kind === "name" && first.kind === "hello" && state.terminator?.terminates(target.host, port) === true;
  const upstream = terminated ? await state.terminator!.connect() : await connectVetted(state, vetted.addresses, port);
  if (!upstream) {
    tunnelDeny("upstream-unreachable", undefined, false);
    return;
  }
  if (client.destroyed) {
    upstream.destroy();
    return;
  }
  const counters = { bytesIn: 0, bytesOut: 0 };
  const end = await relay(state, client, upstream, counters, initial, ctx.started);
  tunnelAllowed(counters, end, terminated ? "TLS terminated in the gate for credential routes; requests are logged one by one" : undefined);
}

export interface Counters {
  bytesIn: number;
  bytesOut: number;
}

/** Common timers for a tunnel or exchange: idle timeout and max duration. */
function limitTimers(state: GateState, started: number, onExpire: (reason: string) => void): { touch(): void; clear(): void } {
  const { idleTimeoutMs, maxTunnelMs } = state.config.limits;
  let idle: ReturnType<typeof setTimeout> | null = null;
  let max: ReturnType<typeof setTimeout> | null = null;
  if (idleTimeoutMs > 0) idle = setTimeout(() => onExpire("idle-timeout"), idleTimeoutMs);
  if (maxTunnelMs > 0) max = setTimeout(() => onExpire("max-duration"), Math.max(0, started + maxTunnelMs - Date.now()));
  return {
    touch(): void {
      idle?.refresh();
    },
    clear(): void {
      if (idle) clearTimeout(idle);
      if (max) clearTimeout(max);
    },
  };
}

/**
 * What a tunnel and an exchange share: `finish` settles once (timers cleared;
 * forced: both sockets destroyed), the limit timers (`touch` on traffic),
 * `sendUp`, the one way bytes go upstream: charged to the byte budget, counted,
 * with backpressure on the client; and `download`, the hand-over of a bulky
 * download to bottle-splice (splice.ts), which counts into `counters.bytesIn`,
 * touches the timers, ends with `finish` on failure and calls `downloadEof`
 * when the upstream ended.
 */
function pairing(
  state: GateState,
  client: net.Socket,
  upstream: net.Socket,
  counters: Counters,
  started: number,
  settle: (reason: string) => void,
  downloadEof: () => void,
): { finish(reason: string, force: boolean): void; sendUp(chunk: Buffer): boolean; touch(): void; isDone(): boolean; download: DownloadSplice } {
  let done = false;
  const finish = (reason: string, force: boolean): void => {
    if (done) return;
    done = true;
    timers.clear();
    download.kill();
    if (force) {
      client.destroy();
      upstream.destroy();
    }
    settle(reason);
  };
  const timers = limitTimers(state, started, (reason) => finish(reason, true));
  const touch = (): void => timers.touch();
  const download = downloadSplice(state.splice, upstream, client, counters, touch, (end) => (end === "eof" ? downloadEof() : finish(end, true)));
  // Teardown from elsewhere (the gate closing) must not leave the copy running.
  client.once("close", () => download.kill());
  upstream.once("close", () => download.kill());
  const sendUp = (chunk: Buffer): boolean => {
    if (chunk.length === 0) return true;
    if (!state.budget.spend(chunk.length)) {
      finish("bytes-out-limit", true);
      return false;
    }
    counters.bytesOut += chunk.length;
    if (!upstream.write(chunk)) client.pause();
    return true;
  };
  return { finish, sendUp, touch, isDone: () => done, download };
}

/**
 * Splices client ↔ upstream until both sides are closed, enforcing the byte
 * budget, idle timeout and max duration. Resolves with why it ended.
 */
export function relay(state: GateState, client: net.Socket, upstream: net.Socket, counters: Counters, initial: Buffer, started: number): Promise<string> {
  return new Promise((resolve) => {
    let clientClosed = false;
    let upstreamClosed = false;
    const { finish, sendUp, touch, download } = pairing(state, client, upstream, counters, started, resolve, () => {
      client.end();
      closeWhenWritten(upstream);
    });
    client.on("data", (chunk: Buffer) => {
      touch();
      sendUp(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      touch();
      counters.bytesIn += chunk.length;
      if (!client.write(chunk)) upstream.pause();
      else download.tryStart();
    });
    upstream.on("drain", () => client.resume());
    client.on("drain", () => {
      if (!download.tryStart()) upstream.resume();
    });
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
    client.on("error", () => finish("client-error", true));
    upstream.on("error", () => finish("upstream-error", true));
    client.on("close", () => {
      clientClosed = true;
      if (upstreamClosed) finish("closed", false);
      else upstream.end();
    });
    upstream.on("close", () => {
      upstreamClosed = true;
      if (clientClosed) finish("closed", false);
      else client.end();
    });
    if (initial.length > 0 && !sendUp(initial)) return;
    client.resume();
  });
}

// ---------------------------------------------------------------- plain HTTP

async function handlePlain(state: GateState, client: net.Socket, head: RequestHead, rest: Buffer, ctx: RequestContext): Promise<void> {
  const rawTarget = head.target;
  if (rawTarget.startsWith("/") || rawTarget === "*") {
    refuse(state, client, ctx, { rule: "not-absolute-form" });
    return;
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(rawTarget);
  if (!scheme) {
    refuse(state, client, ctx, { rule: "bad-request", reason: "malformed request URI" });
    return;
  }
  if ((scheme[1] ?? "").toLowerCase() !== "http") {
    refuse(state, client, ctx, { rule: "unsupported-scheme" });
    return;
  }
  const afterScheme = rawTarget.slice(scheme[0].length);
  let authorityEnd = afterScheme.search(/[/?#]/);
  if (authorityEnd === -1) authorityEnd = afterScheme.length;
  const authority = afterScheme.slice(0, authorityEnd);
  let path = afterScheme.slice(authorityEnd);
  const hash = path.indexOf("#");
  if (hash !== -1) path = path.slice(0, hash);
  if (path === "") path = "/";
  else if (path.startsWith("?")) path = `/${path}`;
  ctx.path = path;
  if (authority.includes("@")) {
    refuse(state, client, ctx, { rule: "bad-request", reason: "credentials in the request URI" });
    return;
  }
  const uri = parseHostPort(authority, 80);
  if (!uri) {
    refuse(state, client, ctx, { rule: "bad-request", reason: "malformed host in the request URI" });
    return;
  }
  ctx.target = uri.target;
  ctx.port = uri.port;

  const hostProblem = hostHeaderProblem(head.headers, uri.target, uri.port, 80);
  if (hostProblem) {
    refuse(state, client, ctx, hostProblem);
    return;
  }
  const framing = requestFraming(head.headers);
  if (framing.kind === "error") {
    refuse(state, client, ctx, { rule: "bad-request", reason: framing.reason });
    return;
  }
  const admitted = admit(state, uri.target, uri.port, [`${head.method} ${rawTarget}`, ...headerTexts(head.headers)]);
  if (!isAccepted(admitted)) {
    refuse(state, client, ctx, admitted);
    return;
  }
  const vetted = await resolveAndVet(state, uri.target);
  if (!("addresses" in vetted)) {
    refuse(state, client, ctx, vetted);
    return;
  }
  if (client.destroyed) return;
  const upstream = await connectVetted(state, vetted.addresses, uri.port);
  if (!upstream) {
    refuse(state, client, ctx, { rule: "upstream-unreachable" });
    return;
  }
  if (client.destroyed) {
    upstream.destroy();
    return;
  }
  const hostValue = headerValues(head.headers, "host")[0] ?? authority;
  const forwarded = stripHopByHop(head.headers).filter(([name]) => name.toLowerCase() !== "host");
  const upstreamHead = Buffer.from(
    `${head.method} ${path} HTTP/1.1\r\nHost: ${hostValue}\r\n${serializeHeaders(forwarded)}Connection: close\r\n\r\n`,
    "latin1",
  );
  const counters: Counters = { bytesIn: 0, bytesOut: 0 };
  const result = await exchange(state, client, upstream, counters, upstreamHead, rest, new RequestBody(framing, state.dlp), ctx.started);
  if (result.blocked) {
    // The upstream was cut off before the secret's bytes; the bottle hears why unless the response had begun.
    const denial: Denial = { rule: result.blocked.rule as DenyRule, description: result.blocked.description, reason: "in its body" };
    if (result.status === undefined) refuse(state, client, ctx, denial);
    else {
      auditDenial(state, ctx, denial);
      client.destroy();
    }
    return;
  }
  state.audit.write(
    allowedEntry(ctx, uri.target, uri.port, admitted.entry, counters, result.end, {
      path: auditPath(path),
      ...(result.status !== undefined ? { status: result.status } : {}),
    }),
  );
}

/** The audit line of an allowed tunnel or exchange, once it ended (field order as in every other line). */
function allowedEntry(
  ctx: RequestContext,
  target: HostTarget,
  port: number,
  match: string,
  counters: Counters,
  end: string,
  extra: { path?: string; status?: number; detail?: string },
): AuditInput {
  const { path, ...after } = extra;
  return {
    method: ctx.method,
    host: target.host,
    port,
    ...(path !== undefined ? { path } : {}),
    decision: "allow",
    rule: "allowlist",
    match,
    bytesIn: counters.bytesIn,
    bytesOut: counters.bytesOut,
    durationMs: Date.now() - ctx.started,
    end,
    ...after,
  };
}

/**
 * One request/response exchange: forwards the rewritten head and exactly the
 * request body (further client bytes are dropped, the connection then
 * closes), then relays the response with a rewritten head. A secret in the
 * body ends it (`blocked`) before the bytes carrying it are sent; `status`
 * says whether a final response had been relayed by then.
 */
function exchange(
  state: GateState,
  client: net.Socket,
  upstream: net.Socket,
  counters: Counters,
  upstreamHead: Buffer,
  rest: Buffer,
  body: RequestBody,
  started: number,
): Promise<{ end: string; status?: number; blocked?: DlpFinding }> {
  return new Promise((resolve) => {
    let status: number | undefined;
    let blocked: DlpFinding | null = null;
    const { finish, sendUp, touch, isDone, download } = pairing(
      state,
      client,
      upstream,
      counters,
      started,
      (end) => resolve({ end, ...(status !== undefined ? { status } : {}), ...(blocked ? { blocked } : {}) }),
      () => {
        client.end();
        upstream.end();
        closeWhenWritten(upstream);
      },
    );

    // --- request body
    const onClientData = (chunk: Buffer): void => {
      touch();
      if (body.done || blocked) return;
      const step = body.feed(chunk);
      if ("error" in step) {
        finish("bad-request-body", true);
        return;
      }
      if ("finding" in step) {
        // The caller answers the bottle (the client stays open for that).
        blocked = step.finding;
        finish("dlp", false);
        upstream.destroy();
        return;
      }
      if (!sendUp(step.out)) return;
      if (body.done) client.pause();
    };
    const onClientGone = (): void => {
      if (!body.done) finish("client-closed", true);
    };
    // --- response state
    let responseStarted = false;
    let headBuf: Buffer = Buffer.alloc(0);
    let inBody = false;

    client.on("data", onClientData);
    client.on("end", onClientGone);
    // The client went away before the exchange finished: drop the upstream side too.
    client.on("close", () => finish("client-closed", true));
    client.on("error", () => finish("client-error", true));
    upstream.on("drain", () => {
      if (!body.done) client.resume();
    });

    const onUpstreamData = (chunk: Buffer): void => {
      touch();
      counters.bytesIn += chunk.length;
      if (inBody) {
        if (!client.write(chunk)) upstream.pause();
        else download.tryStart();
        return;
      }
      headBuf = headBuf.length === 0 ? chunk : Buffer.concat([headBuf, chunk]);
      for (;;) {
        const end = findHeadEnd(headBuf);
        if (end === -1) {
          if (headBuf.length > MAX_HEAD) badGateway("response head too large");
          return;
        }
        const parsed = parseResponseHead(headBuf.subarray(0, end).toString("latin1"));
        if (typeof parsed === "string") {
          badGateway(parsed);
          return;
        }
        if (parsed.status === 101) {
          badGateway("unexpected protocol switch");
          return;
        }
        // The body goes on as the upstream framed it: its Transfer-Encoding stays.
        const headers = responseHeaders(parsed.headers, false);
        const interim = parsed.status >= 100 && parsed.status < 200;
        const text = `${parsed.version} ${parsed.status}${parsed.reason ? ` ${parsed.reason}` : ""}\r\n${serializeHeaders(headers)}${interim ? "" : "Connection: close\r\n"}\r\n`;
        responseStarted = true;
        client.write(Buffer.from(text, "latin1"));
        const after = headBuf.subarray(end);
        headBuf = Buffer.alloc(0);
        if (interim) {
          headBuf = Buffer.from(after);
          if (headBuf.length === 0) return;
          continue;
        }
        status = parsed.status;
        inBody = true;
        if (after.length > 0 && !client.write(after)) upstream.pause();
        return;
      }
    };
    const badGateway = (reason: string): void => {
      if (!responseStarted && !client.destroyed) {
        const body = `bottle egress gate: the upstream server sent a malformed response: ${reason} (rule: bad-response).\n`;
        client.end(httpResponse(502, "bad-response", body));
      }
      upstream.destroy();
      finish("bad-response", false);
      setTimeout(() => client.destroy(), 2_000).unref();
    };
    upstream.on("data", onUpstreamData);
    client.on("drain", () => {
      if (!(inBody && download.tryStart())) upstream.resume();
    });
    upstream.on("error", () => {
      if (!responseStarted && !isDone()) {
        badGateway("connection failed");
        return;
      }
      finish("upstream-error", true);
    });
    upstream.on("end", () => {
      if (blocked) return;
      if (!responseStarted) {
        badGateway("closed without a response");
        return;
      }
      client.end();
      upstream.end();
    });
    upstream.on("close", () => {
      if (!responseStarted && !isDone()) {
        badGateway("closed without a response");
        return;
      }
      if (!client.destroyed && !blocked) client.end();
      finish("closed", false);
    });

    // The client is still paused here: sendUp's backpressure pause changes nothing.
    if (!sendUp(upstreamHead)) return;
    if (rest.length > 0) onClientData(rest);
    if (!isDone() && !body.done) client.resume();
  });
}
