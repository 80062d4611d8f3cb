import { describe, expect, test } from "bun:test";
import { Docker } from "../../../../lib/docker.ts";
import { BottleError } from "../../../../lib/errors.ts";
import { recordingExec } from "../../../helpers/exec.ts";
import {
  BOTTLE_CA_BUNDLE,
  bottleTrust,
  CLAUDE_CREDENTIAL_VARS,
  custodyGateConfig,
  custodyGateFiles,
  custodyHosts,
  custodyPlan,
  custodyRows,
  findClaudeCredential,
  heldEnvNames,
  inferKind,
  missingCredentialError,
  resolveCustody,
  sharedWithBottle,
  TRUST_ENV_VARS,
} from "../../../../lib/gates/custody/index.ts";
import { egressGateConfig } from "../../../../lib/gates/egress/config.ts";
import { validateConfig } from "../../../../lib/gates/egress/daemon/config.ts";
import { egressReadyLine, readyLineCa } from "../../../../lib/gates/egress/daemon/ready-line.ts";
import { builtinBottle, ManifestError, type ResolvedBottle } from "../../../../lib/manifest/index.ts";
import type { EnvSource, ResolvedEnvEntry, ResolvedRoute } from "../../../../lib/manifest/types.ts";
import { parsePlan } from "../../../../lib/plan.ts";
import { claudeState, ENV_FILE, provisionEntries } from "../../../../lib/provision.ts";
import { bottleEnv } from "../../../../lib/launch/plan.ts";
import { secretValues } from "../../../../lib/launch/run.ts";
import { containerHandle } from "../../../../lib/backends/docker/handle.ts";
import { makePlan } from "../../../helpers/unit.ts";

const FILE = "/home/u/.config/bottle/bottles/dev.yaml";
const entry = (source: EnvSource, line = 3, col = 10): ResolvedEnvEntry => ({ source, file: FILE, line, col });
const host = (variable: string) => entry({ kind: "host", variable });

function bottle(change: (b: ResolvedBottle) => void = () => undefined): ResolvedBottle {
  const b = builtinBottle();
  change(b);
  return b;
}

function route(overrides: Partial<ResolvedRoute> = {}): ResolvedRoute {
  return { host: "api.github.com", port: 443, header: "Authorization", scheme: "Bearer", token: host("GH_TOKEN"), paths: [], methods: [], ...overrides };
}

const noAsk = async (): Promise<string> => {
  throw new Error("asked");
};

describe("finding Claude Code's credential", () => {
  test("the bottle's auth.token, then its env, then the host env; OAuth token before API key", () => {
    const hostEnv = { CLAUDE_CODE_OAUTH_TOKEN: "sk-ant-oat01-host", ANTHROPIC_API_KEY: "sk-ant-api03-host" };
    expect(findClaudeCredential(bottle((b) => (b.auth.token = host("MY_TOKEN"))), hostEnv)).toMatchObject({ path: "auth.token", source: "auth.token (${MY_TOKEN})" });
    expect(findClaudeCredential(bottle((b) => (b.env.ANTHROPIC_API_KEY = host("K"))), hostEnv)).toMatchObject({ path: "env.ANTHROPIC_API_KEY", kind: "api-key" });
    expect(findClaudeCredential(bottle(), hostEnv)).toMatchObject({ path: "CLAUDE_CODE_OAUTH_TOKEN", kind: "oauth", source: "$CLAUDE_CODE_OAUTH_TOKEN (host environment)" });
    expect(findClaudeCredential(bottle(), { ANTHROPIC_API_KEY: "k" })).toMatchObject({ path: "ANTHROPIC_API_KEY", kind: "api-key" });
    expect(findClaudeCredential(bottle(), { CLAUDE_CODE_OAUTH_TOKEN: "", ANTHROPIC_API_KEY: "" })).toBeUndefined();
    expect(findClaudeCredential(bottle(), {})).toBeUndefined();
  });

  test("oauth or api-key: explicit kind, then the token's prefix, then the variable's name", () => {
    expect(inferKind("api-key", "CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-x")).toBe("api-key");
    expect(inferKind(undefined, "ANTHROPIC_API_KEY", "sk-ant-oat01-x")).toBe("oauth");
    expect(inferKind(undefined, "CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-api03-x")).toBe("api-key");
    expect(inferKind(undefined, "ANTHROPIC_API_KEY", "test-key")).toBe("api-key");
    expect(inferKind(undefined, "MY_TOKEN", undefined)).toBe("oauth");
    const literal = bottle((b) => (b.auth.token = entry({ kind: "literal", value: "sk-ant-api03-literal" })));
    expect(custodyPlan(literal, {}).claude).toMatchObject({ kind: "api-key", env: "ANTHROPIC_API_KEY" });
  });

  test("no credential: an error whose fix is `claude setup-token`", () => {
    const error = missingCredentialError();
    expect(error).toBeInstanceOf(BottleError);
    expect(error.fix).toContain("claude setup-token");
    expect(error.fix).toContain("CLAUDE_CODE_OAUTH_TOKEN");
    expect(error.fix).toContain("bottle up -- CMD");
  });
});

