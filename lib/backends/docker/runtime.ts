import type { Docker } from "../../docker.ts";
import { log } from "../../log.ts";

/**
 * runsc when gVisor is registered and, given `probeImage`, a probe container
 * actually starts under it (a registered runsc can still fail on some
 * hosts); else runc. Planning asks without a probe (it may not start containers).
 */
export async function chooseRuntime(docker: Docker, probeImage?: string): Promise<"runc" | "runsc"> {
  const info = await docker.info();
  if (!info.runtimes.includes("runsc")) return "runc";
  if (probeImage === undefined) return "runsc";
  const result = await docker.run(["run", "--rm", "--runtime", "runsc", "--network", "none", "--entrypoint", "true", probeImage], {
    check: false,
    timeoutMs: 30_000,
  });
  if (result.exitCode === 0) return "runsc";
  log.warn("gVisor (runsc) is registered but a probe container failed under it; using runc");
  return "runc";
}
