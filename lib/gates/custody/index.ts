/**
 * Credential custody, host side: the bottle never holds Claude Code's token
 * or a route's API key. `bottle up` finds the credentials, gives them only to
 * the egress gate (a root-only file), and gives the bottle a placeholder of
 * the same name plus ANTHROPIC_BASE_URL pointing at the gate's route. For
 * credential routes the gate terminates TLS with its own CA, whose
 * certificate the bottle trusts through a combined bundle in its HOME.
 */
import type { BottleHandle } from "../../backends/types.ts";
import { BottleError } from "../../errors.ts";
import { type ValueIssues, valueIssues, valueIssuesError } from "../../manifest/env.ts";
import type { EnvSource, ResolvedBottle, ResolvedEnvEntry } from "../../manifest/types.ts";
import type { Plan } from "../../plan.ts";
import { AGENT_HOME } from "../../agent-user.ts";
import type { TarEntry } from "../../tar.ts";
import type { EgressConfigFile as EgressGateFile } from "../egress/daemon/config-schema.ts";
import type { ClaudeCredentialKind } from "../egress/daemon/config-schema.ts";
import { isPlaceholder, placeholderFor } from "../egress/daemon/custody.ts";
import type { CustodyPlan } from "./plan.ts";

export { isPlaceholder, placeholderFor, PLACEHOLDER_PREFIX } from "../egress/daemon/custody.ts";
export { CustodyPlanSchema, type CustodyPlan } from "./plan.ts";

type Env = Record<string, string | undefined>;

/** The variables Claude Code reads its credential from; never passed into a bottle. */
export const CLAUDE_CREDENTIAL_VARS = ["CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY"] as const;
export const CLAUDE_ROUTE_PORT = 3129;
export const CLAUDE_ROUTE_PREFIX = "/anthropic";
export const DEFAULT_ANTHROPIC_UPSTREAM = "https://api.anthropic.com";
export const GATE_CREDENTIALS_FILE = "/etc/bottle/credentials.json";
export const GATE_TLS_DIR = "/etc/bottle/tls";
export const BOTTLE_TRUST_DIR = `${AGENT_HOME}/.bottle`;
export const BOTTLE_GATE_CA = `${BOTTLE_TRUST_DIR}/gate-ca.pem`;
export const BOTTLE_CA_BUNDLE = `${BOTTLE_TRUST_DIR}/ca-bundle.pem`;
/** The system bundle of the bottle image (its own and the bottle's ca_certs). */
export const SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";
/** What TLS clients read their trust from; pointed at the combined bundle. */
export const TRUST_ENV_VARS = ["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"] as const;

const HOST_FILE = "(host environment)";
/** The bottle's NO_PROXY (see the docker backend) plus the gate, for Claude Code's route. */
export const NO_PROXY_WITH_GATE = "localhost,127.0.0.1,::1,gate";

/** How to create a credential; shown when none is found. */
export const SETUP_TOKEN_FIX =
  "run `claude setup-token` and export CLAUDE_CODE_OAUTH_TOKEN=<the token> (or export ANTHROPIC_API_KEY, or set auth: { token: ${VAR} } in the bottle); " +
  "the gate keeps it, the bottle only sees a placeholder — or give a command other than claude: bottle up -- CMD";

export function missingCredentialError(): BottleError {
  return new BottleError("no credential for Claude Code: CLAUDE_CODE_OAUTH_TOKEN and ANTHROPIC_API_KEY are not set, and the bottle has no auth.token", {
    fix: SETUP_TOKEN_FIX,
  });
}

/** oauth or api-key: an explicit kind, else the token's prefix, else the variable's name, else oauth. */
export function inferKind(explicit: ClaudeCredentialKind | undefined, name: string | undefined, value: string | undefined): ClaudeCredentialKind {
  if (explicit) return explicit;
  if (value?.startsWith("sk-ant-oat")) return "oauth";
  if (value?.startsWith("sk-ant-api")) return "api-key";
  if (name === "ANTHROPIC_API_KEY") return "api-key";
  return "oauth";
}

function describeSource(source: EnvSource): string {
  if (source.kind === "host") return `\${${source.variable}}`;
  if (source.kind === "ask") return "asked at launch";
  return "literal";
}

/** The value when it is known without asking (literal, or from the host env). */
function peek(source: EnvSource, hostEnv: Env): string | undefined {
  if (source.kind === "literal") return source.value;
  if (source.kind === "host") return hostEnv[source.variable];
  return undefined;
}

export interface ClaudeCredential {
  entry: ResolvedEnvEntry;
  /** For people: where it comes from. */
  source: string;
  /** Field path for errors. */
  path: string;
  kind: ClaudeCredentialKind;
}

