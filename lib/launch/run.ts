import { join } from "node:path";
import { bottleLabels, isNameConflict, listBottleContainers } from "../backends/objects.ts";
import type { BottleHandle, Created, GateAddresses } from "../backends/types.ts";
import { summarizeDenials } from "../audit.ts";
import { signalExitCode } from "../exec.ts";
import { isPlaceholder, resolveCustody, SETUP_TOKEN_FIX, sharedWithBottle } from "../gates/custody/index.ts";
import { readGitRemotes } from "../gates/git/host.ts";
import { sshPublicKeys } from "../gates/ssh/config.ts";
import { readSshHosts } from "../gates/ssh/host.ts";
import { syncGateLogs } from "../backends/gate.ts";
import { rememberEngine } from "../engine.ts";
import { bringBackOnTeardown } from "../git/bottle-branch.ts";
import { claimBranch, releaseBranch } from "../git/branch-workspace.ts";
import { objectsBundle } from "../git/objects-bundle.ts";
import { prepareWorkspaceGit, removeWorkspaceGitMountPoints } from "../git/workspace-git.ts";
import { log } from "../log.ts";
import { mcpSecrets } from "../claude-setup/index.ts";
import { resolveEnvValues } from "../manifest/index.ts";
import { userSkillsDir } from "../paths.ts";
import { LABELS, type Plan } from "../plan.ts";
import { provisionBottle } from "../provision.ts";
import { reportOutOfMemory } from "../resources.ts";
import { verifyEgressPolicy } from "../selftest.ts";
import { agentCommand, DETACH_KEY, runCommand, sessionState, sessionWhat, startAttached, startSession } from "../session.ts";
import { checkResumable } from "../conversations.ts";
import { touchHome } from "../homes.ts";
import { auditLogPath, claimName, markDetached, removeState, writeState } from "../state.ts";
import { settleAll } from "../settle.ts";
import { buildInfo } from "../version.ts";
import { saveCopiedWork } from "../workspace.ts";
import { Interrupts } from "./interrupts.ts";
import { bottleEnv, type Planned, type UpOptions } from "./plan.ts";
import { checkLaunchValues } from "./values.ts";

/**
 * Running a planned launch, step by step: the values it needs (asked or
 * read before anything is created) → images (the backend prepares them) →
 * a name claimed, the bottle and its gate launched by the backend, with
 * provisioning and the egress self-test while the gate comes up → attach
 * (or detach) → teardown, also on errors and signals.
 */

const NAME_RETRIES = 5;

