import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { EgressConfigError, loadCredentials, neededCredentials, validateConfig } from "../../../../lib/gates/egress/daemon/config.ts";
import type { EgressConfig, RouteConfig } from "../../../../lib/gates/egress/daemon/config-schema.ts";
import {
  PLACEHOLDER_PREFIX,
  ScrubRules,
  Scrubber,
  authValue,
  injectAnthropic,
  injectRoute,
  isPlaceholder,
  matchRoute,
  pathMatches,
  placeholderFor,
  plainPath,
  stripPrefix,
  upstreamTarget,
} from "../../../../lib/gates/egress/daemon/custody.ts";
import { Dlp } from "../../../../lib/gates/egress/daemon/dlp.ts";
import { spellings } from "../../../helpers/spellings.ts";
import { cleanupTempDirs, tempDir } from "../../../helpers/unit.ts";
import { baseConfig } from "./helpers.ts";

afterAll(cleanupTempDirs);

const route = (overrides: Partial<RouteConfig> = {}): RouteConfig => ({
  host: "api.github.test",
  port: 443,
  header: "Authorization",
  scheme: "Bearer",
  credential: "GH_TOKEN",
  paths: [],
  methods: [],
  ...overrides,
});

describe("placeholders", () => {
  test("a fixed, obviously fake value per variable", () => {
    expect(placeholderFor("ANTHROPIC_API_KEY")).toBe("bottle-placeholder-ANTHROPIC_API_KEY");
    expect(placeholderFor("GH_TOKEN")).toBe(`${PLACEHOLDER_PREFIX}GH_TOKEN`);
    // Claude Code approves API keys by their last 20 characters: the placeholder's are the variable's name.
    expect(placeholderFor("ANTHROPIC_API_KEY").slice(-20)).toBe("er-ANTHROPIC_API_KEY");
  });

  test("names must be variable names", () => {
    for (const bad of ["", "1X", "A-B", "A B", "a$"]) expect(() => placeholderFor(bad)).toThrow();
  });

  test("recognised exactly", () => {
    expect(isPlaceholder("bottle-placeholder-GH_TOKEN")).toBe(true);
    expect(isPlaceholder("bottle-placeholder-")).toBe(false);
    expect(isPlaceholder("bottle-placeholder-GH_TOKEN extra")).toBe(false);
    expect(isPlaceholder("xbottle-placeholder-GH_TOKEN")).toBe(false);
    expect(isPlaceholder("sk-ant-api03-abc")).toBe(false);
  });
});

describe("route matching", () => {
  test("path prefixes match on segment boundaries", () => {
    expect(pathMatches("/repos/acme", "/repos/acme")).toBe(true);
    expect(pathMatches("/repos/acme", "/repos/acme/x")).toBe(true);
    expect(pathMatches("/repos/acme", "/repos/acmecorp")).toBe(false);
    expect(pathMatches("/repos/acme/", "/repos/acme/x")).toBe(true);
    expect(pathMatches("/repos/acme/", "/repos/acmecorp/x")).toBe(false);
    expect(pathMatches("/", "/anything")).toBe(true);
    expect(pathMatches("", "/anything")).toBe(true);
  });

  test("paths with dot segments, encoded slashes or dots, backslashes or empty segments are not plain", () => {
    expect(plainPath("/repos/acme/x")).toBe(true);
    for (const path of ["/repos/acme/../other", "/repos/acme/./x", "/repos/acme/%2e%2e/other", "/repos/acme%2F..%2Fother", "/repos\\acme", "/repos//acme", "repos/acme", "/repos/acme/%2E%2E"])
      expect(plainPath(path)).toBe(false);
  });

  test("host, port, method and the longest path prefix decide; the query does not", () => {
    const routes = [
      route({ credential: "ALL" }),
      route({ credential: "ACME", paths: ["/repos/acme/"] }),
      route({ credential: "ACME_WRITE", paths: ["/repos/acme/"], methods: ["POST"] }),
      route({ host: "other.test", credential: "OTHER" }),
      route({ port: 8443, credential: "PORT" }),
    ];
    expect(matchRoute(routes, "api.github.test", 443, "GET", "/user")?.credential).toBe("ALL");
    expect(matchRoute(routes, "api.github.test", 443, "GET", "/repos/acme/x?ref=../../y")?.credential).toBe("ACME");
    // Same prefix length: the later route wins (a child bottle's over its parent's).
    expect(matchRoute(routes, "api.github.test", 443, "post", "/repos/acme/x")?.credential).toBe("ACME_WRITE");
    expect(matchRoute(routes, "other.test", 443, "GET", "/")?.credential).toBe("OTHER");
    expect(matchRoute(routes, "api.github.test", 8443, "GET", "/")?.credential).toBe("PORT");
    expect(matchRoute(routes, "nope.test", 443, "GET", "/")).toBeNull();
  });

  test("a path-limited route gives nothing for other paths, and nothing for paths that only look inside", () => {
    const routes = [route({ paths: ["/repos/acme/"], methods: ["GET"] })];
    expect(matchRoute(routes, "api.github.test", 443, "GET", "/repos/acme/issues")).not.toBeNull();
    expect(matchRoute(routes, "api.github.test", 443, "GET", "/repos/other/issues")).toBeNull();
    expect(matchRoute(routes, "api.github.test", 443, "DELETE", "/repos/acme/issues")).toBeNull();
    expect(matchRoute(routes, "api.github.test", 443, "GET", "/repos/acme/../other/issues")).toBeNull();
    expect(matchRoute(routes, "api.github.test", 443, "GET", "/repos/acme/%2e%2e/other")).toBeNull();
    expect(matchRoute(routes, "api.github.test", 443, "GET", "/repos/acme")).toBeNull();
  });
});

