import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { formatInfo, infoView, resolveBottle } from "../../../lib/manifest/index.ts";
import { bottleErrorFor, sandbox, type Sandbox } from "./helpers.ts";

/** The bottle schema's `auth` (Claude Code's credential) and `egress.routes` (credential routes). */

let box: Sandbox;
beforeEach(() => {
  box = sandbox();
});
afterEach(() => box.cleanup());

const errorFor = (text: string): string => bottleErrorFor(box, text);

const ROUTE = "egress:\n  routes:\n    - host: api.github.com\n";

describe("errors name file:line:col and the field path", () => {
  const cases: Array<[string, string]> = [
    ["route: a URL as host", "egress:\n  routes:\n    - host: https://api.github.com/repos\n      auth:\n        token: ${GH_TOKEN}\n"],
    ["route: a wildcard host", 'egress:\n  routes:\n    - host: "*.github.com"\n      auth:\n        token: ${GH_TOKEN}\n'],
    ["route: an IP address as host", "egress:\n  routes:\n    - host: 140.82.112.3\n      auth:\n        token: ${GH_TOKEN}\n"],
    ["route: port out of range", "egress:\n  routes:\n    - host: api.github.com:99999\n      auth:\n        token: ${GH_TOKEN}\n"],
    ["route: no auth", ROUTE],
    ["route: auth without token", `${ROUTE}      auth:\n        header: Authorization\n`],
    ["route: token mixes text and ${…}", `${ROUTE}      auth:\n        token: "Bearer \${GH_TOKEN}"\n`],
    ["route: token is empty", `${ROUTE}      auth:\n        token: ""\n`],
    ["route: token is null", `${ROUTE}      auth:\n        token:\n`],
    ["route: token is a list", `${ROUTE}      auth:\n        token: [a, b]\n`],
    ["route: header with a space", `${ROUTE}      auth:\n        token: \${GH_TOKEN}\n        header: "X Api Key"\n`],
    ["route: scheme with a space", `${ROUTE}      auth:\n        token: \${GH_TOKEN}\n        scheme: "Bearer token"\n`],
    ["route: env is not a variable name", `${ROUTE}      auth:\n        token: \${GH_TOKEN}\n        env: gh-token\n`],
    ["route: unknown key in auth", `${ROUTE}      auth:\n        token: \${GH_TOKEN}\n        value: x\n`],
    ["route: path without a leading slash", `${ROUTE}      auth:\n        token: \${GH_TOKEN}\n      paths: [repos/acme]\n`],
    ["route: path with dot segments", `${ROUTE}      auth:\n        token: \${GH_TOKEN}\n      paths: [/repos/acme/../other]\n`],
    ["route: path with a query", `${ROUTE}      auth:\n        token: \${GH_TOKEN}\n      paths: ["/search?q=x"]\n`],
    ["route: a URL as path", `${ROUTE}      auth:\n        token: \${GH_TOKEN}\n      paths: [https://api.github.com/repos]\n`],
    ["route: paths is text", `${ROUTE}      auth:\n        token: \${GH_TOKEN}\n      paths: /repos\n`],
    ["route: method with a space", `${ROUTE}      auth:\n        token: \${GH_TOKEN}\n      methods: ["GET POST"]\n`],
    ["route: unknown key with a hint", `${ROUTE}      auth:\n        token: \${GH_TOKEN}\n      path: [/repos]\n`],
    ["routes is a mapping", "egress:\n  routes:\n    api.github.com:\n      token: x\n"],
    ["auth: unknown key with a hint", "auth:\n  tokn: ${X}\n"],
    ["auth: unknown kind", "auth:\n  token: ${X}\n  kind: bearer\n"],
    ["auth: upstream over http", "auth:\n  upstream: http://api.anthropic.com\n"],
    ["auth: upstream with credentials is not echoed with them", "auth:\n  upstream: https://user:hunter2@llm.example.com/\n"],
    ["auth: upstream with a query", "auth:\n  upstream: https://llm.example.com/?key=x\n"],
    ["auth: upstream is not a URL", "auth:\n  upstream: llm.example.com\n"],
    ["auth: upstream is an IP address", "auth:\n  upstream: https://10.0.0.1/\n"],
    ["auth: a list", "auth:\n  - token\n"],
    ["auth: token is shell syntax", 'auth:\n  token: "${TOKEN:-x}"\n'],
  ];
  for (const [name, text] of cases) {
    test(name, () => {
      expect(errorFor(text)).toMatchSnapshot();
    });
  }

  test("a literal token never appears in an error", () => {
    const message = errorFor("auth:\n  token: sk-ant-oat01-literal-secret\n  kind: bearer\negress:\n  routes:\n    - host: https://x.com\n      auth:\n        token: ghp_literalsecret\n");
    expect(message).not.toContain("literal-secret");
    expect(message).not.toContain("literalsecret");
  });
});