/** Values long enough to be secrets (short literals would make DLP refuse ordinary words); placeholders are not secrets. */
export function secretValues(values: string[]): string[] {
  return [...new Set(values.filter((value) => value.length >= 8 && !isPlaceholder(value)))];
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

function skillDirs(skills: string[], env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(skills.map((skill) => [skill, join(userSkillsDir(env), skill)]));
}

/** The one hidden prompt (lib/prompt.ts), loaded only when a value is asked. */
async function askSecret(question: string, name: string): Promise<string> {
  const { askHidden } = await import("../prompt.ts");
  return askHidden(question, name);
}

/** Launch the planned bottle, attach (or detach), and tear down. Returns the exit code. */
export async function runUp(planned: Planned, options: UpOptions): Promise<number> {
  const { docker, resolved, backend } = planned;
  const interactive = docker.exec.isTerminal();

  // The values first: every key missing at once, then the questions asked, before anything exists.
  checkLaunchValues(planned, options.env, interactive);
  const env = bottleEnv(resolved, options.env);
  const envValues = await resolveEnvValues({ ...resolved.bottle, env }, { hostEnv: options.env, interactive, ask: askSecret });
  // Credentials for the gate only; the bottle gets placeholders.
  const custody = await resolveCustody(resolved.bottle, planned.plan.custody, { hostEnv: options.env, interactive, ask: askSecret });
  if (!planned.plan.custody?.claude && (options.detach || planned.plan.command[0] === "claude"))
    log.warn(`no credential for Claude Code, so it will not be logged in; to give it one: ${SETUP_TOKEN_FIX}`);
  for (const name of sharedWithBottle(resolved.bottle, env, options.env))
    log.warn(`env.${name} copies a host variable the gate holds as a credential: the bottle gets its real value (remove it from env; the gate adds it)`);
  const gitRemotes = readGitRemotes(resolved);
  // A remote engine cannot mount the repository's objects: they travel as a bundle.
  const repo = planned.plan.workspace.git?.repo;
  const objects = planned.plan.engine?.remote && repo ? await objectsBundle(docker.exec, repo) : undefined;
  const sshKeys = readSshHosts(resolved);

  // Images: a build is the slow step and creates nothing to tear down.
  const prepared = await backend.prepare(docker, planned.plan, planned.images, options.env);
  let plan = prepared.plan;

  const created: Created = { networks: [], containers: [] };
  // Known once the backend hands it to provisioning; teardown saves work through it.
  let bottle: BottleHandle | undefined;
  let claimed: string | undefined;
  let detached = false;
  const teardown = async () => {
    // Asked while the work is saved: the kernel's count goes with the bottle.
    const outOfMemory = bottle ? reportOutOfMemory(bottle, plan, options.env) : undefined;
    if (bottle && plan.workspace.mode === "copy" && !plan.workspace.git) await saveCopiedWork(bottle, plan).catch(() => undefined);
    if (bottle && plan.workspace.git) await bringBackOnTeardown(bottle, docker.exec, plan);
    await outOfMemory;
    await releaseBranch(docker.exec, plan);
    if (created.containers.includes(plan.containers.gate)) await syncGateLogs(docker, plan);
    await backend.teardown(docker, created, options.env);
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
    // Provisioning and the launch self-test: the backend runs them once the bottle runs (a container: while its gate starts).
    const ready = (handle: BottleHandle, gate: Promise<GateAddresses>) => {
      bottle = handle;
      const launched = plan;
      return settleAll([
        verifyEgressPolicy(handle, launched, gate.then((addresses) => addresses.gateEgressIp)),
        provisionBottle(handle, launched, gate, {
          envValues: { ...envValues, ...custody.env },
          prompt: resolved.agent.prompt,
          skillDirs: skillDirs(planned.claudeSetup.skills, options.env),
          claudeSetup: planned.claudeSetup,
          sshPublicKeys: sshPublicKeys(sshKeys),
          ...(planned.workspaceRepo ? { workspaceRepo: planned.workspaceRepo } : {}),
          ...(objects ? { objects } : {}),
        }),
      ]);
    };
    // Claim a name; when docker says another launch took it first, take the next one.
    const skip = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      // The plan's view of taken names serves the first attempt; a lost race re-lists.
      const taken =
        attempt === 1 ? new Set(planned.taken) : new Set((await listBottleContainers(docker, { scope: "all" })).map((c) => c.labels[LABELS.name] ?? ""));
      claimed = claimName(planned.nameBase, taken, skip);
      plan = await claimBranch(docker.exec, renamePlan(plan, claimed));
      if (plan.engine) rememberEngine(plan.engine);
      writeState(plan, { pid: process.pid, detach: options.detach, startedAt: plan.createdAt });
      if (plan.workspace.git) prepareWorkspaceGit(plan.name, plan.workspace.git);
      if (plan.home) touchHome(plan.home.volume);
      interrupts.check();
      try {
        await prepared.launch(docker, plan, {
          version: buildInfo.version,
          // The bottle's env values and its stdio MCP servers' (their env enters the bottle): DLP keeps them from leaving.
          secrets: secretValues([...Object.values(envValues), ...mcpSecrets(planned.claudeSetup)]),
          custody: custody.credentials,
          git: gitRemotes,
          ssh: sshKeys,
          created,
          ready,
        });
        break;
      } catch (error) {
        if (!isNameConflict(error) || attempt >= NAME_RETRIES) throw error;
        log.debug(`name ${claimed} was taken by another launch; trying the next one`);
        await backend.teardown(docker, created, options.env);
        created.containers.length = 0;
        created.networks.length = 0;
        delete created.joined;
        delete created.machine;
        delete created.name;
        bottle = undefined;
        await releaseBranch(docker.exec, plan);
        removeState(claimed);
        skip.add(claimed);
        claimed = undefined;
      }
    }
    interrupts.check();

    const launched = bottle!;
    const claude = plan.claude ?? {};
    if (typeof claude.resume === "string") await checkResumable(launched, plan, claude.resume);
    if (options.detach) {
      await startSession(launched, plan, claude);
      detached = true;
      process.stdout.write(`${plan.name}\n`);
      log.success(`${plan.name} is running ${sessionWhat(plan)}; \`bottle attach ${plan.name}\`, \`bottle exec ${plan.name} -- CMD\`, \`bottle down ${plan.name}\``);
      return 0;
    }
    log.success(`${plan.name} ready`);
    if (!plan.interactive) {
      const code = await runCommand(launched, plan, plan.command.length ? plan.command : agentCommand(plan, [], claude).slice(1));
      // Interrupted meanwhile: report the signal, whatever the child made of it.
      return interrupts.signal ? (signalExitCode(interrupts.signal) ?? 130) : code;
    }
    log.info(`${DETACH_KEY} detaches; Claude Code goes on (\`bottle attach ${plan.name}\` to come back)`);
    const code = await startAttached(launched, plan, claude);
    const state = await sessionState(launched, plan);
    // The terminal detached (Ctrl-], or it closed) with Claude Code still running: the bottle stays, as if started detached.
    if ((state.state === "detached" || state.state === "attached") && interrupts.signal !== "SIGTERM" && interrupts.signal !== "SIGINT") {
      detached = true;
      markDetached(plan.name);
      log.success(`${plan.name} keeps running Claude Code: \`bottle attach ${plan.name}\` to come back, \`bottle down ${plan.name}\` to stop it`);
      return 0;
    }
    if (interrupts.signal) return signalExitCode(interrupts.signal) ?? 130;
    return state.state === "exited" && state.exitCode !== undefined ? state.exitCode : code;
  } finally {
    interrupts.dispose();
    if (!detached) await teardown();
  }
}
