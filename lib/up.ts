import { join } from "node:path";
import {
  bottleLabels,
  type GateAddresses,
  isNameConflict,
  launchDocker,
  listBottleContainers,
  passwdEntries,
  settleAll,
  teardownDocker,
} from "./backends/docker.ts";
import {
  type CreatedMachine,
  launchSmolmachine,
  realSmolvmHost,
  type SmolvmHost,
  smolvmUnavailable,
  teardownSmolmachine,
} from "./backends/smolmachines/launch.ts";
import { MachineDocker } from "./backends/smolmachines/machine-docker.ts";
import { prepareSmolmachine } from "./backends/smolmachines/prepare.ts";
import { smolvmBinary } from "./backends/smolmachines/smolvm.ts";
import { Docker } from "./docker.ts";
import { BottleError } from "./errors.ts";
import { signalExitCode, type Exec } from "./exec.ts";
import { summarizeDenials } from "./audit.ts";
import { DEFAULT_EGRESS_LIMITS } from "./manifest/limits.ts";
import {
  bottleTrust,
  custodyHosts,
  custodyPlan,
  heldEnvNames,
  isPlaceholder,
  missingCredentialError,
  resolveCustody,
  SETUP_TOKEN_FIX,
  sharedWithBottle,
} from "./gates/custody/index.ts";
import { gitPlan } from "./gates/git/config.ts";
import { readGitRemotes } from "./gates/git/host.ts";
import { sshPlan, sshPublicKeys } from "./gates/ssh/config.ts";
import { readSshHosts, startAgentRelay } from "./gates/ssh/host.ts";
import {
  agentImageSpec,
  caContextFiles,
  customImageSpec,
  ensureImage,
  gateImageSpec,
  plannedImages,
  imageRef,
  type ImageRef,
  type ImageSpec,
} from "./images.ts";
import { log } from "./log.ts";
import {
  CLAUDE_CODE_HOSTS,
  checkSkills,
  resolveAgentAndBottle,
  resolveEnvValues,
  type Resolved,
} from "./manifest/index.ts";
import { userSkillsDir } from "./paths.ts";
import { LABELS, type Plan } from "./plan.ts";
import { agentCommand, provisionEntries, workspaceEntries } from "./provision.ts";
import { chooseRuntime } from "./runtime.ts";
import { auditLogPath, claimName, peekName, processAlive, readOwner, removeState, writeState } from "./state.ts";
import { verifyEgressPolicy } from "./selftest.ts";
import { createTar } from "./tar.ts";
import { buildInfo } from "./version.ts";
import { recordWorkspaceRefs, saveCopiedWork, workspacePlan } from "./workspace.ts";
import type { HostRepo } from "./git/host-repo.ts";
import { bringBackOnTeardown } from "./git/bottle-branch.ts";
import { prepareWorkspaceGit, removeWorkspaceGitMountPoints, workspaceGitEntries } from "./git/workspace-git.ts";

/** `bottle up`: resolve → plan → preflight → prepare → launch → attach → teardown. */

export interface UpOptions {
  agent?: string;
  bottle?: string;
  backend?: string;
  workspace?: string;
  name?: string;
  detach: boolean;
  passthrough: string[];
  cwd: string;
  env: Record<string, string | undefined>;
  /** Only planning (--dry-run): a missing Claude Code credential is shown, not an error. */
  dryRun?: boolean;
}

export const PROXY_PORT = 3128;
export const DNS_PORT = 53;

/**
 * --backend, else BOTTLE_BACKEND, else the bottle's `backend:`, else docker.
 * smolmachines needs smolvm (and /dev/kvm on Linux); planning alone
 * (--dry-run) only warns when they are missing.
 */
