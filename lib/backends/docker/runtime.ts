import type { Docker, EngineInfo } from "../../docker.ts";
import { log } from "../../log.ts";
import { dockerUnlimitable } from "../engine-limits.ts";
import type { EnginePlan } from "../types.ts";

/** runsc when gVisor is registered with the engine (planning may not start a probe container). */
function registeredRuntime(info: EngineInfo): "runc" | "runsc" {
  return info.runtimes.includes("runsc") ? "runsc" : "runc";
}

/**
 * runsc when gVisor is registered and a probe container actually starts
 * under it (a registered runsc can still fail on some hosts); else runc.
 */
export async function chooseRuntime(docker: Docker, probeImage: string): Promise<"runc" | "runsc"> {
  if (registeredRuntime(await docker.info()) === "runc") return "runc";
  const result = await docker.run(["run", "--rm", "--runtime", "runsc", "--network", "none", "--entrypoint", "true", probeImage], {
    check: false,
    timeoutMs: 30_000,
  });
  if (result.exitCode === 0) return "runsc";
  log.warn("gVisor (runsc) is registered but a probe container failed under it; using runc");
  return "runc";
}

/** The engine as planning sees it: gVisor's registration, and the CPUs and memory bottles share (and which of them it can limit). */
export function planDockerEngine(info: EngineInfo): EnginePlan {
  return {
    runtime: registeredRuntime(info),
    capacity: { cpus: info.ncpu, memory: info.memTotal, of: "the Docker engine", cannot: dockerUnlimitable(info) },
  };
}