describe("header replacement", () => {
  test("a route sets its header (any case) to scheme + token, dropping what the bottle sent there", () => {
    const headers: Array<[string, string]> = [
      ["Accept", "*/*"],
      ["authorization", "Bearer bottle-placeholder-GH_TOKEN"],
      ["AUTHORIZATION", "Basic Zm9v"],
    ];
    expect(injectRoute(headers, route(), "real-token")).toEqual([
      ["Accept", "*/*"],
      ["Authorization", "Bearer real-token"],
    ]);
    expect(injectRoute([], route({ header: "X-Api-Key", scheme: undefined }), "k")).toEqual([["X-Api-Key", "k"]]);
    expect(authValue({ scheme: "token" }, "t")).toBe("token t");
    expect(authValue({}, "t")).toBe("t");
  });

  test("Claude Code: an OAuth token as Authorization: Bearer, an API key as x-api-key; the other header goes", () => {
    const sent: Array<[string, string]> = [
      ["x-api-key", "bottle-placeholder-ANTHROPIC_API_KEY"],
      ["Authorization", "Bearer bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN"],
      ["anthropic-version", "2023-06-01"],
    ];
    expect(injectAnthropic(sent, "oauth", "sk-ant-oat01-real")).toEqual([
      ["anthropic-version", "2023-06-01"],
      ["authorization", "Bearer sk-ant-oat01-real"],
    ]);
    expect(injectAnthropic(sent, "api-key", "sk-ant-api03-real")).toEqual([
      ["anthropic-version", "2023-06-01"],
      ["x-api-key", "sk-ant-api03-real"],
    ]);
  });

  test("the route prefix comes off and the upstream's path prefix goes on", () => {
    expect(stripPrefix("/anthropic", "/anthropic/v1/messages?beta=true")).toBe("/v1/messages?beta=true");
    expect(stripPrefix("/anthropic", "/anthropic")).toBe("");
    expect(stripPrefix("/anthropic", "/anthropic?x=1")).toBe("?x=1");
    expect(stripPrefix("/anthropic", "/anthropicx/v1")).toBeNull();
    expect(stripPrefix("/anthropic", "/v1/messages")).toBeNull();
    expect(upstreamTarget("", "/v1/messages?beta=true")).toBe("/v1/messages?beta=true");
    expect(upstreamTarget("/gateway/", "/v1/messages")).toBe("/gateway/v1/messages");
    expect(upstreamTarget("", "")).toBe("/");
    expect(upstreamTarget("", "?x")).toBe("/?x");
  });
});