/**
 * Claude Code's credential, first found of: the bottle's `auth.token`, the
 * bottle's env CLAUDE_CODE_OAUTH_TOKEN / ANTHROPIC_API_KEY, then the same
 * variables in the host env.
 */
export function findClaudeCredential(bottle: ResolvedBottle, hostEnv: Env): ClaudeCredential | undefined {
  const explicit = bottle.auth.kind;
  const token = bottle.auth.token;
  if (token) {
    const name = token.source.kind === "host" ? token.source.variable : undefined;
    return { entry: token, source: `auth.token (${describeSource(token.source)})`, path: "auth.token", kind: inferKind(explicit, name, peek(token.source, hostEnv)) };
  }
  for (const name of CLAUDE_CREDENTIAL_VARS) {
    const entry = bottle.env[name];
    if (entry) return { entry, source: `env.${name} (${describeSource(entry.source)})`, path: `env.${name}`, kind: inferKind(explicit, name, peek(entry.source, hostEnv)) };
  }
  for (const name of CLAUDE_CREDENTIAL_VARS) {
    const value = hostEnv[name];
    if (value) {
      const entry: ResolvedEnvEntry = { source: { kind: "host", variable: name }, file: HOST_FILE, line: 0, col: 0 };
      return { entry, source: `$${name} (host environment)`, path: name, kind: inferKind(explicit, name, value) };
    }
  }
  return undefined;
}

/** A route's credential name (and placeholder name): auth.env, else the ${VAR} name, else ROUTE_<n>_TOKEN. */
export function routeCredentialName(route: ResolvedBottle["egress"]["routes"][number], index: number): { credential: string; env?: string } {
  if (route.env) return { credential: route.env, env: route.env };
  if (route.token.source.kind === "host") return { credential: route.token.source.variable, env: route.token.source.variable };
  return { credential: `ROUTE_${index + 1}_TOKEN` };
}

function sameSource(a: EnvSource, b: EnvSource): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function hostWithPort(host: string, port: number): string {
  return port === 443 ? host : `${host}:${port}`;
}

/** The custody part of the plan. Throws when two credentials would share a placeholder name. */
export function custodyPlan(bottle: ResolvedBottle, hostEnv: Env): CustodyPlan {
  const claude = findClaudeCredential(bottle, hostEnv);
  const plan: CustodyPlan = { routes: [], port: CLAUDE_ROUTE_PORT };
  const owners = new Map<string, { source: EnvSource; what: string }>();
  const claim = (name: string, source: EnvSource, what: string): void => {
    const owner = owners.get(name);
    if (owner && !sameSource(owner.source, source)) {
      throw new BottleError(`${what} and ${owner.what} both use the name ${name} for different credentials`, {
        fix: "give one of the routes its own auth.env name",
      });
    }
    owners.set(name, { source, what });
  };
  if (claude) {
    const env = claude.kind === "oauth" ? "CLAUDE_CODE_OAUTH_TOKEN" : "ANTHROPIC_API_KEY";
    claim(env, claude.entry.source, "Claude Code's credential");
    plan.claude = {
      source: claude.source,
      kind: claude.kind,
      env,
      upstream: bottle.auth.upstream ?? DEFAULT_ANTHROPIC_UPSTREAM,
      baseUrl: `http://gate:${CLAUDE_ROUTE_PORT}${CLAUDE_ROUTE_PREFIX}`,
    };
  }
  bottle.egress.routes.forEach((route, index) => {
    const { credential, env } = routeCredentialName(route, index);
    if ((CLAUDE_CREDENTIAL_VARS as readonly string[]).includes(credential) || credential === "ANTHROPIC_BASE_URL") {
      throw new BottleError(`the route for ${route.host} uses the name ${credential}, which is Claude Code's`, { fix: "give the route another auth.env name" });
    }
    claim(credential, route.token.source, `the route for ${route.host}`);
    plan.routes.push({
      host: route.host,
      port: route.port,
      header: route.header,
      ...(route.scheme === undefined ? {} : { scheme: route.scheme }),
      credential,
      ...(env === undefined ? {} : { env }),
      paths: route.paths,
      methods: route.methods,
      source: describeSource(route.token.source),
    });
  });
  return plan;
}

/** Hosts custody needs on the allowlist: the upstream of Claude Code's route and every route's host. */
export function custodyHosts(custody: CustodyPlan | undefined): string[] {
  if (!custody) return [];
  const hosts: string[] = [];
  if (custody.claude) {
    const url = new URL(custody.claude.upstream);
    hosts.push(hostWithPort(url.hostname.toLowerCase(), url.port ? Number(url.port) : 443));
  }
  for (const route of custody.routes) hosts.push(hostWithPort(route.host, route.port));
  return [...new Set(hosts)];
}

