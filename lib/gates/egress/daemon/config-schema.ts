/**
 * The egress gate's config file (`/etc/bottle/egress.json`): one schema for
 * the host, which renders it (lib/gates/egress/config.ts and credential
 * custody's part, lib/gates/custody/), and for the gate, which checks it at
 * start and on SIGHUP (config.ts). A bad field is named as `routes[0].host:
 * <what is wrong>`.
 */
import * as v from "valibot";
import { parseCidr } from "./addresses.ts";
import { TOKEN } from "./headers.ts";
import { Policy, normalizeHost } from "./policy.ts";

/**
 * An object with exactly `entries`: any other field is an "unknown field",
 * a missing one gets its own schema's message (`bottle: expected a string`).
 */
function fields<const T extends v.ObjectEntries>(entries: T, notAnObject = "expected an object") {
  return v.strictObject(entries, (issue) => {
    if (issue.expected === "never") return "unknown field";
    const key = issue.path?.[0]?.key;
    const schema = typeof key === "string" && Object.hasOwn(entries, key) ? entries[key] : undefined;
    if (schema && issue.received === "undefined") return v.safeParse(schema, undefined).issues?.[0]?.message ?? "missing";
    return notAnObject;
  });
}

function integer(min: number, max: number) {
  const message = `expected an integer ${min}..${max}`;
  return v.pipe(v.number(message), v.integer(message), v.minValue(min, message), v.maxValue(max, message));
}

const text = v.pipe(
  v.string("expected a string"),
  v.check((value) => value.trim() !== "", "must not be empty"),
);

const texts = v.array(text, "expected an array of strings");

/** A credential's name: what its placeholder carries (custody.ts), a variable-like name. */
export const CREDENTIAL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isCredentialName(name: string): boolean {
  return CREDENTIAL_NAME.test(name);
}

const credentialName = v.pipe(text, v.check(isCredentialName, "expected a variable-like name"));