export function selectBackend(
  option: string | undefined,
  resolved: { bottle: Pick<Resolved["bottle"], "backend"> },
  env: Record<string, string | undefined>,
  options: { dryRun?: boolean; host?: SmolvmHost } = {},
): "docker" | "smolmachines" {
  const chosen = option ?? env.BOTTLE_BACKEND ?? resolved.bottle.backend ?? "docker";
  if (chosen !== "docker" && chosen !== "smolmachines")
    throw new BottleError(`unknown backend "${chosen}"`, { fix: "use --backend docker or --backend smolmachines" });
  if (chosen === "smolmachines") {
    const unavailable = smolvmUnavailable(env, options.host ?? realSmolvmHost);
    if (unavailable && !options.dryRun) throw unavailable;
    if (unavailable) log.warn(`${unavailable.message} (fix: ${unavailable.fix})`);
  }
  return chosen;
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

export interface Prepared {
  plan: Plan;
  resolved: Resolved;
  docker: Docker;
  missingImages: string[];
  /** `bottle-<agent>` (or --name): the launch claims it or the next free `-N`. */
  nameBase: string;
  /** Bottle names docker already uses, as seen at plan time. */
  taken: string[];
  /** What to build, computed once (hashing reads the CA bundles). */
  specs: { agent: ImageSpec; gate: ImageSpec; custom?: ImageSpec };
  /** mount: the host repository the bottle's private git dir is made from. */
  workspaceRepo?: HostRepo;
}

/** Everything up to the confirm question; side-effect free (also for --dry-run). */
export async function planUp(exec: Exec, options: UpOptions): Promise<Prepared> {
  const resolved = await resolveAgentAndBottle({ agent: options.agent, bottle: options.bottle, projectDir: options.cwd, env: options.env });
  checkSkills(resolved.agent, options.env);
  const backend = selectBackend(options.backend, resolved, options.env, { dryRun: options.dryRun });
  const docker = new Docker(exec);

  const base = options.name ?? resolved.agent.name;
  if (!/^[a-z0-9][a-z0-9_.-]*$/.test(base))
    throw new BottleError(`invalid bottle name "${base}"`, { fix: "use lower-case letters, digits, '-', '_' or '.' with --name" });

  // The docker queries planning needs, in one round: names taken, runtimes,
  // then (once hashed) the images' tags with the base, whose id is checked on their label.
  // gVisor is a container runtime; a VM does not use one. Only its registration is asked now; the probe waits for the launch.
  const runtimeChosen = backend === "smolmachines" ? Promise.resolve("runc" as const) : chooseRuntime(docker);
  // Asked before the tags are hashed (a few ms of CPU), so this query runs meanwhile.
  const containersListed = listBottleContainers(docker, { scope: "all" });
  // If reading the CA files below throws, these must not end as unhandled rejections.
  for (const query of [runtimeChosen, containersListed]) query.catch(() => undefined);
  const ca = caContextFiles(resolved.bottle.caCerts, options.env);
  const agentSpec = agentImageSpec(ca, options.env);
  const gateSpec = gateImageSpec(ca, options.env);
  const agentRef = imageRef(agentSpec);
  const gateRef = imageRef(gateSpec);
  const customSpec = resolved.bottle.image ? customImageSpec(agentRef, resolved.bottle.image.dockerfile) : undefined;
  const customRef = customSpec ? imageRef(customSpec) : undefined;
  const refs = [agentRef, gateRef, ...(customRef ? [customRef] : [])];
  const planned = workspacePlan(docker.exec, resolved.bottle.workspace, options.workspace ?? options.cwd);
  planned.catch(() => undefined);
  const [images, containers, runtime, { workspace, repo: workspaceRepo }] = await Promise.all([
    plannedImages(docker, refs, options.env),
    containersListed,
    runtimeChosen,
    planned,
  ]);
  const missingImages = images.missing;
  // Builds record the base found on their label (it is not part of their tags).
  const withBase = (spec: ImageSpec): ImageSpec => ({ ...spec, base: images.base });
  const nameBase = `bottle-${base.replace(/^bottle-/, "")}`;
  const taken = containers.map((c) => c.labels[LABELS.name] ?? "");
  const name = peekName(nameBase, new Set(taken));

  const custody = custodyPlan(resolved.bottle, options.env);
  // Attaching Claude Code without a credential would only show its login error: say how to make one first.
  if (!custody.claude && options.passthrough.length === 0 && !options.detach && !options.dryRun) throw missingCredentialError();
  const env = bottleEnv(resolved, options.env);
  const plan: Plan = {
    version: 1,
    name,
    backend,
    agent: {
      name: resolved.agent.name,
      source: resolved.agent.source,
      model: resolved.agent.model,
      skills: resolved.agent.skills,
      hasPrompt: resolved.agent.prompt.trim().length > 0,
    },
    bottle: { name: resolved.bottle.name, sources: resolved.bottle.sources },
    images: { agent: agentRef, gate: gateRef, ...(customRef ? { custom: customRef } : {}) },
    bottleImage: (customRef ?? agentRef).tag,
    networks: { internal: `${name}-internal`, egress: `${name}-egress` },
    containers: { bottle: name, gate: `${name}-gate` },
    egress: {
      allow: [...new Set([...CLAUDE_CODE_HOSTS, ...resolved.bottle.egress.allow, ...custodyHosts(custody)])],
      defaults: [...CLAUDE_CODE_HOSTS],
      allowPrivate: resolved.bottle.egress.allowPrivate,
      proxyPort: PROXY_PORT,
      limits: { ...DEFAULT_EGRESS_LIMITS, ...resolved.bottle.egress.limits },
      dnsPort: DNS_PORT,
    },
    env: Object.entries(env).map(([envName, entry]) => ({ name: envName, kind: entry.source.kind })),
    workspace,
    gitUser: resolved.gitUser,
    git: gitPlan(resolved.bottle.git.remotes),
    custody,
    ...(resolved.bottle.ssh.hosts.length ? { ssh: sshPlan(resolved.bottle.ssh.hosts) } : {}),
    command: options.passthrough,
    interactive: options.passthrough.length === 0,
    detach: options.detach,
    runtime,
    labels: {},
    createdAt: new Date().toISOString(),
  };
  plan.labels = bottleLabels(plan, "bottle", buildInfo.version);
  return { plan, resolved, docker, missingImages, nameBase, taken, ...(workspaceRepo ? { workspaceRepo } : {}), specs: { agent: withBase(agentSpec), gate: withBase(gateSpec), ...(customSpec ? { custom: withBase(customSpec) } : {}) } };
}

function skillDirs(resolved: Resolved, env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(resolved.agent.skills.map((skill) => [skill, join(userSkillsDir(env), skill)]));
}

/** Signals during launch: finish the current step, then tear down. */
class Interrupts {
  signal: NodeJS.Signals | undefined;
  private readonly handlers = new Map<NodeJS.Signals, () => void>();

  constructor(private readonly onSecond: () => void) {
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      const handler = () => {
        if (this.signal) this.onSecond();
        this.signal = signal;
      };
      this.handlers.set(signal, handler);
      process.on(signal, handler);
    }
  }

  check(): void {
    if (this.signal) throw new BottleError(`interrupted (${this.signal}); removing what was created`, { exitCode: signalExitCode(this.signal) ?? 130 });
  }

  dispose(): void {
    for (const [signal, handler] of this.handlers) process.off(signal, handler);
  }
}