describe("response scrubbing", () => {
  const TOKEN = "sk-ant-oat01-REALTOKEN-0123456789";
  const rules = new ScrubRules([[TOKEN, "bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN"]]);
  const scrubber = () => new Scrubber(rules);
  const run = (s: Scrubber, chunks: string[]) => {
    const out: string[] = [];
    for (const chunk of chunks) out.push(s.push(Buffer.from(chunk)).toString());
    out.push(s.flush().toString());
    return out;
  };

  test("every occurrence is replaced, also when split across chunks at any point", () => {
    const text = `{"echo":"Bearer ${TOKEN}","again":"${TOKEN}${TOKEN}"}`;
    const expected = text.split(TOKEN).join("bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN");
    for (let cut = 0; cut <= text.length; cut++) {
      for (const size of [1, 3, 7]) {
        const chunks = [text.slice(0, cut)];
        for (let i = cut; i < text.length; i += size) chunks.push(text.slice(i, i + size));
        expect(run(scrubber(), chunks).join("")).toBe(expected);
      }
    }
  });

  test("only a tail that could start a token is held back: streamed events go out at once", () => {
    const s = scrubber();
    const event = 'event: content_block_delta\ndata: {"text":"hi"}\n\n';
    expect(s.push(Buffer.from(event)).toString()).toBe(event);
    // "…sk-ant-o" could be the start of the token: held until the next chunk says otherwise.
    expect(s.push(Buffer.from("text sk-ant-o")).toString()).toBe("text ");
    expect(s.push(Buffer.from("ther stuff")).toString()).toBe("sk-ant-other stuff");
    expect(s.push(Buffer.from("end sk")).toString()).toBe("end ");
    expect(s.flush().toString()).toBe("sk");
    expect(s.replaced).toBe(0);
  });

  test("every form of the token is replaced: in a header name, a header value, and a body cut at every offset", () => {
    const dlp = new Dlp([TOKEN]);
    for (const [form, text] of Object.entries(spellings(TOKEN))) {
      const name = scrubber().text(`x-echo-${text}`);
      const value = scrubber().text(`Bearer ${text}`);
      expect({ form, name: dlp.scan([name]), value: dlp.scan([value]) }).toEqual({ form, name: null, value: null });
      expect(name).toContain("bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN");
      const body = `event: x\ndata: {"echo":"${text}","n":1}\n\n`;
      const whole = run(scrubber(), [body]).join("");
      expect({ form, left: dlp.scan([whole]) }).toEqual({ form, left: null });
      for (let cut = 0; cut <= body.length; cut++) {
        expect(run(scrubber(), [body.slice(0, cut), body.slice(cut)]).join("")).toBe(whole);
      }
      expect(run(scrubber(), [...body]).join("")).toBe(whole);
    }
  });

  test("what is held back can only start a form: a trailing % or \\ waits for the next byte, an event's end does not", () => {
    const s = scrubber();
    expect(s.push(Buffer.from('data: {"a":"100%')).toString()).toBe('data: {"a":"100');
    expect(s.push(Buffer.from('"}\n\n')).toString()).toBe('%"}\n\n');
    expect(s.push(Buffer.from('data: {"b":"x\\')).toString()).toBe('data: {"b":"x');
    expect(s.push(Buffer.from('n"}\n\n')).toString()).toBe('\\n"}\n\n');
    // A token's hex cut after its first digits: held; the flush at the end replaces nothing that is not whole.
    const hexStart = Buffer.from(TOKEN).toString("hex").slice(0, 9);
    expect(s.push(Buffer.from(`x ${hexStart}`)).toString()).toBe("x ");
    expect(s.flush().toString()).toBe(hexStart);
    expect(s.replaced).toBe(0);
  });

  test("header values; several secrets, the longest first; nothing to scrub passes the same buffer", () => {
    const s = new Scrubber([
      ["abcdef", "<short>"],
      ["abcdefghij", "<long>"],
    ]);
    expect(s.text("x abcdefghij y abcdef z")).toBe("x <long> y <short> z");
    expect(s.replaced).toBe(2);
    const none = new Scrubber([]);
    const chunk = Buffer.from("data");
    expect(none.push(chunk)).toBe(chunk);
    expect(none.active).toBe(false);
  });
});

describe("DLP and placeholders", () => {
  test("placeholders are harmless, even when listed as secrets; the real value is a known secret", () => {
    const dlp = new Dlp(["bottle-placeholder-GH_TOKEN", "gh-real-value-0123456789"]);
    expect(dlp.secretCount).toBe(1);
    expect(dlp.skippedShort).toBe(0);
    expect(dlp.scan(["Authorization: Bearer bottle-placeholder-GH_TOKEN"])).toBeNull();
    expect(dlp.scan(["x-api-key: bottle-placeholder-ANTHROPIC_API_KEY", "Authorization: Bearer bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN"])).toBeNull();
    expect(dlp.scan(["GET /?t=gh-real-value-0123456789 HTTP/1.1"])?.rule).toBe("dlp-secret");
    expect(dlp.scan([`X: ${Buffer.from("gh-real-value-0123456789").toString("base64")}`])?.rule).toBe("dlp-secret");
  });
});

