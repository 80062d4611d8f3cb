/**
 * Header grammar and header rules, one copy for every path through the gate
 * (the plain proxy, CONNECT, the credential routes and Claude Code's
 * route): the token grammar, which headers are hop-by-hop and never cross
 * the gate in either direction, and the grammar of a Host header or
 * request authority. Pure code; values are latin1 "byte strings".
 */
import { type HostTarget, normalizeHost } from "./policy.ts";

export type Header = [name: string, value: string];

/** RFC 9110 §5.6.2 `token`: header names, methods, auth schemes. */
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export function headerValues(headers: readonly Header[], name: string): string[] {
  const lower = name.toLowerCase();
  return headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
}

export function serializeHeaders(headers: readonly Header[]): string {
  return headers.map(([name, value]) => `${name}: ${value}\r\n`).join("");
}

export function removeHeaders(headers: readonly Header[], names: readonly string[]): Header[] {
  const lower = new Set(names.map((name) => name.toLowerCase()));
  return headers.filter(([n]) => !lower.has(n.toLowerCase()));
}

/** Replaces every `name` header (any case) with one `name: value`. */
export function setHeader(headers: readonly Header[], name: string, value: string): Header[] {
  return [...removeHeaders(headers, [name]), [name, value]];
}

/** Hop-by-hop headers (RFC 9110 §7.6.1); every `Proxy-*` header is one too. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"]);

function isHopByHop(lowerName: string): boolean {
  return HOP_BY_HOP.has(lowerName) || lowerName.startsWith("proxy-");
}

/**
 * A request's headers as they go upstream: without hop-by-hop headers and
 * those the request's Connection header names. Transfer-Encoding is kept:
 * the body goes on as it came.
 */
export function stripHopByHop(headers: readonly Header[]): Header[] {
  const named = new Set(
    headerValues(headers, "connection")
      .join(",")
      .split(",")
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== "" && s !== "transfer-encoding" && s !== "content-length" && s !== "host"),
  );
  return headers.filter(([name]) => {
    const lower = name.toLowerCase();
    return !isHopByHop(lower) && !named.has(lower);
  });
}

/**
 * A response's headers as they go to the bottle: without hop-by-hop
 * headers. `reframed`: the gate sends the body with framing of its own (it
 * decodes and scrubs it), so the upstream's Transfer-Encoding goes too; a
 * body relayed as the upstream framed it keeps it.
 */
export function responseHeaders(headers: readonly Header[], reframed: boolean): Header[] {
  return headers.filter(([name]) => {
    const lower = name.toLowerCase();
    return !isHopByHop(lower) && !(reframed && lower === "transfer-encoding");
  });
}

/**
 * RFC 3986 authority without userinfo: `host`, `host:port`, `[v6]:port`.
 * An empty port (`host:`) is the default one, as is a missing port.
 */
const AUTHORITY = /^(\[[^\]]*\]|[^:[\]@]*)(?::([0-9]{0,5}))?$/;

/**
 * Host and port of a request URI's authority or a Host header; a missing
 * or empty port is `defaultPort` (null: the port is mandatory, as in a
 * CONNECT). Null when malformed.
 */
export function parseHostPort(authority: string, defaultPort: number | null): { target: HostTarget; port: number } | null {
  const match = AUTHORITY.exec(authority);
  if (!match) return null;
  const portText = match[2] ?? "";
  const port = portText === "" ? defaultPort : Number(portText);
  if (port === null || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  const target = normalizeHost(match[1] ?? "");
  return target ? { target, port } : null;
}

/** A CONNECT's `host:port` or `[v6]:port`: the port is mandatory. */
export function parseAuthority(authority: string): { target: HostTarget; port: number } | null {
  return parseHostPort(authority, null);
}

/** Whether a Host header names `target:port` (its port defaulting to the scheme's `defaultPort`). */
export function hostHeaderNames(value: string, target: HostTarget, port: number, defaultPort: number): boolean {
  const claimed = parseHostPort(value, defaultPort);
  return claimed !== null && claimed.target.host === target.host && claimed.port === port;
}

/** A request's Host headers for `target:port`: at most one, and it names the target. Null when they pass. */
export function hostHeaderProblem(
  headers: readonly Header[],
  target: HostTarget,
  port: number,
  defaultPort: number,
): { rule: "bad-request"; reason: string } | { rule: "host-header-mismatch" } | null {
  const claimed = headerValues(headers, "host");
  if (claimed.length > 1) return { rule: "bad-request", reason: "more than one Host header" };
  const value = claimed[0];
  if (value !== undefined && !hostHeaderNames(value, target, port, defaultPort)) return { rule: "host-header-mismatch" };
  return null;
}
