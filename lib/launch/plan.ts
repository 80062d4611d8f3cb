import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { selectBackend } from "../backends/index.ts";
import { gateResources } from "../backends/gate.ts";
import { bottleLabels, listBottleContainers } from "../backends/objects.ts";
import type { Backend, PlannedImages } from "../backends/types.ts";
import { type Docker, dockerFor } from "../docker.ts";
import { checkEngineAnswers, type Engine, resolveEngine } from "../engine.ts";
import { BottleError } from "../errors.ts";
import type { Exec } from "../exec.ts";
import { custodyHosts, custodyPlan, heldEnvNames, missingCredentialError } from "../gates/custody/index.ts";
import { gitPlan } from "../gates/git/config.ts";
import { sshPlan } from "../gates/ssh/config.ts";
import type { HostRepo } from "../git/host-repo.ts";
import { agentImageSpec, caContextFiles, customImageSpec, gateImageSpec, imageRef, type ImageSpec, plannedImages } from "../images.ts";
import { type ClaudeSetup, loadClaudeSetup } from "../claude-setup/index.ts";
import { CLAUDE_CODE_HOSTS, resolveAgentAndBottle, type Resolved } from "../manifest/index.ts";
import { DEFAULT_EGRESS_LIMITS } from "../manifest/limits.ts";
import { egressHosts, presetHosts } from "../manifest/presets.ts";
import { LABELS, type Plan } from "../plan.ts";
import { planResources } from "../resources.ts";
import { peekName } from "../state.ts";
import { buildInfo } from "../version.ts";
import { checkHomeFormat, homeVolumeName, listHomeVolumes } from "../homes.ts";
import type { ClaudeArgs } from "../session.ts";
import { workspacePlan } from "../workspace.ts";
import type { PortSpec } from "../manifest/ports.ts";
import { planPorts } from "../ports/plan.ts";
import { exposureWarning } from "../ports/host.ts";
import { log } from "../log.ts";

/**
 * Planning a launch: resolve the agent and its bottle, choose the backend,
 * hash the images and ask docker what it has, and write it all down as a
 * plain `Plan`. Side-effect free: `bottle up --dry-run` stops here.
 */

export interface UpOptions {
  agent?: string;
  bottle?: string;
  backend?: string;
  workspace?: string;
  /** --workspace-unsafe (the command line only): launch a workspace that holds what the gates keep out, with a warning. */
  workspaceUnsafe?: boolean;
  name?: string;
  detach: boolean;
  passthrough: string[];
  cwd: string;
  env: Record<string, string | undefined>;
  /** Only planning (--dry-run): a missing Claude Code credential is shown, not an error. */
  dryRun?: boolean;
  /** Claude Code's flags on top of the agent's defaults. */
  claude?: ClaudeArgs;
  /** --branch: the workspace is a branch of its own (a name, or true for bottle/<name>). */
  branch?: string | true;
  /** --context: the docker context to run on (else DOCKER_HOST, DOCKER_CONTEXT, the current context). */
  context?: string;
  /** `-p`: ports to forward on top of the bottle's `ports:`. */
  ports?: PortSpec[];
  /** `--bind`: the host address ports are published on (default 127.0.0.1). */
  bind?: string;
}

/**
 * The workspace mode on the engine: a remote engine cannot bind-mount this
 * machine's files, so `mount` is refused when the bottle asked for it and
 * otherwise becomes `branch` (in a repository) or `copy`.
 */
function remoteWorkspace(resolved: Resolved, engine: Engine, path: string): Plan["workspace"]["mode"] {
  const mode = resolved.bottle.workspace;
  if (!engine.remote || mode !== "mount") return mode;
  const asked = resolved.bottle.origins.workspace;
  if (asked)
    throw new BottleError(`${asked} asks for workspace: mount, and the docker engine at ${engine.endpoint} is another machine: it cannot mount this one's files`, {
      fix: "use workspace: branch (a checkout of your HEAD; its work comes back as a branch) or workspace: copy",
    });
  return existsSync(join(path, ".git")) ? "branch" : "copy";
}

export const PROXY_PORT = 3128;
export const DNS_PORT = 53;

/** A planned launch: what the preflight shows and what running it needs. */
export interface Planned {
  plan: Plan;
  resolved: Resolved;
  backend: Backend;
  docker: Docker;
  /** The images as planning hashed them, and which are missing (built by prepare). */
  images: PlannedImages;
  /** `bottle-<agent>` (or --name): the launch claims it or the next free `-N`. */
  nameBase: string;
  /** Bottle names docker already uses, as seen at plan time. */
  taken: string[];
  /** mount: the host repository the bottle's private git dir is made from. */
  workspaceRepo?: HostRepo;
  /** What of the user's Claude setup comes in, read from the host. */
  claudeSetup: ClaudeSetup;
}