describe("valid bottles", () => {
  test("routes and auth, with defaults applied and each token's position kept", () => {
    const file = box.bottle(
      "dev",
      [
        "auth:", // 1
        "  token: ${MY_CLAUDE_TOKEN}", // 2
        "  kind: oauth", // 3
        "  upstream: https://llm.example.test/gateway", // 4
        "egress:", // 5
        "  routes:", // 6
        "    - host: API.GitHub.com", // 7
        "      paths: [/repos/acme/, /gists]", // 8
        "      methods: [get, POST]", // 9
        "      auth:", // 10
        "        token: ${GH_TOKEN}", // 11
        "    - host: uploads.example.test:8443", // 12
        "      auth:", // 13
        "        token: ?Upload key", // 14
        "        header: X-Api-Key", // 15
        "        env: UPLOAD_KEY", // 16
        "",
      ].join("\n"),
    );
    const bottle = resolveBottle("dev", { env: box.env });
    expect(bottle.auth).toEqual({
      token: { source: { kind: "host", variable: "MY_CLAUDE_TOKEN" }, file, line: 2, col: 10 },
      kind: "oauth",
      upstream: "https://llm.example.test/gateway",
    });
    expect(bottle.egress.routes).toEqual([
      {
        host: "api.github.com",
        port: 443,
        header: "Authorization",
        scheme: "Bearer",
        token: { source: { kind: "host", variable: "GH_TOKEN" }, file, line: 11, col: 16 },
        paths: ["/repos/acme/", "/gists"],
        methods: ["GET", "POST"],
      },
      {
        host: "uploads.example.test",
        port: 8443,
        header: "X-Api-Key",
        token: { source: { kind: "ask", question: "Upload key" }, file, line: 14, col: 16 },
        env: "UPLOAD_KEY",
        paths: [],
        methods: [],
      },
    ]);
  });

  test("extends: routes add up (child last), auth merges per field", () => {
    const base = box.bottle("base", "auth:\n  upstream: https://llm.example.test\n  token: ${BASE_TOKEN}\negress:\n  routes:\n    - host: a.test\n      auth:\n        token: ${A}\n");
    const child = box.bottle("dev", "extends: base\nauth:\n  token: ${CHILD_TOKEN}\negress:\n  routes:\n    - host: b.test\n      auth:\n        token: ${B}\n");
    const bottle = resolveBottle("dev", { env: box.env });
    expect(bottle.egress.routes.map((route) => [route.host, route.token.file])).toEqual([
      ["a.test", base],
      ["b.test", child],
    ]);
    expect(bottle.auth.upstream).toBe("https://llm.example.test");
    expect(bottle.auth.token?.source).toEqual({ kind: "host", variable: "CHILD_TOKEN" });
    expect(bottle.origins["auth.upstream"]).toBe(base);
    expect(bottle.origins["auth.token"]).toBe(child);
  });

  test("bottle info shows routes and auth by name, never a value", () => {
    box.bottle("dev", "auth:\n  token: sk-ant-oat01-literal-secret\negress:\n  routes:\n    - host: api.github.com\n      paths: [/repos/acme/]\n      auth:\n        token: ${GH_TOKEN}\n");
    const bottle = resolveBottle("dev", { env: box.env });
    const agent = { name: "default", source: "(built-in)", prompt: "", skills: [], bottle: "dev", locations: { skills: [] } };
    const view = infoView({ agent, bottle }, box.env);
    expect(view.bottle.egress.routes).toEqual([
      {
        host: "api.github.com",
        port: 443,
        paths: ["/repos/acme/"],
        methods: [],
        header: "Authorization",
        scheme: "Bearer",
        token: { kind: "host", variable: "GH_TOKEN" },
        via: "egress gate",
        from: "~/.config/bottle/bottles/dev.yaml",
      },
    ]);
    expect(view.bottle.auth).toEqual({
      token: { kind: "literal", from: "~/.config/bottle/bottles/dev.yaml" },
      upstream: { url: "https://api.anthropic.com", from: "(built-in)" },
    });
    const text = formatInfo(view);
    expect(text).not.toContain("literal-secret");
    expect(text).toContain("api.github.com  /repos/acme/  Authorization: Bearer $GH_TOKEN");
    expect(text).toContain("token     literal");
  });
});
