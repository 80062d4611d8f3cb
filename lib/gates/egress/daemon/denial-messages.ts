/**
 * What the gate's refusals say: the status, the plain-text body (which rule
 * denied the request and how to allow it; never a secret) and the headers
 * that name the rule for programs.
 */
import { type Header, serializeHeaders } from "./headers.ts";
import { DEFAULT_PORTS, type HostTarget } from "./policy.ts";

export type DenyRule =
  | "not-allowed"
  | "port-not-allowed"
  | "ip-literal"
  | "private-address"
  | "host-address"
  | "resolve-failed"
  | "upstream-unreachable"
  | "host-header-mismatch"
  | "rate-limit"
  | "bytes-out-limit"
  | "bad-request"
  | "unsupported-scheme"
  | "not-absolute-form"
  | "upstream-tls"
  | "no-route"
  | "credential-echo"
  /** CONNECT, after `200 Connection established`: answered with a TLS alert, audited only. */
  | "tls-timeout"
  | "tls-invalid"
  | "not-tls"
  | "tls-ech"
  | "sni-missing"
  | "sni-mismatch"
  | `dlp-${string}`;

export interface DenialInfo {
  rule: DenyRule;
  bottle: string;
  /** What to show as the host (already normalised, or "<redacted>"). */
  host: string;
  port: number;
  target?: HostTarget;
  /** private-address: the category ("loopback", "private", …). */
  category?: string;
  /** DLP: what was found ("AWS access key id"). */
  description?: string;
  /** rate-limit / bytes-out-limit: the configured limit. */
  limit?: number;
  /** bad-request etc.: what was wrong; DLP: where the secret was ("in its body"). */
  reason?: string;
}

export function statusFor(rule: DenyRule): number {
  switch (rule) {
    case "resolve-failed":
    case "upstream-unreachable":
    case "upstream-tls":
    case "credential-echo":
      return 502;
    case "no-route":
      return 404;
    case "bad-request":
    case "unsupported-scheme":
    case "not-absolute-form":
      return 400;
    default:
      return 403;
  }
}

function hostPort(host: string, port: number, isV6: boolean): string {
  const shown = isV6 ? `[${host}]` : host;
  return DEFAULT_PORTS.includes(port) ? host : `${shown}:${port}`;
}

function allowHint(entry: string, bottle: string): string {
  return `To allow it, add to the bottle manifest:\n  egress:\n    allow:\n      - ${entry}\nor for this running bottle only: bottle allow ${bottle} ${entry}\n`;
}

export function denialBody(info: DenialInfo): string {
  const { rule, host, port, bottle } = info;
  const isV6 = info.target?.kind === "ip" && info.target.ip.family === 6;
  const head = "bottle egress gate:";
  switch (rule) {
    case "not-allowed":
      return `${head} ${host} is not on this bottle's allowlist (rule: not-allowed).\n${allowHint(hostPort(host, port, isV6), bottle)}`;
    case "port-not-allowed":
      return `${head} ${host} is on this bottle's allowlist, but not port ${port} (rule: port-not-allowed).\n${allowHint(hostPort(host, port, isV6), bottle)}`;
    case "ip-literal":
      return `${head} ${host} is an IP address; IP addresses are refused unless listed explicitly (rule: ip-literal).\n${allowHint(hostPort(host, port, isV6), bottle)}`;
    case "private-address":
      return (
        `${head} ${host} resolves to a ${info.category ?? "private"} address, which a bottle may not reach (rule: private-address).\n` +
        `If this host is meant to be reachable, add to the bottle manifest:\n  egress:\n    allow_private:\n      - ${host}\n`
      );
    case "host-address":
      return `${head} ${host} resolves to an address of the Docker host (rule: host-address).\nThe Docker host is never reachable from a bottle.\n`;
    case "resolve-failed":
      return `${head} could not resolve ${host} (rule: resolve-failed).\n`;
    case "upstream-unreachable":
      return `${head} could not connect to ${hostPort(host, port, isV6)} (rule: upstream-unreachable).\n`;
    case "host-header-mismatch":
      return `${head} the Host header does not match ${host}, the host in the request URI (rule: host-header-mismatch).\nSend the request to the host named in its Host header.\n`;
    case "rate-limit":
      return `${head} this bottle made more than ${info.limit ?? 0} requests in a minute (rule: rate-limit).\nWait and retry, or raise the bottle's egress request limit.\n`;
    case "bytes-out-limit":
      return `${head} this bottle has used up its limit of ${info.limit ?? 0} bytes sent out (rule: bytes-out-limit).\n`;
    case "bad-request":
      return `${head} malformed request${info.reason ? `: ${info.reason}` : ""} (rule: bad-request).\n`;
    case "unsupported-scheme":
      return `${head} only http:// URLs can be proxied as plain requests; use CONNECT (an https:// URL) for TLS (rule: unsupported-scheme).\n`;
    case "upstream-tls":
      return `${head} could not make a trusted TLS connection to ${hostPort(host, port, isV6)}${info.reason ? ` (${info.reason})` : ""} (rule: upstream-tls).\n`;
    case "no-route":
      return `${head} nothing is routed here${info.reason ? `: ${info.reason}` : ""} (rule: no-route).\n`;
    case "credential-echo":
      return (
        `${head} the response from ${host} carries this bottle's credential in a form the gate cannot replace (rule: credential-echo).\n` +
        `Nothing of it was passed on. A credential route should point only at a host you trust.\n`
      );
    case "tls-timeout":
    case "tls-invalid":
    case "not-tls":
    case "tls-ech":
    case "sni-missing":
    case "sni-mismatch":
      return `${head} the tunnel to ${hostPort(host, port, isV6)} was refused (rule: ${rule}).\n`;
    case "not-absolute-form":
      return `${head} this is a forward proxy: send absolute-form requests (GET http://host/path) or CONNECT (rule: not-absolute-form).\n`;
    default:
      return (
        `${head} the request to ${host} carries what looks like ${info.description ?? "a secret"} ${info.reason ?? "in its URL or headers"} (rule: ${rule}).\n` +
        `Secrets must not leave the bottle; remove it from the request.\n`
      );
  }
}

/** The headers of a refusal, also of the gate's own 502s; node's writeHead gets them too (lower-cased). */
export function refusalHeaders(rule: string, length: number): Header[] {
  return [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(length)],
    ["X-Bottle-Egress-Rule", rule],
    ["Connection", "close"],
  ];
}

/** A refusal as bytes on a raw socket. */
export function httpResponse(status: number, rule: string, body: string): Buffer {
  const reason = status === 403 ? "Forbidden" : status === 400 ? "Bad Request" : status === 502 ? "Bad Gateway" : status === 404 ? "Not Found" : "Error";
  const bytes = Buffer.from(body, "utf8");
  const head = `HTTP/1.1 ${status} ${reason}\r\n${serializeHeaders(refusalHeaders(rule, bytes.length))}\r\n`;
  return Buffer.concat([Buffer.from(head, "latin1"), bytes]);
}
