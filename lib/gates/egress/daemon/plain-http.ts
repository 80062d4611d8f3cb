/**
 * Plain-HTTP requests in absolute form (GET http://host/path): admitted,
 * sent upstream with a rewritten head and exactly their body (DLP guards it
 * as it streams), and the response relayed with a rewritten head.
 */
import type * as net from "node:net";
import {
  type Counters,
  type RequestContext,
  admit,
  auditAllowed,
  auditDenial,
  bodyDenial,
  bodyGuards,
  isAdmitted,
  requestTexts,
  resolveAndVet,
} from "./admission.ts";
import { httpResponse } from "./denial-messages.ts";
import type { DlpFinding } from "./dlp.ts";
import { headerValues, hostHeaderProblem, parseHostPort, responseHeaders, serializeHeaders, stripHopByHop } from "./headers.ts";
import { type RequestHead, MAX_HEAD, findHeadEnd, parseResponseHead, requestFraming } from "./http1.ts";
import { pairing } from "./relay.ts";
import { refuse } from "./refusal.ts";
import { RequestBody } from "./request-body.ts";
import { closeWhenWritten } from "./splice.ts";
import type { GateState } from "./state.ts";
import { connectVetted } from "./upstream.ts";

/** One plain-HTTP request on `client` (its head parsed; `rest`: what the client sent after it), to its response's end. */
export async function handlePlain(state: GateState, client: net.Socket, head: RequestHead, rest: Buffer, ctx: RequestContext): Promise<void> {
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
  const admitted = admit(state, uri.target, uri.port, requestTexts(`${head.method} ${rawTarget}`, head.headers));
  if (!isAdmitted(admitted)) {
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
  const result = await exchange(state, client, upstream, counters, upstreamHead, rest, new RequestBody(framing, bodyGuards(state)), ctx.started);
  if (result.blocked) {
    // The upstream was cut off before the secret's bytes; the bottle hears why unless the response had begun.
    const denial = bodyDenial(result.blocked);
    if (result.status === undefined) refuse(state, client, ctx, denial);
    else {
      auditDenial(state, ctx, denial);
      client.destroy();
    }
    return;
  }
  auditAllowed(state, { ...ctx, target: uri.target }, counters, {
    rule: "allowlist",
    match: admitted.entry,
    end: result.end,
    ...(result.status !== undefined ? { status: result.status } : {}),
  });
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