const NAME_RETRIES = 5;

/** Launch the prepared plan, attach (or detach), and tear down. Returns the exit code. */
export async function runUp(prepared: Prepared, options: UpOptions): Promise<number> {
  const { docker, resolved } = prepared;
  let plan = prepared.plan;
  const vm = plan.backend === "smolmachines";
  const smolvm = smolvmBinary(options.env);
  const env = bottleEnv(resolved, options.env);
  const envValues = await resolveEnvValues(
    { ...resolved.bottle, env },
    { hostEnv: options.env, interactive: docker.exec.isTerminal(), ask: askSecret },
  );
  // Credentials for the gate only; the bottle gets placeholders.
  const custody = await resolveCustody(resolved.bottle, plan.custody, { hostEnv: options.env, interactive: docker.exec.isTerminal(), ask: askSecret });
  if (!plan.custody?.claude && (options.detach || plan.command[0] === "claude"))
    log.warn(`no credential for Claude Code, so it will not be logged in; to give it one: ${SETUP_TOKEN_FIX}`);
  for (const name of sharedWithBottle(resolved.bottle, env, options.env))
    log.warn(`env.${name} copies a host variable the gate holds as a credential: the bottle gets its real value (remove it from env; the gate adds it)`);
  // The git gate's keys, read now so a missing one fails before anything is created.
  const gitRemotes = readGitRemotes(resolved);
  const sshKeys = readSshHosts(resolved);

  // Images first: a build is the slow step and creates nothing to tear down.
  let smolmachine: string | undefined;
  ({ plan, smolmachine } = await prepareImages(prepared, plan, options.env));

  /**
   * The bottle's files in one archive: passwd, the gate's CA (credential
   * routes only: the gate makes it as it starts, so that waits for `ready`,
   * the gate's readiness),
   * env, prompt, skills, a copied workspace; then the SSH agent relay.
   */
  const provision = async (target: Docker, launched: Plan, gate: Promise<GateAddresses>): Promise<void> => {
    const [passwd, trust] = await Promise.all([passwdEntries(target, launched), bottleTrust(target, launched, () => gate.then((g) => g.ca))]);
    const bottleValues = { ...envValues, ...custody.env, ...trust.env };
    const entries = [...passwd, ...trust.entries, ...provisionEntries({ plan: launched, envValues: bottleValues, prompt: resolved.agent.prompt, skillDirs: skillDirs(resolved, options.env), sshPublicKeys: sshPublicKeys(sshKeys) })];
    const { mode, hostPath, user, git, containerPath } = launched.workspace;
    if (mode === "copy" && hostPath) entries.push(...workspaceEntries(hostPath, user.uid, user.gid));
    if (git) entries.push(...workspaceGitEntries(git, prepared.workspaceRepo, containerPath, user.uid, user.gid));
    await target.copyArchiveIn(launched.containers.bottle, "/", createTar(entries));
    await startAgentRelay(target, launched);
    if (launched.workspace.mode === "copy") await recordWorkspaceRefs(target, launched);
  };

  const created: CreatedMachine = { networks: [], containers: [] };
  // Addresses the bottle: its container, or (smolmachines) its VM behind the same calls.
  let bottle: Docker = docker;
  const removeCreated = () => (vm ? teardownSmolmachine(docker, created, smolvm) : teardownDocker(docker, created));
  let claimed: string | undefined;
  let detached = false;
  const teardown = async () => {
    const bottleExists = vm ? created.machine !== undefined : created.containers.includes(plan.containers.bottle);
    if (plan.workspace.mode === "copy" && bottleExists) await saveCopiedWork(bottle, plan).catch(() => undefined);
    if (plan.workspace.git && bottleExists) await bringBackOnTeardown(bottle, plan);
    await removeCreated();
    if (plan.workspace.git) removeWorkspaceGitMountPoints(plan.workspace.git);
    if (claimed) {
      const summary = summarizeDenials(auditLogPath(claimed, "egress"));
      if (summary) log.info(summary);
      removeState(claimed);
    }
  };
  const interrupts = new Interrupts(() => {
    void teardown().finally(() => process.exit(130));
  });
  try {
    // Claim a name; when docker says another launch took it first, take the next one.
    const skip = new Set<string>();
    let gate: GateAddresses | undefined;
    for (let attempt = 1; ; attempt++) {
      // The plan's view of taken names serves the first attempt; a lost race re-lists.
      const taken =
        attempt === 1
          ? new Set(prepared.taken)
          : new Set((await listBottleContainers(docker, { scope: "all" })).map((c) => c.labels[LABELS.name] ?? ""));
      claimed = claimName(prepared.nameBase, taken, skip);
      plan = renamePlan(plan, claimed);
      bottle = vm ? new MachineDocker(docker.exec, plan.containers.bottle, smolvm, docker.binary) : docker;
      writeState(plan, { pid: process.pid, detach: options.detach, startedAt: plan.createdAt });
      if (plan.workspace.git) prepareWorkspaceGit(plan.name, plan.workspace.git);
      interrupts.check();
      try {
        const launch = { version: buildInfo.version, secrets: secretValues(envValues), custody: custody.credentials, git: gitRemotes, ssh: sshKeys, created };
        const launched = plan;
        gate = smolmachine
          ? await launchSmolmachine(docker, plan, { ...launch, smolmachine, binary: smolvm })
          : // The self-test and provisioning start while the gate comes up (the self-test gets its address once the gate is ready).
            await launchDocker(docker, plan, {
              ...launch,
              checks: (ready) => settleAll([verifyEgressPolicy(docker, launched, ready.then((g) => g.gateEgressIp)), provision(docker, launched, ready)]),
            });
        break;
      } catch (error) {
        if (!isNameConflict(error) || attempt >= NAME_RETRIES) throw error;
        log.debug(`name ${claimed} was taken by another launch; trying the next one`);
        await removeCreated();
        created.containers.length = 0;
        created.networks.length = 0;
        delete created.joined;
        delete created.machine;
        removeState(claimed);
        skip.add(claimed);
        claimed = undefined;
      }
    }
    interrupts.check();

    // A VM starts after its gate is ready: its self-test and provisioning run now.
    if (vm && gate) await settleAll([verifyEgressPolicy(bottle, plan, gate.gateEgressIp), provision(bottle, plan, Promise.resolve(gate))]);
    interrupts.check();

    if (options.detach) {
      detached = true;
      process.stdout.write(`${plan.name}\n`);
      log.success(`${plan.name} is running; \`bottle attach ${plan.name}\`, \`bottle exec ${plan.name} -- CMD\`, \`bottle down ${plan.name}\``);
      return 0;
    }
    log.success(`${plan.name} ready`);
    const code = await attachTo(bottle, plan, agentCommand(plan, options.passthrough));
    // Interrupted while attached: report the signal, whatever the child made of it.
    return interrupts.signal ? (signalExitCode(interrupts.signal) ?? 130) : code;
  } finally {
    interrupts.dispose();
    if (!detached) await teardown();
  }
}

