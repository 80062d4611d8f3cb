import { createServer, isIP } from "node:net";
import type { ContainerSummary, Docker } from "../docker.ts";
import { BottleError } from "../errors.ts";
import { LABELS } from "../plan.ts";

/**
 * The host's side of a forwarded port, checked before anything is created:
 * can this machine still bind it, and if not, who holds it — a bottle's
 * relay, another container publishing it, or some other process. And the
 * address ports are published on (`--bind`): loopback unless asked.
 */

export const DEFAULT_BIND = "127.0.0.1";

/** What a probe found: bound and released (free), in use (taken), or not knowable here (a low port for a user who may not bind it; Docker's proxy can). */
export type HostPortState = "free" | "taken" | "unknown";

export type HostPortProbe = (hostIp: string, port: number) => Promise<HostPortState>;

/** Binds `hostIp:port` and lets go at once. An address this machine does not have is an error. */
export const probeHostPort: HostPortProbe = (hostIp, port) =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE") resolve("taken");
      else if (error.code === "EACCES") resolve("unknown");
      else if (error.code === "EADDRNOTAVAIL")
        reject(new BottleError(`${hostIp} is not an address of this machine`, { fix: "pass --bind an address this machine has (see `ip addr`), or leave --bind out for 127.0.0.1" }));
      else reject(new BottleError(`cannot check the host port ${hostAddress(hostIp, port)}: ${error.message}`, { fix: "pass another host port (HOSTPORT:PORT)" }));
    });
    server.listen({ host: hostIp, port, exclusive: true }, () => server.close(() => resolve("free")));
  });

/** `127.0.0.1:3000`, `[::1]:3000`. */
export function hostAddress(hostIp: string, port: number | undefined): string {
  return `${hostIp.includes(":") ? `[${hostIp}]` : hostIp}:${port ?? "(a free port)"}`;
}

export const OTHER_PROCESS = "another process (see `ss -ltnp`)";

/** Who a container publishing a port is, for a message. */
function holder(container: ContainerSummary): string {
  const bottle = container.labels[LABELS.name];
  const port = container.labels[LABELS.port];
  if (bottle && port && container.labels[LABELS.role] === "port") return `${bottle}'s port ${port} (\`bottle port ${bottle} --rm ${port}\` frees it)`;
  return `the container ${container.name}`;
}

/**
 * Containers publishing any of these host ports (one docker call; filters
 * of one key are alternatives), by host port. A port taken by no container
 * is held by another process.
 */
export async function portHolders(docker: Docker, hostPorts: number[]): Promise<Map<number, string>> {
  const holders = new Map<number, string>();
  if (hostPorts.length === 0) return holders;
  const containers = await docker.ps(hostPorts.map((port) => `publish=${port}`), false);
  for (const container of containers)
    for (const published of container.ports) if (hostPorts.includes(published.hostPort) && !holders.has(published.hostPort)) holders.set(published.hostPort, holder(container));
  return holders;
}

/** What is wrong with a `--bind` address, or undefined. */
export function bindProblem(address: string): string | undefined {
  if (isIP(address)) return undefined;
  return `--bind takes an IP address of this machine (like 127.0.0.1 or 0.0.0.0), got "${address}"`;
}

export function isLoopback(address: string): boolean {
  return /^127\./.test(address) || address === "::1";
}

/** Said whenever ports are published beyond loopback: who else can now connect. */
export function exposureWarning(bottle: string, hostIp: string, ports: number[]): string | undefined {
  if (isLoopback(hostIp)) return undefined;
  const where = hostIp === "0.0.0.0" || hostIp === "::" ? "every address of this machine" : hostIp;
  return `${bottle}'s port${ports.length === 1 ? "" : "s"} ${ports.join(", ")} will be published on ${where}: anyone who can reach this machine there can connect to the bottle's server (without --bind, only this machine can)`;
}
