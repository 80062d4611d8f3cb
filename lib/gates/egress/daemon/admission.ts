/**
 * Whether a request may go out, one copy for the plain proxy, CONNECT, the
 * credential routes and Claude Code's route: the rate limit, the byte
 * budget, DLP over what the bottle sent, the allowlist, the vetting of
 * resolved addresses, and what a decision writes to the audit log and
 * answers. The paths only say what they saw; they never ask the limits,
 * DLP or the policy themselves.
 */
import type { Ip } from "./addresses.ts";
import { errorCode, withTimeout } from "./async.ts";
import { type AuditInput, auditPath } from "./audit.ts";
import type { DlpFinding } from "./dlp.ts";
import type { Header } from "./headers.ts";
import { type DenyRule, denialBody, statusFor } from "./denial-messages.ts";
import type { HostTarget } from "./policy.ts";
import type { GuardSource } from "./request-body.ts";
import type { GateState } from "./state.ts";

/** What an audit line shows instead of a host or path that carries a secret. */
export const REDACTED = "<redacted>";

export interface Denial {
  rule: DenyRule;
  detail?: string;
  category?: string;
  description?: string;
  reason?: string;
}

/** What the audit line and the refusal say about a request. */
export interface RequestContext {
  method: string;
  /** Null until the request named one (a malformed head). */
  target: HostTarget | null;
  port: number;
  /** Requests the gate reads (not CONNECT): the path for the audit line. */
  path?: string;
  started: number;
}

export interface Counters {
  bytesIn: number;
  bytesOut: number;
}

/** What DLP reads of a request's head: its request line, then each header line. */
export function requestTexts(requestLine: string, headers: readonly Header[]): string[] {
  return [requestLine, ...headers.map(([name, value]) => `${name}: ${value}`)];
}

/** Rate limit, byte budget, DLP over `texts` and the allowlist, in that order; admitted: the allowlist entry that matched. */
export function admit(state: GateState, target: HostTarget, port: number, texts: readonly string[]): Denial | { entry: string } {
  if (!state.rate.take()) return { rule: "rate-limit" };
  if (state.budget.exhausted) return { rule: "bytes-out-limit" };
  const finding = state.dlp.scan(texts);
  if (finding) return { rule: finding.rule as DenyRule, description: finding.description };
  const decision = state.policy.checkHost(target, port);
  if (!decision.ok) return { rule: decision.rule };
  return { entry: decision.entry };
}

export function isAdmitted(value: Denial | { entry: string }): value is { entry: string } {
  return "entry" in value;
}

/** Whether an admitted CONNECT to `target:port` was listed as that `host:port` (port ≠ 443): then it may carry more than TLS. */
export function listedExplicitly(state: GateState, target: HostTarget, port: number): boolean {
  return state.policy.explicitPort(target, port);
}

/** Resolves `target` (an IP literal as it is) and vets every address it got; the ones to connect to, in order. */
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

/** Charges `bytes` about to go upstream to the bottle's byte budget; false (nothing charged) when they would exceed it. */
export function chargeBytesOut(state: GateState, bytes: number): boolean {
  return state.budget.spend(bytes);
}

/** Where a request body's DLP guards come from: the bottle's secrets, in every form. */
export function bodyGuards(state: GateState): GuardSource {
  return state.dlp;
}

/** The denial for a secret found in a request body. */
export function bodyDenial(finding: DlpFinding): Denial {
  return { rule: finding.rule as DenyRule, description: finding.description, reason: "in its body" };
}

/** Whether `text` carries a secret, so that an audit line must not show it. */
export function carriesSecret(state: GateState, text: string): boolean {
  return text !== "" && state.dlp.scan([text]) !== null;
}

/**
 * The host and path a denial's audit line and refusal show: each redacted
 * when it carries a secret, whatever rule denied (a request over the rate
 * limit is still scanned); after a DLP finding the path always is, as the
 * secret may sit anywhere in the request.
 */
function shown(state: GateState, ctx: RequestContext, denial: Denial): { host: string; path?: string } {
  const host = ctx.target?.host ?? "";
  const shownHost = carriesSecret(state, host) ? REDACTED : host;
  if (ctx.path === undefined) return { host: shownHost };
  const dlp = denial.rule.startsWith("dlp-");
  return { host: shownHost, path: dlp || carriesSecret(state, ctx.path) ? REDACTED : auditPath(ctx.path) };
}

/** Writes a denial's audit line; returns the host as shown. For refusals that answer nothing more (a TLS alert, a response already begun). */
export function auditDenial(state: GateState, ctx: RequestContext, denial: Denial): string {
  const { host, path } = shown(state, ctx, denial);
  const entry: AuditInput = {
    method: ctx.method,
    host,
    port: ctx.port,
    ...(path !== undefined ? { path } : {}),
    decision: "deny",
    rule: denial.rule,
    bytesIn: 0,
    bytesOut: 0,
    durationMs: Date.now() - ctx.started,
  };
  if (denial.detail !== undefined) entry.detail = denial.detail;
  state.audit.write(entry);
  return host;
}

export interface Refusal {
  status: number;
  rule: DenyRule;
  /** Which rule denied it and how to allow it; never a secret. */
  body: string;
}

/** Denies a request: writes the audit line and returns the refusal to answer with. */
export function deny(state: GateState, ctx: RequestContext, denial: Denial): Refusal {
  const host = auditDenial(state, ctx, denial);
  const { limits, bottle } = state.config;
  const body = denialBody({
    rule: denial.rule,
    bottle,
    host,
    port: ctx.port,
    ...(ctx.target ? { target: ctx.target } : {}),
    ...(denial.category !== undefined ? { category: denial.category } : {}),
    ...(denial.description !== undefined ? { description: denial.description } : {}),
    ...(denial.reason !== undefined ? { reason: denial.reason } : {}),
    ...(denial.rule === "rate-limit" ? { limit: limits.requestsPerMinute } : {}),
    ...(denial.rule === "bytes-out-limit" ? { limit: limits.bytesOut } : {}),
  });
  return { status: statusFor(denial.rule), rule: denial.rule, body };
}

/** What an allowed request's audit line says besides the request and its counts. */
export interface Allowed {
  /** "allowlist", or "route" when custody added a credential. */
  rule: "allowlist" | "route";
  /** The allowlist entry (or route) that matched. */
  match: string;
  /** Why it ended: "closed", "idle-timeout", "bytes-out-limit", … */
  end: string;
  status?: number;
  detail?: string;
  /** "injected (NAME)" when custody added a credential. */
  auth?: string;
}

/** Writes the audit line of an allowed tunnel or request, once it ended. */
export function auditAllowed(state: GateState, ctx: RequestContext & { target: HostTarget }, counters: Counters, allowed: Allowed): void {
  const { rule, match, end, ...rest } = allowed;
  state.audit.write({
    method: ctx.method,
    host: ctx.target.host,
    port: ctx.port,
    ...(ctx.path !== undefined ? { path: auditPath(ctx.path) } : {}),
    decision: "allow",
    rule,
    match,
    bytesIn: counters.bytesIn,
    bytesOut: counters.bytesOut,
    durationMs: Date.now() - ctx.started,
    end,
    ...rest,
  });
}
