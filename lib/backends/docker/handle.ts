import type { Docker, ExecInContainer } from "../../docker.ts";
import { oomKillCount } from "../../resources.ts";
import type { BottleHandle } from "../types.ts";

/**
 * The container's memory cgroup counts every process the kernel killed in it
 * for lack of memory: `oom_kill` in memory.events (cgroup v2) or
 * memory.oom_control (v1). Docker's own State.OOMKilled is set only when the
 * container's first process dies so, never for a child of an exec.
 */
export const CGROUP_OOM_FILES = ["/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"];

/** A bottle container, reached through the docker CLI. */
export function containerHandle(docker: Docker, container: string): BottleHandle {
  return {
    name: container,
    exec: (command: string[], options?: ExecInContainer) => docker.execIn(container, command, options),
    interactive: (command: string[], options?: ExecInContainer) => docker.execInteractive(container, command, options),
    copyIn: (directory: string, archive: Uint8Array) => docker.copyArchiveIn(container, directory, archive),
    copyOut: (path: string, destination: string) => docker.cp(`${container}:${path}`, destination),
    logs: (follow: boolean) => docker.logs(container, follow),
    // docker top needs the pid column; without it, and with spacing made single, each line reads `COMMAND ARGS`.
    processes: async () => (await docker.top(container, ["-eo", "pid,comm,args"])).map((line) => line.trim().replace(/^\d+\s+/, "").replace(/\s+/g, " ")),
    async outOfMemoryKills() {
      // One of the two files exists: cat fails for the other, and prints the one.
      const read = await docker.execIn(container, ["cat", ...CGROUP_OOM_FILES], { check: false, timeoutMs: 10_000 }).catch(() => undefined);
      const counted = read ? oomKillCount(read.stdout) : undefined;
      if (counted !== undefined) return counted;
      // Not running (no exec): whether it stopped for lack of memory.
      const inspect = await docker.containerInspect(container);
      return inspect?.State.OOMKilled === undefined ? undefined : inspect.State.OOMKilled ? 1 : 0;
    },
  };
}