/**
 * Env names the bottle must not get from its manifest: Claude Code's
 * credential variables always, ANTHROPIC_BASE_URL when the gate routes Claude
 * Code, and every route's placeholder name.
 */
export function heldEnvNames(custody: CustodyPlan | undefined): string[] {
  const names: string[] = [...CLAUDE_CREDENTIAL_VARS];
  if (custody?.claude) names.push("ANTHROPIC_BASE_URL", "NO_PROXY", "no_proxy");
  for (const route of custody?.routes ?? []) if (route.env) names.push(route.env);
  return [...new Set(names)];
}

/**
 * Manifest env entries that copy the same host variable as a credential the
 * gate holds: the bottle would then have the real value after all.
 */
export function sharedWithBottle(bottle: ResolvedBottle, env: ResolvedBottle["env"], hostEnv: Env): string[] {
  const held = new Set<string>();
  const claude = findClaudeCredential(bottle, hostEnv);
  if (claude?.entry.source.kind === "host") held.add(claude.entry.source.variable);
  for (const route of bottle.egress.routes) if (route.token.source.kind === "host") held.add(route.token.source.variable);
  return Object.entries(env)
    .filter(([, entry]) => entry.source.kind === "host" && held.has(entry.source.variable))
    .map(([name]) => name);
}

export interface CustodyValues {
  /** Credential name → real value: for the gate only. */
  credentials: Record<string, string>;
  /** What the bottle's env file gets instead: placeholders and ANTHROPIC_BASE_URL. */
  env: Record<string, string>;
}

export interface ResolveCustodyOptions {
  hostEnv: Env;
  interactive: boolean;
  ask: (question: string, name: string) => Promise<string>;
}

type ResolveValuesOptions = Pick<ResolveCustodyOptions, "hostEnv" | "interactive">;

/** The credentials the gate needs for this launch, each with where it is written. */
function wantedCredentials(bottle: ResolvedBottle, custody: CustodyPlan, hostEnv: Env): Array<{ name: string; entry: ResolvedEnvEntry; path: string }> {
  const wanted: Array<{ name: string; entry: ResolvedEnvEntry; path: string }> = [];
  if (custody.claude) {
    const claude = findClaudeCredential(bottle, hostEnv);
    if (claude) wanted.push({ name: custody.claude.env, entry: claude.entry, path: claude.path });
  }
  bottle.egress.routes.forEach((route, index) => {
    const { credential } = routeCredentialName(route, index);
    if (!wanted.some((item) => item.name === credential)) wanted.push({ name: credential, entry: route.token, path: `egress.routes (${route.host}).auth.token` });
  });
  return wanted;
}

/** The credentials that cannot get a value: an unset (or empty) host variable, a question with no terminal to ask on. */
export function custodyValueIssues(bottle: ResolvedBottle, custody: CustodyPlan | undefined, options: ResolveValuesOptions): ValueIssues {
  return valueIssues(custody ? wantedCredentials(bottle, custody, options.hostEnv) : [], options, {
    emptyIsUnset: true,
    askFix: () => "write ${VAR} to copy it from the host environment instead",
  });
}

/**
 * The credential values (from the host env, the manifest, or asked) and the
 * bottle's placeholders. Every problem is reported at once, naming the
 * variable, never a value.
 */
export async function resolveCustody(bottle: ResolvedBottle, custody: CustodyPlan | undefined, options: ResolveCustodyOptions): Promise<CustodyValues> {
  const values: CustodyValues = { credentials: {}, env: {} };
  if (!custody) return values;
  const error = valueIssuesError([custodyValueIssues(bottle, custody, options)], options.hostEnv);
  if (error) throw error;
  const wanted = wantedCredentials(bottle, custody, options.hostEnv);
  for (const { name, entry } of wanted) {
    const source = entry.source;
    const value = source.kind === "literal" ? source.value : source.kind === "host" ? (options.hostEnv[source.variable] ?? "") : await options.ask(source.question || name, name);
    if (value === "") throw new BottleError(`the credential ${name} is empty`, { fix: "give it a value" });
    if (isPlaceholder(value)) throw new BottleError(`the credential ${name} is a bottle placeholder, not a real credential`, { fix: "export the real token on the host" });
    values.credentials[name] = value;
  }
  if (custody.claude) {
    // Claude Code talks to the gate's route directly, not through the proxy.
    values.env.NO_PROXY = NO_PROXY_WITH_GATE;
    values.env.no_proxy = NO_PROXY_WITH_GATE;
    values.env.ANTHROPIC_BASE_URL = custody.claude.baseUrl;
    values.env[custody.claude.env] = placeholderFor(custody.claude.env);
  }
  for (const route of custody.routes) if (route.env) values.env[route.env] = placeholderFor(route.credential);
  return values;
}

