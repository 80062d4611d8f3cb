import { rmSync } from "node:fs";
import type { Docker } from "../docker.ts";
import { bottleStateDir, stateDir } from "../paths.ts";
import { LABELS, type Plan } from "../plan.ts";
import type { ContainerSummary } from "../docker.ts";
import type { BottleRow, OpenPort } from "./types.ts";

/**
 * Every bottle's docker objects carry its labels; ls, down, cleanup and
 * name claiming find them by label. Both backends have docker objects (a VM
 * bottle's gate and networks), so this is shared by both.
 */

export function bottleLabels(plan: Pick<Plan, "name" | "agent" | "backend" | "workspace">, role: string, version: string): Record<string, string> {
  return {
    [LABELS.name]: plan.name,
    [LABELS.agent]: plan.agent.name,
    [LABELS.version]: version,
    [LABELS.backend]: plan.backend,
    [LABELS.role]: role,
    [LABELS.workspace]: plan.workspace.hostPath ?? plan.workspace.mode,
    [LABELS.state]: stateDir(),
  };
}

/** Is a docker error a name conflict (another launch took the name first)? */
export function isNameConflict(error: unknown): boolean {
  return /already in use|already exists|Conflict/i.test(error instanceof Error ? error.message : String(error));
}

type Scope = { name?: string; scope: "own" | "all" };

function bottleFilters(options: Scope): string[] {
  const filters = [options.name ? `label=${LABELS.name}=${options.name}` : `label=${LABELS.name}`];
  if (options.scope === "own") filters.push(`label=${LABELS.state}=${stateDir()}`);
  return filters;
}

/**
 * Everything docker holds for bottles, by label. `own` (ls, down, cleanup)
 * keeps to bottles launched with this state dir, so another user's or another
 * sandbox's bottles on a shared daemon are never listed or removed; `all`
 * (name claiming) sees every bottle, since container names are global.
 */
export async function listBottleObjects(docker: Docker, options: Scope) {
  const filters = bottleFilters(options);
  const [containers, networks] = await Promise.all([docker.ps(filters), docker.networkLs(filters)]);
  return { containers, networks };
}

/** Only the containers (ls, name claiming): one docker call fewer per launch. */
export async function listBottleContainers(docker: Docker, options: Scope) {
  return docker.ps(bottleFilters(options));
}

/**
 * Remove a bottle's network. Docker refuses while a container is still on
 * it; a bottle's network is the bottle's alone, so whatever someone else
 * connected to it (a test's server, a container connected by hand) is
 * disconnected first rather than leaving the network behind.
 */
export async function removeNetwork(docker: Docker, network: string): Promise<void> {
  const first = await docker.networkRm([network]);
  if (first.removed || !/active endpoints/i.test(first.stderr)) return;
  const inspect = await docker.networkInspect(network);
  await Promise.all(Object.values(inspect?.Containers ?? {}).map((container) => docker.networkDisconnect(network, container.Name).catch(() => undefined)));
  await docker.networkRm([network]);
}

/** Remove every docker object (bottle container first) and the state dir of the named bottle. */
export async function removeBottleObjects(docker: Docker, name: string): Promise<{ containers: number; networks: number }> {
  const { containers, networks } = await listBottleObjects(docker, { name, scope: "own" });
  const bottles = containers.filter((c) => c.labels[LABELS.role] === "bottle").map((c) => c.name);
  const others = containers.filter((c) => c.labels[LABELS.role] !== "bottle").map((c) => c.name);
  await docker.containerRm([...bottles, ...others]);
  // One `network rm` each, concurrently (the CLI removes a list one by one).
  await Promise.all(networks.map((network) => removeNetwork(docker, network.name)));
  rmSync(bottleStateDir(name), { recursive: true, force: true });
  return { containers: containers.length, networks: networks.length };
}

function age(createdAt: string): string {
  const seconds = Math.max(0, (Date.now() - Date.parse(createdAt.replace(/ [A-Z]+$/, ""))) / 1000);
  if (!Number.isFinite(seconds)) return "?";
  if (seconds < 60) return `${Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

/** The `bottle ls` row of the container that stands for a bottle, with the status its backend tells. */
export function bottleRow(container: ContainerSummary, status: string): BottleRow {
  return {
    name: container.labels[LABELS.name] ?? container.name,
    agent: container.labels[LABELS.agent] ?? "?",
    backend: container.labels[LABELS.backend] ?? "docker",
    status,
    session: "-",
    createdAt: container.createdAt,
    age: age(container.createdAt),
    workspace: container.labels[LABELS.workspace] ?? "",
    ports: [],
  };
}

/** A bottle's forwarded ports, from its running relays among `containers` (labelled with the port they forward to). */
export function forwardedPorts(containers: ContainerSummary[], bottle: string): OpenPort[] {
  return containers
    .filter((container) => container.labels[LABELS.name] === bottle && container.labels[LABELS.role] === "port" && container.state === "running")
    .flatMap((container) => {
      const port = Number(container.labels[LABELS.port]);
      return container.ports.filter((published) => published.containerPort === port).map((published) => ({ port, hostIp: published.hostIp, hostPort: published.hostPort }));
    })
    .sort((a, b) => a.port - b.port);
}
