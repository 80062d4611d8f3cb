import * as v from "valibot";
import { BACKEND_NAMES } from "./backends/names.ts";
import { CustodyPlanSchema } from "./gates/custody/plan.ts";
import { WorkspaceGitSchema } from "./git/workspace-git.ts";
import { EFFORT_LEVELS, PERMISSION_MODES } from "./claude-flags.ts";
import { EngineSchema } from "./engine.ts";
import { ResourcesPlanSchema } from "./resources-schema.ts";

/**
 * The plan of one launch: plain data, serialisable, with env NAMES but never
 * values. `bottle up --dry-run --json` prints it; the state dir keeps it so
 * `ls`, `logs` and `down` need nothing else.
 */

const ImageSchema = v.object({ kind: v.string(), tag: v.string(), hash: v.string() });

/** A port forwarded from the host into the bottle (lib/ports/). */
export const PortForwardSchema = v.object({
  /** The port in the bottle. */
  port: v.number(),
  /** The host address it is published on: 127.0.0.1 unless --bind. */
  hostIp: v.string(),
  /** The host port; absent: any free one (the bottle's own port was taken when planned). */
  hostPort: v.optional(v.number()),
  /** The host port was written out ("8080:3000"): taken is an error, never another port. */
  explicit: v.boolean(),
  /** What held the bottle's own port on the host, when an implicit forward moved off it. */
  takenBy: v.optional(v.string()),
});
export type PortForward = v.InferOutput<typeof PortForwardSchema>;

