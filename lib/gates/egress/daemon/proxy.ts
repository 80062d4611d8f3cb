/**
 * The egress gate's proxy port, on plain node:net sockets with a strict
 * hand-written HTTP/1 head parser. One client connection carries one
 * request (plain HTTP, plain-http.ts) or one tunnel (CONNECT, connect.ts);
 * every decision is audited.
 */
import type * as net from "node:net";
import type { RequestContext } from "./admission.ts";
import { handleConnect } from "./connect.ts";
import { MAX_HEAD, findHeadEnd, parseRequestHead } from "./http1.ts";
import { handlePlain } from "./plain-http.ts";
import { refuse } from "./refusal.ts";
import type { GateState } from "./state.ts";

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
