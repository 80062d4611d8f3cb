import type { EngineInfo } from "../docker.ts";
import type { Unlimitable } from "../resources-schema.ts";

/**
 * The Docker engine both backends start a gate on, and the docker backend
 * its bottles: which limits it can set, as `docker info` says. Rootless
 * Docker whose cgroup controllers are not delegated cannot set some, and
 * `--cpus` there fails a container's start (the others are dropped with a
 * warning): a limit it cannot set is left off, and said. Each with why.
 */
export function dockerUnlimitable(info: EngineInfo): Unlimitable {
  const cannot: Unlimitable = {};
  const engine = "the Docker engine";
  if (!info.limits.cpus) cannot.cpus = `${engine} cannot limit CPUs (docker info: CpuCfsQuota false; rootless Docker needs the cpu controller delegated)`;
  else if (info.ncpu <= 0) cannot.cpus = `${engine} does not say how many CPUs it has`;
  if (!info.limits.memory) cannot.memory = `${engine} cannot limit memory (docker info: MemoryLimit false)`;
  else if (info.memTotal <= 0) cannot.memory = `${engine} does not say how much memory it has`;
  if (!info.limits.swap) cannot.swap = `${engine} cannot limit swap (docker info: SwapLimit false), so the bottle may swap past its memory`;
  if (!info.limits.pids) cannot.pids = `${engine} cannot limit processes (docker info: PidsLimit false)`;
  return cannot;
}
