import { describe, expect, test } from "bun:test";
import {
  type Header,
  TOKEN,
  hostHeaderNames,
  parseAuthority,
  parseHostPort,
  responseHeaders,
  stripHopByHop,
} from "../../../../lib/gates/egress/daemon/headers.ts";
import { normalizeHost } from "../../../../lib/gates/egress/daemon/policy.ts";

const names = (headers: Header[]): string[] => headers.map(([name]) => name);

describe("parseAuthority", () => {
  test("host:port and [v6]:port", () => {
    expect(parseAuthority("Example.com:443")).toEqual({ target: { kind: "name", host: "example.com" }, port: 443 });
    expect(parseAuthority("[::1]:8443")?.port).toBe(8443);
    expect(parseAuthority("[::1]:8443")?.target.host).toBe("::1");
  });
  test("port is mandatory and in range", () => {
    for (const bad of ["example.com", "example.com:", "example.com:0", "example.com:65536", "::1:443", "example.com:44a", "a:b:443"]) {
      expect(parseAuthority(bad)).toBeNull();
    }
  });
});

describe("the Host grammar (a request URI's authority, a Host header)", () => {
  test("a missing or empty port is the default one; up to five digits in range", () => {
    expect(parseHostPort("example.com", 80)).toEqual({ target: { kind: "name", host: "example.com" }, port: 80 });
    expect(parseHostPort("example.com:", 443)?.port).toBe(443);
    expect(parseHostPort("EXAMPLE.com.:08080", 80)?.port).toBe(8080);
    expect(parseHostPort("[::1]", 80)?.target.host).toBe("::1");
    for (const bad of ["example.com:123456", "example.com:0", "example.com:65536", "user@example.com", "example.com:80:80", "", ":80"]) {
      expect(parseHostPort(bad, 80)).toBeNull();
    }
  });

  test("a Host header names a target when host and port are the same, the port defaulting to the scheme's", () => {
    const target = normalizeHost("api.example.test")!;
    expect(hostHeaderNames("api.example.test", target, 443, 443)).toBe(true);
    expect(hostHeaderNames("API.example.test.:443", target, 443, 443)).toBe(true);
    expect(hostHeaderNames("api.example.test:", target, 443, 443)).toBe(true);
    expect(hostHeaderNames("api.example.test", target, 8443, 443)).toBe(false);
    expect(hostHeaderNames("api.example.test:8443", target, 8443, 443)).toBe(true);
    expect(hostHeaderNames("other.test:8443", target, 8443, 443)).toBe(false);
  });
});

describe("hop-by-hop headers", () => {
  const sent: Header[] = [
    ["Host", "h"],
    ["Connection", "keep-alive, X-Named, Content-Length"],
    ["Keep-Alive", "timeout=5"],
    ["Proxy-Authorization", "Basic x"],
    ["Proxy-Connection", "keep-alive"],
    ["TE", "trailers"],
    ["Trailer", "X-T"],
    ["Upgrade", "websocket"],
    ["X-Named", "1"],
    ["Transfer-Encoding", "chunked"],
    ["Content-Length", "5"],
    ["X-Kept", "1"],
  ];

  test("a request keeps its framing and drops the hop-by-hop headers and those Connection names", () => {
    expect(names(stripHopByHop(sent))).toEqual(["Host", "Transfer-Encoding", "Content-Length", "X-Kept"]);
  });

  test("a response drops the same hop-by-hop set; Transfer-Encoding only where the gate frames the body itself", () => {
    expect(names(responseHeaders(sent, false))).toEqual(["Host", "X-Named", "Transfer-Encoding", "Content-Length", "X-Kept"]);
    expect(names(responseHeaders(sent, true))).toEqual(["Host", "X-Named", "Content-Length", "X-Kept"]);
  });
});

test("the token grammar", () => {
  for (const token of ["Authorization", "x-api-key", "Bearer", "GET", "!#$%&'*+.^_`|~"]) expect(TOKEN.test(token)).toBe(true);
  for (const bad of ["", "Bad Header", "a:b", "é", "(x)"]) expect(TOKEN.test(bad)).toBe(false);
});
