import { existsSync, statfsSync } from "node:fs";
import { type ContainerSummary, type Docker, dockerFor } from "../../docker.ts";
import { checkEngineAnswers, type Engine, engineName } from "../../engine.ts";
import type { Check } from "../../doctor-check.ts";
import { errorMessage, isBottleError } from "../../errors.ts";
import { baseImage, ensureImage, type ImageRef } from "../../images.ts";
import { LABELS, type Plan } from "../../plan.ts";
import { dockerUnlimitable } from "../engine-limits.ts";
import { removeCreated } from "../gate.ts";
import { bottleRow, removeBottleObjects } from "../objects.ts";
import type { Backend, PreparedBottle } from "../types.ts";
import { containerHandle } from "./handle.ts";
import { launchContainer } from "./launch.ts";
import { dockerPorts, teardownWithRelays } from "./ports.ts";
import { chooseRuntime, planDockerEngine } from "./runtime.ts";

/**
 * The docker backend: the bottle is a container on a per-bottle
 * `--internal` network whose only other member is its gate; gVisor when a
 * probe container starts under it.
 */

const MIN_FREE_BYTES = 5 * 1024 ** 3;

/** A remote engine's free disk, seen from a container there (the base image, no network). */
async function remoteDisk(docker: Docker, rootDir: string, env: Record<string, string | undefined>): Promise<Check> {
  const out = await docker.run(["run", "--rm", "--network", "none", "--mount", `type=bind,source=${rootDir},target=/engine,readonly`, baseImage(env), "df", "-Pk", "/engine"], { check: false, timeoutMs: 30_000 });
  const available = Number(out.stdout.trim().split("\n").pop()?.split(/\s+/)[3]) * 1024;
  if (out.exitCode !== 0 || !Number.isFinite(available))
    return { name: "disk space", status: "info", detail: `not measured on the remote engine (${out.stderr.trim().split("\n").pop() ?? "no base image there yet"})` };
  return available >= MIN_FREE_BYTES
    ? { name: "disk space", status: "ok", detail: `${gib(available)} free at ${rootDir} on the engine` }
    : { name: "disk space", status: "warn", detail: `${gib(available)} free at ${rootDir} on the engine; images need about 1 GiB`, fix: "free space there, e.g. `docker system prune`" };
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

/** The engine: CLI, daemon (a remote one: within the deadline), gVisor, and the disk its images go to. */
async function doctorRows(docker: Docker, engine: Engine | undefined, env: Record<string, string | undefined>): Promise<Check[]> {
  const checks: Check[] = [];
  const cli = Bun.which(docker.binary);
  if (!cli) {
    checks.push({ name: "docker CLI", status: "fail", detail: "not found on PATH", fix: "install Docker (https://docs.docker.com/engine/install/) or Docker Desktop" });
    return checks;
  }
  checks.push({ name: "docker CLI", status: "ok", detail: cli });
  if (engine?.remote) checks.push({ name: "docker engine", status: "info", detail: `${engineName(engine)} at ${engine.endpoint} (remote: workspaces go in as a branch or a copy)` });
  let rootDir = "/";
  try {
    await checkEngineAnswers(docker.exec, engine);
    const [version, info] = await Promise.all([docker.version(), docker.info()]);
    rootDir = info.dockerRootDir;
    checks.push({ name: "docker daemon", status: "ok", detail: `server ${version.server}, client ${version.client} (${info.operatingSystem})` });
    const shares = `${info.ncpu} CPUs, ${gib(info.memTotal)}; a bottle gets all the CPUs and half the memory unless its resources: says otherwise`;
    const cannot = Object.values(dockerUnlimitable(info));
    checks.push(
      cannot.length
        ? {
            name: "engine resources",
            status: "warn",
            detail: `${shares}; ${cannot.join("; ")}`,
            fix: "bottles run without those limits; rootless Docker: delegate the cgroup controllers (https://docs.docker.com/engine/security/rootless/#limiting-resources)",
          }
        : { name: "engine resources", status: "info", detail: shares },
    );
    checks.push(
      info.runtimes.includes("runsc")
        ? { name: "gVisor (runsc)", status: "info", detail: "registered; used when a probe container starts under it" }
        : { name: "gVisor (runsc)", status: "info", detail: "not registered; bottles use runc" },
    );
  } catch (error) {
    checks.push({ name: "docker daemon", status: "fail", detail: errorMessage(error), fix: isBottleError(error) && error.fix ? error.fix : "start the Docker daemon" });
    return checks;
  }
  if (engine?.remote) {
    checks.push(await remoteDisk(docker, rootDir, env));
    return checks;
  }
  const diskPath = existsSync(rootDir) ? rootDir : "/";
  try {
    const fs = statfsSync(diskPath);
    const free = fs.bavail * fs.bsize;
    checks.push(
      free >= MIN_FREE_BYTES
        ? { name: "disk space", status: "ok", detail: `${gib(free)} free at ${diskPath}` }
        : { name: "disk space", status: "warn", detail: `${gib(free)} free at ${diskPath}; images need about 1 GiB`, fix: "free space, e.g. `docker system prune`" },
    );
  } catch (error) {
    checks.push({ name: "disk space", status: "warn", detail: errorMessage(error) });
  }
  return checks;
}

export const dockerBackend: Backend = {
  name: "docker",
  summary: "containers on a Docker engine (the default)",
  keepsHomes: true,
  remoteEngines: true,

  ports: dockerPorts,

  unavailable: () => undefined,

  doctor: (exec, env, engine) => doctorRows(dockerFor(exec, engine), engine, env),

  planEngine: planDockerEngine,

  async prepare(docker, plan, images, env): Promise<PreparedBottle> {
    const { specs, missing } = images;
    // Planning hashed these specs (the plan's tags) and saw which images are current: neither is done again.
    const planned = (ref: { tag: string; hash: string } | undefined) => (ref ? { ref, present: !missing.includes(ref.tag) } : undefined);
    const [agent, gate] = await Promise.all([
      ensureImage(docker, specs.agent, env, planned(plan.images.agent)),
      ensureImage(docker, specs.gate, env, planned(plan.images.gate)),
    ]);
    const custom: ImageRef | undefined = specs.custom ? (await ensureImage(docker, specs.custom, env, planned(plan.images.custom))).ref : undefined;
    let prepared: Plan = { ...plan, images: { agent: agent.ref, gate: gate.ref, ...(custom ? { custom } : {}) }, bottleImage: (custom ?? agent.ref).tag };
    // gVisor was seen registered at plan time; only now may a probe container run.
    if (prepared.runtime === "runsc") prepared = { ...prepared, runtime: await chooseRuntime(docker, gate.ref.tag) };
    return { plan: prepared, launch: launchContainer };
  },

  // Relays `bottle port` added meanwhile go too.
  teardown: (docker, created) => teardownWithRelays(docker, created),

  standsFor: (container: ContainerSummary) => container.labels[LABELS.role] === "bottle",

  rows: async (_exec, containers) => containers.map((container) => bottleRow(container, container.state)),

  handle: (docker, plan) => containerHandle(docker, plan.containers.bottle),

  async open(docker, _plan, name) {
    const inspect = await docker.containerInspect(name);
    return inspect?.Config.Labels?.[LABELS.role] === "bottle" && inspect.State.Running ? containerHandle(docker, name) : undefined;
  },

  async remove(docker, name) {
    await removeBottleObjects(docker, name);
  },

  leftovers: async () => undefined,
};
