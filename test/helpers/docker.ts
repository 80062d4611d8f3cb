import { describe } from "bun:test";

/**
 * Integration tests use the real Docker engine. Without one they skip with
 * a reason — unless BOTTLE_REQUIRE_DOCKER=1 (CI), where a missing engine fails.
 */

export const BASE_IMAGE = process.env.BOTTLE_BASE_IMAGE || "bottle-local/debian:trixie-slim";

function probeDocker(): string | undefined {
  try {
    const out = Bun.spawnSync(["docker", "info", "--format", "{{.ServerVersion}}"], { stdout: "pipe", stderr: "pipe" });
    if (out.exitCode !== 0) return `docker daemon not reachable: ${out.stderr.toString().trim().split("\n").pop()}`;
  } catch {
    return "docker CLI not installed";
  }
  const base = Bun.spawnSync(["docker", "image", "inspect", BASE_IMAGE], { stdout: "pipe", stderr: "pipe" });
  if (base.exitCode !== 0) return `base image ${BASE_IMAGE} missing (build it as .ci/run does)`;
  return undefined;
}

const missing = probeDocker();
if (missing && process.env.BOTTLE_REQUIRE_DOCKER === "1") {
  throw new Error(`BOTTLE_REQUIRE_DOCKER=1 but ${missing}`);
}
if (missing) console.warn(`skipping Docker integration tests: ${missing}`);

/** `describe` that runs only with a Docker engine and the base image. */
export const describeDocker = missing ? describe.skip : describe;

/** Run docker synchronously and return trimmed stdout (throws on failure). */
export function docker(...args: string[]): string {
  const out = Bun.spawnSync(["docker", ...args], { stdout: "pipe", stderr: "pipe" });
  if (out.exitCode !== 0) throw new Error(`docker ${args.join(" ")} failed: ${out.stderr.toString()}`);
  return out.stdout.toString().trim();
}

export function dockerOk(...args: string[]): boolean {
  return Bun.spawnSync(["docker", ...args], { stdout: "pipe", stderr: "pipe" }).exitCode === 0;
}

/** Names of containers and networks carrying a label (e.g. `bottle.agent=x`). */
export function objectsWithLabel(label: string): { containers: string[]; networks: string[] } {
  const list = (args: string[]) => docker(...args).split("\n").filter(Boolean);
  return {
    containers: list(["ps", "-a", "--filter", `label=${label}`, "--format", "{{.Names}}"]),
    networks: list(["network", "ls", "--filter", `label=${label}`, "--format", "{{.Name}}"]),
  };
}

function volumesWithLabel(label: string): string[] {
  return docker("volume", "ls", "--filter", `label=${label}`, "--format", "{{.Name}}").split("\n").filter(Boolean);
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

/** Run a host command synchronously; trimmed stdout, or an error naming it with its stderr. */
export function sh(args: string[], cwd?: string): string {
  const out = Bun.spawnSync(args, { cwd, stdout: "pipe", stderr: "pipe" });
  if (out.exitCode !== 0) throw new Error(`${args.join(" ")} failed: ${out.stderr.toString()}`);
  return out.stdout.toString().trim();
}

/**
 * A test-only image from an inline Dockerfile on the base image, built once
 * per content (Dockerfile + base image id) and tagged `<name>:<hash>`.
 */
export function testImage(name: string, dockerfile: string): string {
  const baseId = docker("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE);
  const hash = new Bun.CryptoHasher("sha256").update(dockerfile + baseId).digest("hex").slice(0, 16);
  const tag = `${name}:${hash}`;
  if (dockerOk("image", "inspect", tag)) return tag;
  const out = Bun.spawnSync(["docker", "build", "--quiet", "--build-arg", `BASE_IMAGE=${BASE_IMAGE}`, "--tag", tag, "-"], {
    stdin: new Blob([dockerfile]),
    stdout: "pipe",
    stderr: "pipe",
  });
  if (out.exitCode !== 0) throw new Error(`building ${tag} failed: ${out.stderr.toString()}`);
  return tag;
}

/** After a test: remove every container, then every network, carrying any of these labels. */
export function removeLabelled(...labels: string[]): void {
  const found = labels.map(objectsWithLabel);
  const containers = found.flatMap((f) => f.containers);
  if (containers.length) Bun.spawnSync(["docker", "rm", "-f", ...containers], { stdout: "pipe", stderr: "pipe" });
  for (const network of new Set(found.flatMap((f) => f.networks))) Bun.spawnSync(["docker", "network", "rm", network], { stdout: "pipe", stderr: "pipe" });
  // Kept homes (an agent's, by its bottle.agent label) once nothing mounts them.
  const volumes = [...new Set(labels.flatMap(volumesWithLabel))];
  if (volumes.length) Bun.spawnSync(["docker", "volume", "rm", ...volumes], { stdout: "pipe", stderr: "pipe" });
}

/** Connects a container to a network under an alias (a made-up host name); already on it counts as joined. */
export function joinNetwork(container: string, network: string, alias: string): void {
  const joined = Bun.spawnSync(["docker", "network", "connect", "--alias", alias, network, container], { stdout: "pipe", stderr: "pipe" });
  // Already on it (a network of that name left from an earlier launch): joined all the same.
  if (joined.exitCode !== 0 && !joined.stderr.toString().includes("already exists")) throw new Error(`joining ${network}: ${joined.stderr.toString()}`);
}

/** Waits until the network exists (a launch makes it), then joins it under the alias. */
export async function joinWhenCreated(container: string, network: string, alias: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!dockerOk("network", "inspect", network)) {
    if (Date.now() > deadline) throw new Error(`${network} was never created`);
    await Bun.sleep(50);
  }
  joinNetwork(container, network, alias);
}