/** A credential route: the gate ends TLS for `host:port` and adds the credential to matching requests. */
const RouteSchema = fields({
  /** Normalised host name (no wildcards, no IP literal). */
  host: v.pipe(
    text,
    v.check((host) => {
      const target = normalizeHost(host);
      return target?.kind === "name" && target.host === host;
    }, "expected a lower-case host name"),
  ),
  /** The port TLS is terminated on (443 unless the route names one). */
  port: integer(1, 65535),
  /** Header that carries the credential, e.g. "Authorization". */
  header: v.pipe(text, v.regex(TOKEN, "not a header name")),
  /** Put before the value with a space, e.g. "Bearer". */
  scheme: v.optional(v.pipe(text, v.regex(TOKEN, "not an auth scheme"))),
  /** Name of the credential (in the credentials file; also the placeholder's name and the bottle's env var). */
  credential: credentialName,
  /** Path prefixes the credential is injected for; empty = every path. */
  paths: v.array(
    v.pipe(
      text,
      v.check((path) => path.startsWith("/") && !/[?#\s]/.test(path), "expected a path starting with /"),
    ),
    "expected an array of strings",
  ),
  /** Upper-case methods the credential is injected for; empty = every method. */
  methods: v.array(
    v.pipe(
      text,
      v.check((method) => TOKEN.test(method) && method === method.toUpperCase(), "expected an upper-case method"),
    ),
    "expected an array of strings",
  ),
});

/** The plain-HTTP route for Claude Code (`ANTHROPIC_BASE_URL=http://gate:<port><prefix>`). */
const AnthropicSchema = fields({
  /** Bound on the gate's `listen` addresses, like the proxy. */
  port: integer(0, 65535),
  /** Path prefix of the route, e.g. "/anthropic". */
  prefix: v.pipe(text, v.regex(/^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/, "expected a path like /anthropic")),
  /** Where requests go, e.g. "https://api.anthropic.com" (https only; may carry a path prefix). */
  upstream: v.pipe(
    text,
    v.check((upstream) => URL.canParse(upstream), "expected an https:// URL"),
    v.check((upstream) => {
      const url = new URL(upstream);
      return url.protocol === "https:" && !url.username && !url.password && !url.search && !url.hash && !/[#?]/.test(upstream);
    }, "expected an https:// URL without credentials, query or fragment"),
  ),
  credential: credentialName,
  /** oauth: `Authorization: Bearer <token>`; api-key: `x-api-key: <key>`. */
  kind: v.picklist(["oauth", "api-key"], "expected oauth or api-key"),
});

const LimitsSchema = fields({
  /** Requests (plain HTTP requests + CONNECTs) per minute for the whole bottle; 0 = unlimited. */
  requestsPerMinute: integer(0, 1e9),
  /** Total bytes client→upstream over the gate's lifetime; 0 = unlimited. */
  bytesOut: integer(0, Number.MAX_SAFE_INTEGER),
  /** Close a connection/tunnel with no traffic for this long; 0 = never. */
  idleTimeoutMs: integer(0, 2 ** 31 - 1),
  /** Close a tunnel / request after this long; 0 = never. */
  maxTunnelMs: integer(0, 2 ** 31 - 1),
  /** Bytes each gate log (egress, git, ssh) may hold on the host with its one rotated generation; 0 = no cap. */
  maxLogBytes: integer(0, Number.MAX_SAFE_INTEGER),
});

// Fields are checked in this order, limits first as the gate always has (a file that lacks most fields names its limits).
const ConfigFields = fields(
  {
    limits: LimitsSchema,
    /** Bottle name, for audit lines and 403 hints. */
    bottle: text,
    /** HTTP + CONNECT proxy port, e.g. 3128 (0 = any free port; tests). */
    proxyPort: integer(0, 65535),
    /** UDP + TCP DNS responder port, e.g. 53 (0 = any free port; tests). */
    dnsPort: integer(0, 65535),
    /**
     * Where every gate service listens (proxy, DNS, Claude Code's route):
     * addresses or CIDRs; each binds to the gate's own addresses inside them
     * (listen.ts). The bottle's internal network, never the egress side.
     */
    listen: v.pipe(
      v.array(v.pipe(text, v.check((entry) => parseCidr(entry) !== null, "expected an address or CIDR")), "expected an array of strings"),
      v.minLength(1, "must not be empty"),
    ),
    /** "api.anthropic.com", "*.example.com" (subdomains, not the apex), "host:8443" (only that port), IP literals. */
    allow: texts,
    /** Host names (`*.` wildcards) or addresses/CIDRs whose private resolution is permitted. */
    allowPrivate: texts,
    /** JSON-lines audit file (appended to). */
    auditLog: text,
    /** Optional JSON array of secret strings (a root-only file) for DLP. */
    secretsFile: v.optional(text),
    /** Addresses (or CIDRs) of the Docker host: always refused. */
    hostAddresses: texts,
    /** Credential custody: a root-only JSON object of credential name → value. */
    credentialsFile: v.optional(text),
    /** Hosts whose HTTPS the gate terminates to inject a credential (needs tlsDir). */
    routes: v.optional(v.array(RouteSchema, "expected an array")),
    /** Claude Code's plain-HTTP route to the Anthropic API. */
    anthropic: v.optional(AnthropicSchema),
    /** Where the gate keeps the CA and certificate it makes for `routes` (root-only; the ready line carries ca.pem to the host). */
    tlsDir: v.optional(text),
  },
  "config: expected an object",
);

type Fields = v.InferOutput<typeof ConfigFields>;

/** The gate serves each route host on one port: every route of a host names the same one. */
const routePortsAgree = v.rawCheck<Fields>(({ dataset, addIssue }) => {
  if (!dataset.typed) return;
  const config = dataset.value;
  const routes = config.routes ?? [];
  const ports = new Map<string, number>();
  routes.forEach((route, i) => {
    const port = ports.get(route.host);
    if (port !== undefined && port !== route.port) {
      addIssue({
        message: `every route of ${route.host} must use the same port`,
        path: [
          { type: "object", origin: "value", input: config, key: "routes", value: routes },
          { type: "array", origin: "value", input: routes, key: i, value: route },
          { type: "object", origin: "value", input: route, key: "port", value: route.port },
        ],
      });
    }
    ports.set(route.host, route.port);
  });
});

/** Every allow, allowPrivate and hostAddresses entry must parse; the Policy names the bad one. */
const policyParses = v.rawCheck<Fields>(({ dataset, addIssue }) => {
  if (!dataset.typed) return;
  try {
    new Policy(dataset.value.allow, dataset.value.allowPrivate, dataset.value.hostAddresses);
  } catch (error) {
    addIssue({ message: error instanceof Error ? error.message : String(error) });
  }
});

export const EgressConfigSchema = v.pipe(
  ConfigFields,
  routePortsAgree,
  v.forward(
    v.check((config) => config.credentialsFile !== undefined || ((config.routes?.length ?? 0) === 0 && config.anthropic === undefined), "needed for routes and anthropic"),
    ["credentialsFile"],
  ),
  v.forward(
    v.check((config) => config.tlsDir !== undefined || (config.routes?.length ?? 0) === 0, "needed for routes"),
    ["tlsDir"],
  ),
  policyParses,
);

export type EgressConfig = v.InferOutput<typeof EgressConfigSchema>;
/** The file as the host writes it (lib/gates/egress/config.ts, lib/gates/custody/). */
export type EgressConfigFile = v.InferInput<typeof EgressConfigSchema>;
export type EgressLimits = EgressConfig["limits"];
export type RouteConfig = NonNullable<EgressConfig["routes"]>[number];
export type AnthropicRouteConfig = NonNullable<EgressConfig["anthropic"]>;
export type ClaudeCredentialKind = AnthropicRouteConfig["kind"];