/** The egress gate's custody config (Claude Code's route listens where the proxy does: the config's `listen`). */
export function custodyGateConfig(custody: CustodyPlan | undefined): Partial<EgressGateFile> {
  if (!custody || (!custody.claude && custody.routes.length === 0)) return {};
  const config: Partial<EgressGateFile> = { credentialsFile: GATE_CREDENTIALS_FILE };
  if (custody.routes.length > 0) {
    config.tlsDir = GATE_TLS_DIR;
    config.routes = custody.routes.map((route) => ({
      host: route.host,
      port: route.port,
      header: route.header,
      ...(route.scheme === undefined ? {} : { scheme: route.scheme }),
      credential: route.credential,
      paths: route.paths,
      methods: route.methods,
    }));
  }
  if (custody.claude) {
    config.anthropic = {
      port: custody.port,
      prefix: CLAUDE_ROUTE_PREFIX,
      upstream: custody.claude.upstream,
      credential: custody.claude.env,
      kind: custody.claude.kind,
    };
  }
  return config;
}

/** The credentials file, root-only in the gate. */
export function custodyGateFiles(credentials: Record<string, string>): TarEntry[] {
  if (Object.keys(credentials).length === 0) return [];
  return [{ path: GATE_CREDENTIALS_FILE.slice(1), content: JSON.stringify(credentials), mode: 0o600, uid: 0, gid: 0 }];
}

/**
 * The gate's CA for the bottle: `ca` gives what the gate's ready line carried
 * (the gate makes the CA as it starts; its key never leaves it), added to
 * the bottle image's own bundle in a file in the bottle user's HOME, and the
 * env that points TLS clients at it. Nothing when the bottle has no routes.
 * The bottle's bundle is read while the gate starts.
 */
export async function bottleTrust(bottle: BottleHandle, plan: Plan, ca: () => Promise<string | undefined>): Promise<{ entries: TarEntry[]; env: Record<string, string> }> {
  if (!plan.custody?.routes.length) return { entries: [], env: {} };
  const [gateCa, system] = await Promise.all([ca(), bottle.exec(["cat", SYSTEM_CA_BUNDLE], { check: false })]);
  if (!gateCa?.includes("-----BEGIN CERTIFICATE-----")) {
    throw new BottleError(`the gate ${plan.containers.gate} did not report a CA certificate for the credential routes`, {
      fix: "run `bottle doctor`, then the launch again",
    });
  }
  const { uid, gid } = plan.workspace.user;
  const caPem = `${gateCa.trim()}\n`;
  const bundle = `${system.stdout.trimEnd()}${system.stdout.trim() ? "\n" : ""}${caPem}`;
  return {
    entries: [
      { path: BOTTLE_TRUST_DIR, type: "dir", mode: 0o755, uid, gid },
      { path: BOTTLE_GATE_CA, content: caPem, mode: 0o644, uid, gid },
      { path: BOTTLE_CA_BUNDLE, content: bundle, mode: 0o644, uid, gid },
    ],
    env: Object.fromEntries(TRUST_ENV_VARS.map((name) => [name, BOTTLE_CA_BUNDLE])),
  };
}

/** Preflight rows: how Claude Code logs in, and each credential route. */
export function custodyRows(custody: CustodyPlan | undefined): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  const claude = custody?.claude;
  if (claude) {
    const what = claude.kind === "oauth" ? "OAuth token" : "API key";
    rows.push(["auth", `Claude Code's ${what} from ${claude.source}, held by the gate (the bottle sees a placeholder); ${claude.baseUrl} → ${claude.upstream}`]);
  } else {
    rows.push(["auth", "none — Claude Code will not be logged in (`claude setup-token`, then export CLAUDE_CODE_OAUTH_TOKEN)"]);
  }
  for (const route of custody?.routes ?? []) {
    const scope = `${route.paths.length ? route.paths.join(" ") : "all paths"}${route.methods.length ? ` (${route.methods.join(", ")})` : ""}`;
    const placeholder = route.env ? `$${route.env} is a placeholder` : "no env var";
    rows.push(["route", `${hostWithPort(route.host, route.port)} ${scope}: ${route.header}: ${route.scheme ? `${route.scheme} ` : ""}<${route.credential}, ${route.source}> added by the gate; ${placeholder}`]);
  }
  return rows;
}