/**
 * Build (or reuse) the images. docker: agent, gate, the bottle's layers, and
 * the gVisor probe. smolmachines: the gate, and the bottle's image (agent,
 * then its layers) packed into a cached .smolmachine.
 */
async function prepareImages(prepared: Prepared, plan: Plan, env: Record<string, string | undefined>): Promise<{ plan: Plan; smolmachine?: string }> {
  const { docker, specs } = prepared;
  if (plan.backend === "smolmachines") {
    const [gate, packed] = await Promise.all([
      ensureImage(docker, specs.gate, env),
      prepareSmolmachine({ docker, images: [specs.agent, ...(specs.custom ? [specs.custom] : [])], env }),
    ]);
    const images = { ...plan.images, gate: gate.ref, ...(specs.custom ? { custom: packed.ref } : { agent: packed.ref }) };
    return { plan: { ...plan, images, bottleImage: packed.ref.tag }, smolmachine: packed.path };
  }
  // Planning hashed these specs (the plan's tags) and saw which images are current: neither is done again.
  const planned = (ref: { tag: string; hash: string } | undefined) => (ref ? { ref, present: !prepared.missingImages.includes(ref.tag) } : undefined);
  const [agent, gate] = await Promise.all([
    ensureImage(docker, specs.agent, env, planned(plan.images.agent)),
    ensureImage(docker, specs.gate, env, planned(plan.images.gate)),
  ]);
  const custom: ImageRef | undefined = specs.custom ? (await ensureImage(docker, specs.custom, env, planned(plan.images.custom))).ref : undefined;
  plan = { ...plan, images: { agent: agent.ref, gate: gate.ref, ...(custom ? { custom } : {}) }, bottleImage: (custom ?? agent.ref).tag };
  // gVisor was seen registered at plan time; only now may a probe container run.
  if (plan.runtime === "runsc") plan = { ...plan, runtime: await chooseRuntime(docker, gate.ref.tag) };
  return { plan };
}

