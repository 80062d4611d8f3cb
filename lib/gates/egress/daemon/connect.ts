/**
 * CONNECT tunnels: admitted like any request, then only TLS whose
 * ClientHello names the CONNECT host (no ECH), unless the host:port is
 * listed explicitly; a credential route's host is spliced to the gate's own
 * TLS terminator.
 */
import type * as net from "node:net";
import {
  type Counters,
  type RequestContext,
  admit,
  auditAllowed,
  auditDenial,
  carriesSecret,
  isAdmitted,
  listedExplicitly,
  requestTexts,
  resolveAndVet,
} from "./admission.ts";
import type { DenyRule } from "./denial-messages.ts";
import { parseAuthority } from "./headers.ts";
import type { RequestHead } from "./http1.ts";
import { relay } from "./relay.ts";
import { endWith, refuse } from "./refusal.ts";
import { MAX_CLIENT_HELLO, parseClientHello } from "./sni.ts";
import type { GateState } from "./state.ts";
import { connectVetted } from "./upstream.ts";

const TLS_ALERT_ACCESS_DENIED = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31]);

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

/** One CONNECT on `client` (its head parsed; `rest`: what the client sent after it), to its tunnel's end. */
export async function handleConnect(state: GateState, client: net.Socket, head: RequestHead, rest: Buffer, ctx: RequestContext): Promise<void> {
  const authority = parseAuthority(head.target);
  if (!authority) {
    refuse(state, client, ctx, { rule: "bad-request", reason: "CONNECT needs host:port" });
    return;
  }
  const { target, port } = authority;
  ctx.target = target;
  ctx.port = port;
  const admitted = admit(state, target, port, requestTexts(`CONNECT ${head.target}`, head.headers));
  if (!isAdmitted(admitted)) {
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

  const explicitPort = listedExplicitly(state, target, port);
  const helloTimeout = Math.min(
    state.timing.helloTimeoutMs,
    state.config.limits.idleTimeoutMs > 0 ? state.config.limits.idleTimeoutMs : Number.MAX_SAFE_INTEGER,
  );
  const first = await readFirstBytes(client, rest, helloTimeout, explicitPort ? state.timing.serverFirstWaitMs : null);
  // Past `200 Connection established` a refusal is a TLS alert (or a close), and its audit line.
  const tunnelDeny = (rule: DenyRule, detail?: string, alert = true): void => {
    auditDenial(state, ctx, { rule, ...(detail !== undefined ? { detail } : {}) });
    if (alert && !client.destroyed) endWith(client, TLS_ALERT_ACCESS_DENIED);
    else client.destroy();
  };
  const tunnelAllowed = (counters: Counters, end: string, detail?: string): void =>
    auditAllowed(state, { ...ctx, target }, counters, { rule: "allowlist", match: admitted.entry, end, ...(detail !== undefined ? { detail } : {}) });
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
        tunnelDeny("sni-mismatch", carriesSecret(state, first.sni) ? "ClientHello names another server" : `ClientHello names ${first.sni}`);
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
