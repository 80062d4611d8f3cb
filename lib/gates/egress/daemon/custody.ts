/**
 * Credential custody, the pure part: placeholders, credential routes and
 * their matching, header injection, and scrubbing of responses. The real
 * values live only in the gate (a root-only credentials file); the bottle
 * holds a fixed-format placeholder that the gate swaps for the real value on
 * matching requests. Runs in the gate under Node and in unit tests under Bun.
 */
import { type ClaudeCredentialKind, CREDENTIAL_NAME, type RouteConfig } from "./config-schema.ts";
import { type Header, removeHeaders, setHeader } from "./headers.ts";
import { SecretMatcher, SecretStream, type StreamPart } from "./secret-match.ts";

/** Every placeholder starts with this; the rest is the variable's name. */
export const PLACEHOLDER_PREFIX = "bottle-placeholder-";

/** The obviously fake value a bottle holds instead of the credential `name`. */
export function placeholderFor(name: string): string {
  if (!CREDENTIAL_NAME.test(name)) throw new Error(`not a valid credential name: ${JSON.stringify(name)}`);
  return `${PLACEHOLDER_PREFIX}${name}`;
}

/** Whether `value` is a placeholder (harmless: DLP ignores it, it never counts as a secret). */
export function isPlaceholder(value: string): boolean {
  return value.startsWith(PLACEHOLDER_PREFIX) && CREDENTIAL_NAME.test(value.slice(PLACEHOLDER_PREFIX.length));
}

/**
 * Whether `path` (without query) is under `prefix`, on segment boundaries:
 * "/repos/acme" matches "/repos/acme" and "/repos/acme/x", not "/repos/acmecorp".
 */
export function pathMatches(prefix: string, path: string): boolean {
  if (prefix === "" || prefix === "/") return true;
  if (path === prefix) return true;
  const base = prefix.endsWith("/") ? prefix : `${prefix}/`;
  return path.startsWith(base);
}

/** The path of a request target without query or fragment. */
export function pathOf(target: string): string {
  const cut = target.search(/[?#]/);
  return cut === -1 ? target : target.slice(0, cut);
}

/**
 * Whether a request path is plain enough to match prefixes on: no dot
 * segments (also percent-encoded), no encoded slashes or backslashes, no
 * empty segments. A request that is not gets no credential (a server would
 * normalise `/allowed/../other` into a path the route does not cover).
 */
export function plainPath(path: string): boolean {
  if (!path.startsWith("/")) return false;
  if (/%2e|%2f|%5c|\\/i.test(path)) return false;
  if (path.includes("//")) return false;
  return !path.split("/").some((segment) => segment === "." || segment === "..");
}

/**
 * The route whose credential a request gets: same host and port, method
 * listed (or none listed), and the longest matching path prefix; on a tie the
 * later route wins (a child bottle's over its parent's). Null when none
 * matches or the path is not plain.
 */
export function matchRoute(routes: readonly RouteConfig[], host: string, port: number, method: string, target: string): RouteConfig | null {
  const path = pathOf(target);
  if (!plainPath(path)) return null;
  const upper = method.toUpperCase();
  let best: RouteConfig | null = null;
  let bestLength = -1;
  for (const route of routes) {
    if (route.host !== host || route.port !== port) continue;
    if (route.methods.length > 0 && !route.methods.includes(upper)) continue;
    const prefixes = route.paths.length > 0 ? route.paths : [""];
    for (const prefix of prefixes) {
      if (!pathMatches(prefix, path)) continue;
      if (prefix.length >= bestLength) {
        best = route;
        bestLength = prefix.length;
      }
    }
  }
  return best;
}

/** The header value a route sends: `<scheme> <token>` or the token alone. */
export function authValue(route: Pick<RouteConfig, "scheme">, token: string): string {
  return route.scheme ? `${route.scheme} ${token}` : token;
}

/** A route's credential put into the request headers (whatever the bottle sent in that header is dropped). */
export function injectRoute(headers: readonly Header[], route: RouteConfig, token: string): Header[] {
  return setHeader(headers, route.header, authValue(route, token));
}

/** Claude Code's credential: an OAuth token as `Authorization: Bearer`, an API key as `x-api-key`. */
export function injectAnthropic(headers: readonly Header[], kind: ClaudeCredentialKind, token: string): Header[] {
  const rest = removeHeaders(headers, ["authorization", "x-api-key"]);
  return kind === "oauth" ? [...rest, ["authorization", `Bearer ${token}`]] : [...rest, ["x-api-key", token]];
}

/** Joins the upstream's path prefix and the part of the request after the route prefix. */
export function upstreamTarget(upstreamPath: string, rest: string): string {
  const base = upstreamPath.replace(/\/+$/, "");
  if (rest === "") return base === "" ? "/" : base;
  if (rest.startsWith("?")) return `${base === "" ? "/" : base}${rest}`;
  return `${base}${rest}`;
}

/**
 * The part of an origin-form target after the route prefix ("/anthropic"),
 * or null when the target is not under it.
 */
export function stripPrefix(prefix: string, target: string): string | null {
  if (!target.startsWith(prefix)) return null;
  const rest = target.slice(prefix.length);
  if (rest === "" || rest.startsWith("/") || rest.startsWith("?")) return rest;
  return null;
}

/** Secrets and what replaces each, compiled once and shared by every Scrubber made from it. */
export class ScrubRules {
  readonly matcher: SecretMatcher;
  readonly replacements: Buffer[];

  /** `pairs`: [secret, replacement]; empty secrets are ignored. */
  constructor(pairs: ReadonlyArray<readonly [string, string]>) {
    const usable = pairs.filter(([secret]) => secret.length > 0);
    this.matcher = new SecretMatcher(usable.map(([secret]) => secret));
    this.replacements = usable.map(([, replacement]) => Buffer.from(replacement, "utf8"));
  }
}

/**
 * Replaces secrets, in every form of secret-forms.ts, in a byte stream as it
 * goes by, without waiting for the end: only a tail that could be the start
 * of a secret is held back, so server-sent events still arrive as they are
 * written. Each form becomes the plain replacement.
 */
export class Scrubber {
  private readonly rules: ScrubRules;
  private readonly stream: SecretStream;
  /** How many secrets were replaced so far. */
  replaced = 0;

  constructor(rules: ScrubRules | ReadonlyArray<readonly [string, string]>) {
    this.rules = rules instanceof ScrubRules ? rules : new ScrubRules(rules);
    this.stream = new SecretStream(this.rules.matcher);
  }

  get active(): boolean {
    return !this.rules.matcher.empty;
  }

  /** Scrubs a complete text (a header name or value, a status message), as latin1 bytes. */
  text(value: string): string {
    if (!this.active) return value;
    const stream = new SecretStream(this.rules.matcher);
    const parts = [...stream.push(Buffer.from(value, "latin1")), ...stream.flush()];
    return this.render(parts).toString("latin1");
  }

  /** The scrubbed bytes that can be sent now. */
  push(chunk: Buffer): Buffer {
    return this.render(this.stream.push(chunk));
  }

  /** What was held back, scrubbed (the stream ended). */
  flush(): Buffer {
    return this.render(this.stream.flush());
  }

  private render(parts: StreamPart[]): Buffer {
    const out = parts.map((part) => {
      if (typeof part !== "number") return part;
      this.replaced++;
      return this.rules.replacements[part] ?? Buffer.alloc(0);
    });
    return out.length === 1 ? (out[0] ?? Buffer.alloc(0)) : Buffer.concat(out);
  }
}