describe("the custody plan: names, never values", () => {
  const hostEnv = { CLAUDE_CODE_OAUTH_TOKEN: "sk-ant-oat01-REAL-VALUE", GH_TOKEN: "gh-REAL-VALUE" };

  test("Claude Code's route and credential routes, with placeholder names", () => {
    const b = bottle((b) => {
      b.auth.upstream = "https://llm.example.test:8443/gateway";
      b.egress.routes.push(route({ paths: ["/repos/acme/"], methods: ["GET"] }), route({ host: "api.other.test", port: 8443, token: entry({ kind: "literal", value: "lit-REAL-VALUE" }), header: "X-Api-Key", scheme: undefined }));
    });
    const plan = custodyPlan(b, hostEnv);
    expect(plan).toEqual({
      claude: {
        source: "$CLAUDE_CODE_OAUTH_TOKEN (host environment)",
        kind: "oauth",
        env: "CLAUDE_CODE_OAUTH_TOKEN",
        upstream: "https://llm.example.test:8443/gateway",
        baseUrl: "http://gate:3129/anthropic",
      },
      routes: [
        { host: "api.github.com", port: 443, header: "Authorization", scheme: "Bearer", credential: "GH_TOKEN", env: "GH_TOKEN", paths: ["/repos/acme/"], methods: ["GET"], source: "${GH_TOKEN}" },
        { host: "api.other.test", port: 8443, header: "X-Api-Key", credential: "ROUTE_2_TOKEN", paths: [], methods: [], source: "literal" },
      ],
      port: 3129,
    });
    expect(JSON.stringify(plan)).not.toContain("REAL-VALUE");
    // It fits the plan's schema.
    expect(parsePlan({ ...makePlan(), custody: plan })?.custody).toEqual(plan);
    expect(custodyHosts(plan)).toEqual(["llm.example.test:8443", "api.github.com", "api.other.test:8443"]);
    expect(heldEnvNames(plan)).toEqual(["CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "NO_PROXY", "no_proxy", "GH_TOKEN"]);
    expect(custodyPlan(bottle(), {})).toEqual({ routes: [], port: 3129 });
    expect(heldEnvNames(custodyPlan(bottle(), {}))).toEqual([...CLAUDE_CREDENTIAL_VARS]);
  });

  test("two different credentials may not share a placeholder name; the same one may", () => {
    const same = bottle((b) => b.egress.routes.push(route(), route({ host: "uploads.github.com" })));
    expect(custodyPlan(same, hostEnv).routes.map((r) => r.credential)).toEqual(["GH_TOKEN", "GH_TOKEN"]);
    const clash = bottle((b) => b.egress.routes.push(route(), route({ host: "x.test", env: "GH_TOKEN", token: host("OTHER") })));
    expect(() => custodyPlan(clash, hostEnv)).toThrow("the route for x.test and the route for api.github.com both use the name GH_TOKEN");
    const claude = bottle((b) => b.egress.routes.push(route({ token: host("CLAUDE_CODE_OAUTH_TOKEN") })));
    expect(() => custodyPlan(claude, hostEnv)).toThrow("which is Claude Code's");
  });

  test("the bottle's manifest env loses what the gate holds", () => {
    const b = bottle((b) => {
      b.env.ANTHROPIC_API_KEY = host("ANTHROPIC_API_KEY");
      b.env.GH_TOKEN = host("GH_TOKEN");
      b.env.ANTHROPIC_BASE_URL = entry({ kind: "literal", value: "http://elsewhere" });
      b.env.KEEP = entry({ kind: "literal", value: "x" });
      b.egress.routes.push(route());
    });
    const resolved = { agent: { name: "a", source: "x", prompt: "", skills: [], bottle: "b", locations: { skills: [] } }, bottle: b };
    expect(Object.keys(bottleEnv(resolved, { ANTHROPIC_API_KEY: "k", GH_TOKEN: "g" }))).toEqual(["KEEP"]);
  });

  test("an env entry that copies a held credential's host variable under another name is found (to warn)", () => {
    const b = bottle((b) => {
      b.env.GITHUB_TOKEN = host("GH_TOKEN");
      b.env.CLAUDE = host("CLAUDE_CODE_OAUTH_TOKEN");
      b.env.OTHER = host("OTHER");
      b.egress.routes.push(route());
    });
    expect(sharedWithBottle(b, b.env, { CLAUDE_CODE_OAUTH_TOKEN: "x" })).toEqual(["GITHUB_TOKEN", "CLAUDE"]);
  });

  test("preflight rows say where each credential comes from and that the gate holds it", () => {
    const rows = custodyRows(custodyPlan(bottle((b) => b.egress.routes.push(route({ paths: ["/repos/acme/"] }))), hostEnv));
    expect(rows).toEqual([
      ["auth", "Claude Code's OAuth token from $CLAUDE_CODE_OAUTH_TOKEN (host environment), held by the gate (the bottle sees a placeholder); http://gate:3129/anthropic → https://api.anthropic.com"],
      ["route", "api.github.com /repos/acme/: Authorization: Bearer <GH_TOKEN, ${GH_TOKEN}> added by the gate; $GH_TOKEN is a placeholder"],
    ]);
    expect(custodyRows(custodyPlan(bottle(), {}))[0]?.[1]).toContain("claude setup-token");
  });
});

describe("resolving the values at launch", () => {
  test("real values go to the gate, placeholders and the route's URL to the bottle", async () => {
    const b = bottle((b) => {
      b.auth.token = entry({ kind: "ask", question: "Claude token" });
      b.egress.routes.push(route(), route({ host: "x.test", token: entry({ kind: "literal", value: "literal-REAL" }) }));
    });
    const custody = custodyPlan(b, { GH_TOKEN: "gh-REAL" });
    const asked: string[] = [];
    const values = await resolveCustody(b, custody, {
      hostEnv: { GH_TOKEN: "gh-REAL" },
      interactive: true,
      ask: async (question, name) => {
        asked.push(`${question}/${name}`);
        return "sk-ant-oat01-asked-REAL";
      },
    });
    expect(asked).toEqual(["Claude token/CLAUDE_CODE_OAUTH_TOKEN"]);
    expect(values.credentials).toEqual({ CLAUDE_CODE_OAUTH_TOKEN: "sk-ant-oat01-asked-REAL", GH_TOKEN: "gh-REAL", ROUTE_2_TOKEN: "literal-REAL" });
    expect(values.env).toEqual({
      NO_PROXY: "localhost,127.0.0.1,::1,gate",
      no_proxy: "localhost,127.0.0.1,::1,gate",
      ANTHROPIC_BASE_URL: "http://gate:3129/anthropic",
      CLAUDE_CODE_OAUTH_TOKEN: "bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN",
      GH_TOKEN: "bottle-placeholder-GH_TOKEN",
    });
    expect(JSON.stringify(values.env)).not.toContain("REAL");
  });

  test("every missing value is reported at once, positioned, naming variables only", async () => {
    const b = bottle((b) => {
      b.auth.token = entry({ kind: "host", variable: "MY_CLAUDE" }, 12, 10);
      b.egress.routes.push(route({ token: entry({ kind: "host", variable: "GH_TOKEN" }, 7, 16) }), route({ host: "x.test", env: "X", token: entry({ kind: "ask", question: "" }, 9, 16) }));
    });
    const custody = custodyPlan(b, {});
    const error = (await resolveCustody(b, custody, { hostEnv: { GH_TOKEN: "" }, interactive: false, ask: noAsk }).catch((e: unknown) => e)) as ManifestError;
    expect(error).toBeInstanceOf(ManifestError);
    expect(error.issues.map((issue) => `${issue.line}:${issue.col} ${issue.path}: ${issue.message}`)).toEqual([
      "12:10 auth.token: copies ${MY_CLAUDE} from the host environment, but MY_CLAUDE is not set (or empty)",
      "7:16 egress.routes (api.github.com).auth.token: copies ${GH_TOKEN} from the host environment, but GH_TOKEN is not set (or empty)",
      "9:16 egress.routes (x.test).auth.token: is asked at launch, but there is no terminal to ask on — write ${VAR} to copy it from the host environment instead",
    ]);
    // Both fixes: the unset variables, and the question that has no terminal.
    expect(error.fix).toBe("export MY_CLAUDE, GH_TOKEN before running bottle; run bottle from a terminal, or use ${VAR} for values asked with ?question");
  });

  test("a placeholder is not a credential", async () => {
    const b = bottle();
    const hostEnv = { CLAUDE_CODE_OAUTH_TOKEN: "bottle-placeholder-CLAUDE_CODE_OAUTH_TOKEN" };
    await expect(resolveCustody(b, custodyPlan(b, hostEnv), { hostEnv, interactive: false, ask: noAsk })).rejects.toThrow("is a bottle placeholder");
  });
});

describe("the gate's side", () => {
  const custody = custodyPlan(
    bottle((b) => b.egress.routes.push(route({ paths: ["/repos/acme/"], methods: ["GET"] }))),
    { ANTHROPIC_API_KEY: "sk-ant-api03-x", GH_TOKEN: "g" },
  );

  test("the gate config holds names and where to listen, and validates", () => {
    const part = custodyGateConfig(custody);
    expect(part).toEqual({
      credentialsFile: "/etc/bottle/credentials.json",
      tlsDir: "/etc/bottle/tls",
      routes: [{ host: "api.github.com", port: 443, header: "Authorization", scheme: "Bearer", credential: "GH_TOKEN", paths: ["/repos/acme/"], methods: ["GET"] }],
      anthropic: { port: 3129, prefix: "/anthropic", upstream: "https://api.anthropic.com", credential: "ANTHROPIC_API_KEY", kind: "api-key" },
    });
    const config = egressGateConfig(makePlan({ custody }), ["172.17.0.1"], false, ["172.20.0.0/16"]);
    expect(() => validateConfig(config)).not.toThrow();
    // Claude Code's route listens where every gate service does.
    expect(config.listen).toEqual(["172.20.0.0/16"]);
    expect(config.anthropic).toEqual(part.anthropic);
    expect(custodyGateConfig(undefined)).toEqual({});
    expect(custodyGateConfig(custodyPlan(bottle(), {}))).toEqual({});
  });

  test("the credentials file is root-only", () => {
    expect(custodyGateFiles({ GH_TOKEN: "v" })).toEqual([{ path: "etc/bottle/credentials.json", content: '{"GH_TOKEN":"v"}', mode: 0o600, uid: 0, gid: 0 }]);
    expect(custodyGateFiles({})).toEqual([]);
  });

  test("DLP secrets never include placeholders", () => {
    expect(secretValues(["bottle-placeholder-GH_TOKEN", "a-real-secret-value", "short", "a-real-secret-value"])).toEqual(["a-real-secret-value"]);
  });
});

describe("the bottle's side", () => {
  const CA = "-----BEGIN CERTIFICATE-----\nGATE\n-----END CERTIFICATE-----\n";
  const SYSTEM = "-----BEGIN CERTIFICATE-----\nSYSTEM\n-----END CERTIFICATE-----\n";

  test("the gate's CA (from its ready line) is added to the image's bundle in the bottle user's HOME", async () => {
    const exec = recordingExec((argv) => (argv.includes("/etc/ssl/certs/ca-certificates.crt") ? { stdout: SYSTEM } : undefined));
    const plan = makePlan({ custody: { routes: [{ host: "h.test", port: 443, header: "Authorization", credential: "T", paths: [], methods: [], source: "${T}" }], port: 3129 } });
    // The CA comes from the gate's ready line (egressReadyLine → readyLineCa): nothing is read out of the gate.
    const line = egressReadyLine(["10.0.0.2"], CA);
    const trust = await bottleTrust(containerHandle(new Docker(exec), plan.containers.bottle), plan, async () => readyLineCa(line));
    expect(exec.calls.map((call) => call.argv.slice(1))).toEqual([["exec", plan.containers.bottle, "cat", "/etc/ssl/certs/ca-certificates.crt"]]);
    expect(trust.entries).toEqual([
      { path: "/home/agent/.bottle", type: "dir", mode: 0o755, uid: 1000, gid: 1000 },
      { path: "/home/agent/.bottle/gate-ca.pem", content: CA, mode: 0o644, uid: 1000, gid: 1000 },
      { path: BOTTLE_CA_BUNDLE, content: `${SYSTEM}${CA}`, mode: 0o644, uid: 1000, gid: 1000 },
    ]);
    expect(Object.keys(trust.env)).toEqual([...TRUST_ENV_VARS]);
    expect(new Set(Object.values(trust.env))).toEqual(new Set([BOTTLE_CA_BUNDLE]));
    // No routes: nothing to read, nothing to trust, and the gate's answer is not even asked for.
    let asked = false;
    expect(await bottleTrust(containerHandle(new Docker(recordingExec()), "bottle-x"), makePlan(), async () => ((asked = true), CA))).toEqual({ entries: [], env: {} });
    expect(asked).toBe(false);
    // A ready line without a CA, with routes, stops the launch.
    await expect(bottleTrust(containerHandle(new Docker(exec), plan.containers.bottle), plan, async () => readyLineCa(egressReadyLine(["10.0.0.2"])))).rejects.toThrow("did not report a CA certificate");
  });

  test("provisioning: the env file and ~/.claude.json hold the placeholder, never the real key", () => {
    const plan = makePlan();
    const placeholder = "bottle-placeholder-ANTHROPIC_API_KEY";
    const entries = provisionEntries({ plan, envValues: { ANTHROPIC_API_KEY: placeholder, ANTHROPIC_BASE_URL: "http://gate:3129/anthropic" }, prompt: "", skillDirs: {} });
    const env = entries.find((e) => e.path === ENV_FILE);
    expect(String(env?.content)).toContain(`export ANTHROPIC_API_KEY='${placeholder}'`);
    const state = JSON.parse(String(entries.find((e) => e.path.endsWith(".claude.json"))?.content));
    expect(state.customApiKeyResponses.approved).toEqual([placeholder.slice(-20)]);
    expect(claudeState(placeholder)).toEqual(state);
  });
});
