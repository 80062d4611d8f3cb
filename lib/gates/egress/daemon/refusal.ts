/** Refusals on a raw client socket: the proxy port's, and a credential route's for a head node cannot parse. */
import type * as net from "node:net";
import { type Denial, type RequestContext, deny } from "./admission.ts";
import { httpResponse } from "./denial-messages.ts";
import type { GateState } from "./state.ts";

/** Denies the request (audited), answers why, closes the connection. */
export function refuse(state: GateState, client: net.Socket, ctx: RequestContext, denial: Denial): void {
  const refusal = deny(state, ctx, denial);
  endWith(client, httpResponse(refusal.status, refusal.rule, refusal.body));
}

export function endWith(client: net.Socket, data: Buffer): void {
  if (client.destroyed) return;
  client.resume(); // drain whatever else the client sends
  client.end(data);
  setTimeout(() => client.destroy(), 2_000).unref();
}
