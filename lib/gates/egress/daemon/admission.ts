/**
 * Whether a request may go out, and what is written and answered when it
 * may not: the rate limit, the byte budget, DLP, the allowlist, the vetting
 * of resolved addresses, and the audit line of every decision.
 */
import type { Ip } from "./addresses.ts";
import { errorCode, withTimeout } from "./async.ts";
import { type AuditInput, auditPath } from "./audit.ts";
import type { Header } from "./headers.ts";
import type { DenyRule } from "./messages.ts";
import type { HostTarget } from "./policy.ts";
import type { Counters } from "./relay.ts";
import type { GateState } from "./state.ts";

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

/** What an audit line and a refusal say about a request. */
export interface RequestContext {
  method: string;
  target: HostTarget | null;
  port: number;
  /** Plain HTTP: the path for the audit line. */
  path?: string;
  started: number;
}

export function displayHost(ctx: RequestContext, denial?: Denial): string {
  if (denial?.redactHost) return REDACTED;
  return ctx.target?.host ?? "";
}

/** Writes the audit line of a refusal (a DLP finding's path redacted); returns the host as shown. */
export function auditDenial(state: GateState, ctx: RequestContext, denial: Denial): string {
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

/** What DLP reads of a request's head: each header line. */
export function headerTexts(headers: readonly Header[]): string[] {
  return headers.map(([name, value]) => `${name}: ${value}`);
}

/** Rate limit, byte budget, DLP and the allowlist, in that order. */
export function admit(state: GateState, target: HostTarget, port: number, texts: string[]): Denial | { entry: string } {
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

export function isAccepted(value: Denial | { entry: string }): value is { entry: string } {
  return "entry" in value;
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

/** The audit line of an allowed tunnel or exchange, once it ended (field order as in every other line). */
export function allowedEntry(
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
