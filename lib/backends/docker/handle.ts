import type { Docker, ExecInContainer } from "../../docker.ts";
import type { BottleHandle } from "../types.ts";

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
  };
}