describe("config validation", () => {
  const dir = "/tmp/unused";
  const valid = (): EgressConfig => ({
    ...baseConfig(dir),
    credentialsFile: "/etc/bottle/credentials.json",
    tlsDir: "/etc/bottle/tls",
    routes: [route({ paths: ["/repos/acme/"], methods: ["GET"] })],
    anthropic: {
      port: 3129,
      prefix: "/anthropic",
      upstream: "https://api.anthropic.com",
      credential: "CLAUDE_CODE_OAUTH_TOKEN",
      kind: "oauth",
    },
  });
  const problem = (mutate: (config: Record<string, unknown>) => void): string => {
    const config = structuredClone(valid()) as unknown as Record<string, unknown>;
    mutate(config);
    try {
      validateConfig(config);
    } catch (error) {
      expect(error).toBeInstanceOf(EgressConfigError);
      return (error as Error).message;
    }
    return "valid";
  };
  const routes = (config: Record<string, unknown>) => (config.routes as Array<Record<string, unknown>>)[0]!;
  const anthropic = (config: Record<string, unknown>) => config.anthropic as Record<string, unknown>;

  test("a full custody config is valid; the credential names it needs are listed", () => {
    expect(problem(() => undefined)).toBe("valid");
    expect(neededCredentials(valid())).toEqual(["GH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"]);
    expect(problem((c) => void delete c.anthropic)).toBe("valid");
  });

  test("each bad field is named", () => {
    expect(problem((c) => void (routes(c).host = "API.github.test"))).toBe("routes[0].host: expected a lower-case host name");
    expect(problem((c) => void (routes(c).host = "10.0.0.1"))).toBe("routes[0].host: expected a lower-case host name");
    expect(problem((c) => void (routes(c).header = "Bad Header"))).toBe("routes[0].header: not a header name");
    expect(problem((c) => void (routes(c).scheme = ""))).toBe("routes[0].scheme: must not be empty");
    expect(problem((c) => void (routes(c).credential = "gh-token"))).toBe("routes[0].credential: expected a variable-like name");
    expect(problem((c) => void (routes(c).paths = ["repos"]))).toBe("routes[0].paths[0]: expected a path starting with /");
    expect(problem((c) => void (routes(c).methods = ["get"]))).toBe("routes[0].methods[0]: expected an upper-case method");
    expect(problem((c) => void (routes(c).port = 0))).toBe("routes[0].port: expected an integer 1..65535");
    expect(problem((c) => void (routes(c).extra = 1))).toBe("routes[0].extra: unknown field");
    expect(problem((c) => void (c.routes = [...(c.routes as unknown[]), { ...routes(c), port: 8443 }]))).toBe(
      "routes[1].port: every route of api.github.test must use the same port",
    );
    expect(problem((c) => void delete c.credentialsFile)).toBe("credentialsFile: needed for routes and anthropic");
    expect(problem((c) => void delete c.tlsDir)).toBe("tlsDir: needed for routes");
    expect(problem((c) => void (anthropic(c).upstream = "http://api.anthropic.com"))).toBe(
      "anthropic.upstream: expected an https:// URL without credentials, query or fragment",
    );
    expect(problem((c) => void (anthropic(c).upstream = "https://u:p@api.anthropic.com"))).toBe(
      "anthropic.upstream: expected an https:// URL without credentials, query or fragment",
    );
    // Where it listens is the gate's `listen`, not a setting of its own.
    expect(problem((c) => void (anthropic(c).listen = ["172.18.0.0/16"]))).toBe("anthropic.listen: unknown field");
    expect(problem((c) => void (anthropic(c).prefix = "anthropic"))).toBe("anthropic.prefix: expected a path like /anthropic");
    expect(problem((c) => void (anthropic(c).kind = "bearer"))).toBe("anthropic.kind: expected oauth or api-key");
  });

  test("the credentials file: an object of names to non-empty strings; errors never show a value", () => {
    const dir = tempDir();
    const path = join(dir, "credentials.json");
    writeFileSync(path, JSON.stringify({ GH_TOKEN: "secret-value-1", CLAUDE_CODE_OAUTH_TOKEN: "secret-value-2" }));
    expect([...loadCredentials(path, ["GH_TOKEN"]).keys()]).toEqual(["GH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"]);
    expect(() => loadCredentials(path, ["OTHER"])).toThrow(`credentials file ${path} has no OTHER`);
    writeFileSync(path, JSON.stringify({ GH_TOKEN: "" }));
    expect(() => loadCredentials(path, [])).toThrow("GH_TOKEN must be a non-empty string");
    writeFileSync(path, '["secret-value-3"]');
    expect(() => loadCredentials(path, [])).toThrow("must be a JSON object");
    writeFileSync(path, '{"GH_TOKEN": "secret-value-4"');
    try {
      loadCredentials(path, []);
    } catch (error) {
      expect((error as Error).message).not.toContain("secret-value-4");
    }
    expect(() => loadCredentials(join(dir, "missing.json"), [])).toThrow("(ENOENT)");
  });
});
