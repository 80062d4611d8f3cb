import { existsSync, statfsSync } from "node:fs";
import { type ContainerSummary, Docker } from "../../docker.ts";
import type { Check } from "../../doctor-check.ts";
import { errorMessage, isBottleError } from "../../errors.ts";
import { ensureImage, type ImageRef } from "../../images.ts";
import { LABELS, type Plan } from "../../plan.ts";
import { bottleRow, removeBottleObjects } from "../objects.ts";
import type { Backend, PreparedBottle } from "../types.ts";
import { containerHandle } from "./handle.ts";
import { launchContainer } from "./launch.ts";
import { dockerPorts, teardownWithRelays } from "./ports.ts";
import { chooseRuntime } from "./runtime.ts";

/**
 * The docker backend: the bottle is a container on a per-bottle
 * `--internal` network whose only other member is its gate; gVisor when a
 * probe container starts under it.
 */

const MIN_FREE_BYTES = 5 * 1024 ** 3;

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

/** The engine: CLI, daemon, gVisor, and the disk its images go to. */
async function doctorRows(docker: Docker): Promise<Check[]> {
  const checks: Check[] = [];
  const cli = Bun.which(docker.binary);
  if (!cli) {
    checks.push({ name: "docker CLI", status: "fail", detail: "not found on PATH", fix: "install Docker (https://docs.docker.com/engine/install/) or Docker Desktop" });
    return checks;
  }
  checks.push({ name: "docker CLI", status: "ok", detail: cli });
  let rootDir = "/";
  try {
    const [version, info] = await Promise.all([docker.version(), docker.info()]);
    rootDir = info.dockerRootDir;
    checks.push({ name: "docker daemon", status: "ok", detail: `server ${version.server}, client ${version.client} (${info.operatingSystem})` });
    checks.push(
      info.runtimes.includes("runsc")
        ? { name: "gVisor (runsc)", status: "info", detail: "registered; used when a probe container starts under it" }
        : { name: "gVisor (runsc)", status: "info", detail: "not registered; bottles use runc" },
    );
  } catch (error) {
    checks.push({ name: "docker daemon", status: "fail", detail: errorMessage(error), fix: isBottleError(error) && error.fix ? error.fix : "start the Docker daemon" });
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

  ports: dockerPorts,

  unavailable: () => undefined,

  doctor: (exec) => doctorRows(new Docker(exec)),

  planRuntime: (docker) => chooseRuntime(docker),

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