/**
 * The env the bottle gets from its manifest: everything but what the gate
 * holds (Claude Code's credential, route tokens); those become placeholders.
 */
export function bottleEnv(resolved: Resolved, env: Record<string, string | undefined>): Resolved["bottle"]["env"] {
  const entries = { ...resolved.bottle.env };
  for (const name of heldEnvNames(custodyPlan(resolved.bottle, env))) delete entries[name];
  return entries;
}

/** Everything up to the confirm question; side-effect free (also for --dry-run). */
export async function planUp(exec: Exec, options: UpOptions): Promise<Planned> {
  const resolved = await resolveAgentAndBottle({ agent: options.agent, bottle: options.bottle, projectDir: options.cwd, env: options.env });
  const claudeSetup = loadClaudeSetup(resolved, options.env, resolve(options.cwd, options.workspace ?? "."));
  // HTTP MCP servers' tokens: credential routes the gate holds, like the bottle's own.
  resolved.bottle.egress.routes.push(...claudeSetup.mcp.routes);
  const backend = selectBackend(options.backend, resolved.bottle, options.env, { dryRun: options.dryRun });
  // The engine, by the Docker CLI's rules; written into the plan so later commands find the bottle there.
  const engine = await resolveEngine(exec, options.context, options.env);
  if (engine.remote && !backend.remoteEngines)
    throw new BottleError(`the ${backend.name} backend runs on this machine, not on the docker engine at ${engine.endpoint}`, {
      fix: `use --backend docker on a remote engine, or leave out ${options.context ? "--context" : "DOCKER_HOST / DOCKER_CONTEXT"}`,
    });
  await checkEngineAnswers(exec, engine);
  const recordedEngine = engine.context || engine.host ? engine : undefined;
  const docker = dockerFor(exec, recordedEngine);

  const base = options.name ?? resolved.agent.name;
  if (!/^[a-z0-9][a-z0-9_.-]*$/.test(base))
    throw new BottleError(`invalid bottle name "${base}"`, { fix: "use lower-case letters, digits, '-', '_' or '.' with --name" });

  // The docker queries planning needs, in one round: names taken, the engine
  // (runtimes, CPUs, memory, which limits it sets: the backend reads them),
  // then (once hashed) the images' tags with the base, whose id is checked on
  // their label. Only the runtime's registration is asked now; a probe waits for the launch.
  const infoFound = docker.info();
  // Asked before the tags are hashed (a few ms of CPU), so this query runs meanwhile.
  const containersListed = listBottleContainers(docker, { scope: "all" });
  // --branch [NAME] makes any bottle's workspace a branch of its own; a remote engine cannot mount this machine's files.
  const workspaceMode = options.branch !== undefined ? "branch" : remoteWorkspace(resolved, engine, options.workspace ?? options.cwd);
  const workspaceFound = workspacePlan(exec, {
    mode: workspaceMode,
    path: options.workspace ?? options.cwd,
    env: options.env,
    bottle: resolved.bottle,
    unsafe: Boolean(options.workspaceUnsafe),
    ...(typeof options.branch === "string" ? { branch: options.branch } : {}),
  });
  const homesListed = backend.keepsHomes ? listHomeVolumes(docker) : Promise.resolve([]);
  // The host ports, probed before anything exists (a taken HOSTPORT is an error now, not half-way through the launch).
  const portsPlanned = planPorts(resolved.bottle.ports, { cli: options.ports ?? [], bind: options.bind }, { backend, docker, engine });
  // If reading the CA files below throws, these must not end as unhandled rejections.
  for (const query of [infoFound, containersListed, workspaceFound, homesListed, portsPlanned]) query.catch(() => undefined);
  const ca = caContextFiles(resolved.bottle.caCerts, options.env);
  const agentSpec = agentImageSpec(ca, options.env);
  const gateSpec = gateImageSpec(ca, options.env);
  const agentRef = imageRef(agentSpec);
  const gateRef = imageRef(gateSpec);
  const customSpec = resolved.bottle.image ? customImageSpec(agentRef, resolved.bottle.image.dockerfile) : undefined;
  const customRef = customSpec ? imageRef(customSpec) : undefined;
  const refs = [agentRef, gateRef, ...(customRef ? [customRef] : [])];
  const [images, containers, info, { workspace, repo: workspaceRepo, notes: workspaceNotes }, homes, ports] = await Promise.all([
    plannedImages(docker, refs, options.env),
    containersListed,
    infoFound,
    workspaceFound,
    homesListed,
    portsPlanned,
  ]);
  // Claude's home for this workspace and agent, kept from an earlier bottle (or made now).
  const homeVolume = backend.keepsHomes ? homeVolumeName(workspace.hostPath ?? workspace.mode, resolved.agent.name) : undefined;
  checkHomeFormat(homes.find((home) => home.name === homeVolume));
  // The bottle's limits against the machine it runs on; the gate's own, on the Docker engine (both backends run it there).
  const machine = backend.planEngine(info);
  const resources = planResources(resolved.bottle.resources, machine.capacity, gateResources(info), options.env);
  // Builds record the base found on their label (it is not part of their tags).
  const withBase = (spec: ImageSpec): ImageSpec => ({ ...spec, base: images.base });
  const nameBase = `bottle-${base.replace(/^bottle-/, "")}`;
  const taken = containers.map((c) => c.labels[LABELS.name] ?? "");
  const name = peekName(nameBase, new Set(taken));

  const custody = custodyPlan(resolved.bottle, options.env);
  const claude = options.claude ?? {};
  // Attaching Claude Code (or running it headless) without a credential would only show its login error: say how to make one first.
  if (!custody.claude && options.passthrough.length === 0 && (!options.detach || claude.print) && !options.dryRun) throw missingCredentialError();
  const env = bottleEnv(resolved, options.env);
  const plan: Plan = {
    version: 1,
    name,
    backend: backend.name,
    ...(recordedEngine ? { engine: recordedEngine } : {}),
    agent: {
      name: resolved.agent.name,
      source: resolved.agent.source,
      model: resolved.agent.model,
      skills: claudeSetup.skills,
      hasPrompt: resolved.agent.prompt.trim().length > 0,
      ...(resolved.agent.session ? { session: resolved.agent.session } : {}),
    },
    ...(claudeSetup.rows.length || claudeSetup.notes.length
      ? { claudeSetup: { items: claudeSetup.rows, notes: claudeSetup.notes, settings: Boolean(claudeSetup.settings) } }
      : {}),
    bottle: { name: resolved.bottle.name, sources: resolved.bottle.sources },
    images: { agent: agentRef, gate: gateRef, ...(customRef ? { custom: customRef } : {}) },
    bottleImage: (customRef ?? agentRef).tag,
    networks: { internal: `${name}-internal`, egress: `${name}-egress` },
    containers: { bottle: name, gate: `${name}-gate` },
    egress: {
      allow: [...new Set([...CLAUDE_CODE_HOSTS, ...egressHosts(resolved.bottle.egress), ...custodyHosts(custody)])],
      defaults: [...CLAUDE_CODE_HOSTS],
      presets: resolved.bottle.egress.presets.map((ref) => ({ ...ref, hosts: presetHosts(ref) })),
      allowPrivate: resolved.bottle.egress.allowPrivate,
      proxyPort: PROXY_PORT,
      limits: { ...DEFAULT_EGRESS_LIMITS, ...resolved.bottle.egress.limits },
      dnsPort: DNS_PORT,
    },
    env: Object.entries(env).map(([envName, entry]) => ({ name: envName, kind: entry.source.kind })),
    workspace,
    ...(workspaceNotes?.length ? { workspaceNotes } : {}),
    gitUser: resolved.gitUser,
    git: gitPlan(resolved.bottle.git.remotes),
    custody,
    ...(resolved.bottle.ssh.hosts.length ? { ssh: sshPlan(resolved.bottle.ssh.hosts) } : {}),
    command: options.passthrough,
    ...(Object.keys(claude).length ? { claude } : {}),
    // A headless run or a command streams to the terminal, unless left to run detached: then it has a session to attach to.
    interactive: options.detach || (options.passthrough.length === 0 && !claude.print),
    ...(homeVolume ? { home: { volume: homeVolume } } : {}),
    ...(ports.length ? { ports } : {}),
    detach: options.detach,
    runtime: machine.runtime,
    resources,
    labels: {},
    createdAt: new Date().toISOString(),
  };
  plan.labels = bottleLabels(plan, "bottle", buildInfo.version);
  const exposure = ports.length ? exposureWarning(name, ports[0]!.hostIp, ports.map((forward) => forward.port)) : undefined;
  if (exposure) log.warn(exposure);
  return {
    plan,
    resolved,
    backend,
    docker,
    images: {
      specs: { agent: withBase(agentSpec), gate: withBase(gateSpec), ...(customSpec ? { custom: withBase(customSpec) } : {}) },
      missing: images.missing,
    },
    nameBase,
    taken,
    ...(workspaceRepo ? { workspaceRepo } : {}),
    claudeSetup,
  };
}