export const PlanSchema = v.object({
  version: v.literal(1),
  name: v.string(),
  backend: v.picklist(BACKEND_NAMES),
  /** The Docker engine it runs on (lib/engine.ts); absent: the local default. */
  engine: v.optional(EngineSchema),
  agent: v.object({
    name: v.string(),
    source: v.string(),
    model: v.optional(v.string()),
    skills: v.array(v.string()),
    hasPrompt: v.boolean(),
    /** Claude Code's keys of the agent file that become the session's flags. */
    session: v.optional(
      v.object({
        tools: v.optional(v.array(v.string())),
        disallowedTools: v.optional(v.array(v.string())),
        permissionMode: v.optional(v.picklist(PERMISSION_MODES)),
        effort: v.optional(v.picklist(EFFORT_LEVELS)),
        initialPrompt: v.optional(v.string()),
      }),
    ),
  }),
  /** The user's Claude setup that comes in (lib/claude-setup/): what, item by item; whether the session gets a settings file. */
  claudeSetup: v.optional(
    v.object({
      items: v.array(v.tuple([v.string(), v.string()])),
      notes: v.array(v.string()),
      settings: v.boolean(),
    }),
  ),
  bottle: v.object({ name: v.string(), sources: v.array(v.string()) }),
  images: v.object({ agent: ImageSchema, gate: ImageSchema, custom: v.optional(ImageSchema) }),
  /** The image the bottle runs (custom when the bottle adds layers). */
  bottleImage: v.string(),
  networks: v.object({ internal: v.string(), egress: v.string() }),
  containers: v.object({ bottle: v.string(), gate: v.string() }),
  egress: v.object({
    /** Every host the gate allows: Claude Code's, the bottle's own, its presets' and its credential routes'. */
    allow: v.array(v.string()),
    defaults: v.array(v.string()),
    /** The bottle's presets and the hosts each added (plans written before presets have none). */
    presets: v.optional(v.array(v.object({ name: v.string(), version: v.number(), hosts: v.array(v.string()) }))),
    allowPrivate: v.array(v.string()),
    proxyPort: v.number(),
    /** The gate's limits (defaults merged with the bottle's egress.limits). */
    limits: v.object({ requestsPerMinute: v.number(), bytesOut: v.number(), idleTimeoutMs: v.number(), maxTunnelMs: v.number(), maxLogBytes: v.number() }),
    dnsPort: v.number(),
  }),
  env: v.array(v.object({ name: v.string(), kind: v.picklist(["literal", "host", "ask"]) })),
  workspace: v.object({
    mode: v.picklist(["mount", "copy", "branch", "none"]),
    hostPath: v.optional(v.string()),
    containerPath: v.string(),
    /** uid:gid the agent runs as (the workspace owner for mounts). */
    user: v.object({ uid: v.number(), gid: v.number() }),
    /** mount: how the workspace's .git is kept from the bottle (see lib/git/workspace-git.ts); copy, branch: the private git dir. */
    git: v.optional(WorkspaceGitSchema),
    /** branch: the host branch the bottle works on (lib/git/branch-workspace.ts); its name is settled when the bottle's name is. */
    branch: v.optional(v.object({ name: v.optional(v.string()), base: v.string(), explicit: v.boolean(), created: v.optional(v.boolean()) })),
  }),
  /** What the bottle will not have of the repository (branch: uncommitted changes, submodules, LFS contents). */
  workspaceNotes: v.optional(v.array(v.string())),
  gitUser: v.optional(v.object({ name: v.optional(v.string()), email: v.optional(v.string()) })),
  /** The git gate: each remote's upstream, the gate URL the bottle uses instead, the key's host path (never the key). */
  git: v.optional(
    v.object({
      port: v.number(),
      remotes: v.array(v.object({ name: v.string(), upstream: v.string(), url: v.string(), identityFile: v.string() })),
    }),
  ),
  /** The SSH gate: each listed host, the gate port the bottle's ssh_config sends it to, the key's host path (never the key). */
  ssh: v.optional(
    v.object({
      agentPort: v.number(),
      agentSocket: v.string(),
      hosts: v.array(
        v.object({
          host: v.string(),
          port: v.number(),
          user: v.optional(v.string()),
          gatePort: v.number(),
          identityFile: v.string(),
          knownHostKey: v.string(),
        }),
      ),
    }),
  ),
  /** Credential custody: which credentials the gate holds and where it uses them (names only). */
  custody: v.optional(CustodyPlanSchema),
  command: v.array(v.string()),
  /** Claude Code's flags on top of the agent's defaults (bottle up --continue, bottle run -p, …). */
  claude: v.optional(
    v.object({
      continue: v.optional(v.boolean()),
      resume: v.optional(v.union([v.string(), v.literal(true)])),
      model: v.optional(v.string()),
      prompt: v.optional(v.string()),
      print: v.optional(v.object({ prompt: v.string(), outputFormat: v.optional(v.picklist(["text", "json", "stream-json"])) })),
    }),
  ),
  /** What runs (Claude Code, or the command) is in a session that outlives the terminal (lib/session.ts); false for an attached command or headless run. */
  interactive: v.boolean(),
  /** Ports forwarded from the host, as the launch asked for them; what is forwarded now is the relays' (bottle ls, bottle port NAME). */
  ports: v.optional(v.array(PortForwardSchema)),
  /** Claude's home kept across `down` (lib/homes.ts), when the backend keeps one. */
  home: v.optional(v.object({ volume: v.string() })),
  detach: v.boolean(),
  runtime: v.picklist(["runc", "runsc"]),
  /** What the bottle (and its gate) may use of the machine, each limit with where it came from (lib/resources.ts). */
  resources: ResourcesPlanSchema,
  labels: v.record(v.string(), v.string()),
  createdAt: v.string(),
});

export type Plan = v.InferOutput<typeof PlanSchema>;

export function parsePlan(value: unknown): Plan | undefined {
  const result = v.safeParse(PlanSchema, value);
  return result.success ? result.output : undefined;
}

export const LABELS = {
  name: "bottle.name",
  agent: "bottle.agent",
  version: "bottle.version",
  role: "bottle.role",
  backend: "bottle.backend",
  workspace: "bottle.workspace",
  /** The state dir of the launching user: ls, down and cleanup keep to their own. */
  state: "bottle.state",
  /** On a port's relay: the bottle's port it forwards to. */
  port: "bottle.port",
} as const;
