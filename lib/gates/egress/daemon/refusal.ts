/** Refusals on the client's own socket (the plain proxy and CONNECT, before the tunnel). */
import type * as net from "node:net";
import { type Denial, type RequestContext, auditDenial } from "./admission.ts";
import { denialBody, httpResponse, statusFor } from "./messages.ts";
import type { GateState } from "./state.ts";

/** Sends the refusal, audits it, closes the connection. */
export function refuse(state: GateState, client: net.Socket, ctx: RequestContext, denial: Denial): void {
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

export function endWith(client: net.Socket, data: Buffer): void {
  if (client.destroyed) return;
  client.resume(); // drain whatever else the client sends
  client.end(data);
  setTimeout(() => client.destroy(), 2_000).unref();
}