function renamePlan(plan: Plan, name: string): Plan {
  const renamed: Plan = {
    ...plan,
    name,
    networks: { internal: `${name}-internal`, egress: `${name}-egress` },
    containers: { bottle: name, gate: `${name}-gate` },
  };
  renamed.labels = bottleLabels(renamed, "bottle", buildInfo.version);
  return renamed;
}

/** Values long enough to be secrets (short literals would make DLP refuse ordinary words); placeholders are not secrets. */
export function secretValues(values: Record<string, string>): string[] {
  return [...new Set(Object.values(values).filter((value) => value.length >= 8 && !isPlaceholder(value)))];
}

export async function attachTo(docker: Docker, plan: Plan, command: string[]): Promise<number> {
  const { uid, gid } = plan.workspace.user;
  return docker.execInteractive(plan.containers.bottle, command, { user: `${uid}:${gid}`, workdir: plan.workspace.containerPath });
}

/** The one hidden prompt (lib/prompt.ts), loaded only when a value is asked. */
async function askSecret(question: string, name: string): Promise<string> {
  const { askHidden } = await import("./prompt.ts");
  return askHidden(question, name);
}

/** Is a launch's owner gone (SIGKILLed) while its objects remain? */
export function isOrphan(name: string, running: boolean): boolean {
  const owner = readOwner(name);
  if (!owner) return true;
  if (owner.detach) return !running;
  return !processAlive(owner.pid);
}
