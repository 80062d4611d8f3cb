import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { formatBytes } from "../../bytes.ts";
import { containerArgs, type Docker } from "../../docker.ts";
import { BottleError } from "../../errors.ts";
import { type Exec, signalExitCode } from "../../exec.ts";
import { ensureImage, type ImageRef, type ImageSpec } from "../../images.ts";
import { withLock } from "../../lock.ts";
import { log } from "../../log.ts";
import { cacheDir } from "../../paths.ts";
import { processAlive } from "../../state.ts";
import { cacheKey, commitCacheEntry, isCached, smolmachinePath, smolmachinesDir, STAGING_PREFIX, stagingDirFor } from "./cache.ts";
import { craneImage, PACK_REPOSITORY, REGISTRY_PORT, registryImage } from "./images.ts";
import { packCreateArgv, smolvmBinary } from "./smolvm.ts";

/**
 * Prepare for the smolmachines backend: turn the agent image into a cached
 * `.smolmachine`. `smolvm pack create` only takes registry references, so —
 * without touching the user's Docker daemon settings —
 *
 *   docker build (ensureImage) → cache key from the image ID → hit? done.
 *   docker save → per-digest tarball in a staging dir
 *   ephemeral registry container on a per-session network, -p 127.0.0.1::5000
 *   one-shot crane container on that network: push --insecure /img.tar <registry>:5000/…
 *   smolvm pack create --image localhost:<port>/… (the injectable pack step)
 *   atomic rename into the cache
 *
 * and in a `finally` (errors and Ctrl-C too): remove crane, registry, network,
 * staging dir (tarball, pack stub, partial output).
 */

type Env = Record<string, string | undefined>;

export type PrepareStep = "build" | "save" | "network" | "registry" | "push" | "pack" | "commit";

export const PACK_ROLE = "pack";
export const PACK_LABELS = {
  role: "bottle.role",
  backend: "bottle.backend",
  session: "bottle.pack-session",
  pid: "bottle.pack-pid",
} as const;

export interface RegistryEndpoint {
  /** Always 127.0.0.1: the registry is never published on another interface. */
  host: string;
  port: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
  container: string;
  network: string;
}

export interface PackContext {
  exec: Exec;
  env: Env;
  /** What smolvm pulls: `localhost:<port>/bottle/agent:<key>`. */
  image: string;
  repository: string;
  /** The cache key, also the pushed tag. */
  tag: string;
  registry: RegistryEndpoint;
  /** The stub path for `--output`; the step must leave `<output>.smolmachine`. */
  output: string;
}

/** Produces `<ctx.output>.smolmachine` from the image in the live registry. */
export type PackStep = (ctx: PackContext) => Promise<void>;

/** Time `smolvm pack create` may take (it boots a helper VM and pulls every layer). */
export const PACK_TIMEOUT_MS = 30 * 60 * 1000;

/**
 * The real pack step: `smolvm pack create --image <ref> --output <stub>` from
 * the host (smol-machines/smolvm docs/pack/SKILL.md and
 * docs/pack/scripts/pack-image.sh): it writes the stub and
 * `<stub>.smolmachine`; only the latter is kept (launch uses
 * `machine create --from <it>`), the stub goes with the staging dir.
 */
export const smolvmPack: PackStep = async (ctx) => {
  await ctx.exec.run(packCreateArgv({ binary: smolvmBinary(ctx.env), image: ctx.image, output: ctx.output }), {
    timeoutMs: PACK_TIMEOUT_MS,
    // smolvm floors the host's loopback for guest egress by default; its pull VM
    // must reach the registry on 127.0.0.1 (smolvm-network egress policy,
    // FloorMode::MetadataOnly). Scoped to this one trusted pull, never a bottle VM.
    env: { SMOLVM_ALLOW_HOST_LOOPBACK: "1" },
  });
};

export interface PrepareOptions {
  docker: Docker;
  /** Built in order (e.g. the agent image, then the bottle's extra layers); the last one is packed. */
  images: ImageSpec[];
  env?: Env;
  /** Default `smolvmPack`; tests substitute a step that reads the live registry. */
  pack?: PackStep;
  /** Runs before each step; a throw fails the pipeline there (tests inject failures with it). */
  beforeStep?: (step: PrepareStep) => void | Promise<void>;
  /** Names the per-session docker objects; default `<pid>-<random>`. */
  session?: string;
  /** Wait this long for the registry to listen. */
  registryTimeoutMs?: number;
}

export interface PreparedSmolmachine {
  /** The image that was packed. */
  ref: ImageRef;
  imageId: string;
  key: string;
  /** `<cache dir>/smolmachines/<key>.smolmachine` */
  path: string;
  /** True when the cache already held it (no save / registry / crane / pack ran). */
  cached: boolean;
  /** Whether any docker build ran. */
  built: boolean;
}

export function newPackSession(): string {
  return `${process.pid}-${randomBytes(3).toString("hex")}`;
}

export function packObjectNames(session: string): { network: string; registry: string; crane: string } {
  const base = `bottle-pack-${session}`;
  return { network: base, registry: `${base}-registry`, crane: `${base}-crane` };
}

export function packLabels(session: string, pid = process.pid): Record<string, string> {
  return {
    [PACK_LABELS.role]: PACK_ROLE,
    [PACK_LABELS.backend]: "smolmachines",
    [PACK_LABELS.session]: session,
    [PACK_LABELS.pid]: String(pid),
  };
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)}s`;
}

/**
 * `docker port` output → the host port, insisting on 127.0.0.1: a registry
 * bound anywhere else would serve the image to the network.
 */
export function parsePublishedPort(output: string, container: string): number {
  const lines = output.split("\n").map((line) => line.trim()).filter(Boolean);
  if (lines.length === 0) throw new BottleError(`${container} has no published port`);
  let port: number | undefined;
  for (const line of lines) {
    const at = line.lastIndexOf(":");
    const host = line.slice(0, at);
    const value = Number(line.slice(at + 1));
    if (host !== "127.0.0.1" || !Number.isInteger(value) || value <= 0)
      throw new BottleError(`${container} is published on ${line}, not on 127.0.0.1 only`, {
        fix: "the registry must be reachable from this host only; check the Docker daemon's port-publishing settings",
      });
    port = value;
  }
  return port!;
}

/** Signals during the pipeline: the running step finishes (or dies with its process group), then everything is removed. */
class InterruptGuard {
  signal: NodeJS.Signals | undefined;
  private readonly handlers = new Map<NodeJS.Signals, () => void>();

  constructor() {
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      const handler = () => {
        this.signal ??= signal;
      };
      this.handlers.set(signal, handler);
      process.on(signal, handler);
    }
  }

  check(): void {
    if (this.signal)
      throw new BottleError(`interrupted (${this.signal}); removed the registry, network and tarball`, { exitCode: signalExitCode(this.signal) ?? 130 });
  }

  dispose(): void {
    for (const [signal, handler] of this.handlers) process.off(signal, handler);
  }
}

/** Build the images, then return the cached `.smolmachine` or make it. */
export async function prepareSmolmachine(options: PrepareOptions): Promise<PreparedSmolmachine> {
  const env = options.env ?? process.env;
  const { docker } = options;
  if (options.images.length === 0) throw new Error("prepareSmolmachine needs at least one image spec");

  await options.beforeStep?.("build");
  let ref: ImageRef | undefined;
  let built = false;
  for (const spec of options.images) {
    const result = await ensureImage(docker, spec, env);
    ref = result.ref;
    built ||= result.built;
  }
  const inspected = await docker.imageInspect(ref!.tag);
  if (!inspected) throw new BottleError(`image ${ref!.tag} is missing right after the build`, { fix: "run `bottle doctor`" });
  const key = cacheKey(inspected.id);
  const path = smolmachinePath(key, env);
  const result = { ref: ref!, imageId: inspected.id, key, path, built };
  if (isCached(key, env)) {
    log.success(`using cached ${key}.smolmachine (image ${ref!.tag})`);
    return { ...result, cached: true };
  }
  // One pack per image at a time, across parallel `bottle up`s.
  return withLock(join(cacheDir(env), "locks", `smolmachine-${key}.lock`), async () => {
    if (isCached(key, env)) {
      log.success(`using cached ${key}.smolmachine (packed meanwhile)`);
      return { ...result, cached: true };
    }
    await packPipeline(options, env, ref!, key, path, inspected.size);
    return { ...result, cached: false };
  });
}

async function packPipeline(options: PrepareOptions, env: Env, ref: ImageRef, key: string, path: string, imageSize: number): Promise<void> {
  const { docker } = options;
  const session = options.session ?? newPackSession();
  const names = packObjectNames(session);
  const labels = packLabels(session);
  const staging = stagingDirFor(session, env);
  const created = { containers: [] as string[], network: undefined as string | undefined };
  const guard = new InterruptGuard();
  const step = async (name: PrepareStep) => {
    guard.check();
    await options.beforeStep?.(name);
  };
  const started = performance.now();
  let failure: { error: unknown } | undefined;
  try {
    mkdirSync(staging, { recursive: true, mode: 0o700 });

    await step("save");
    const tarball = join(staging, `${key}.tar`);
    let since = performance.now();
    log.start(`saving ${ref.tag} (${formatBytes(imageSize)}) for smolvm`);
    await docker.save(ref.tag, tarball);
    log.success(`saved ${key}.tar (${formatBytes(statSync(tarball).size)}) in ${seconds(since)}`);

    await step("network");
    created.network = names.network;
    await docker.networkCreate(names.network, { labels });

    await step("registry");
    since = performance.now();
    const image = registryImage(env);
    log.start(`starting a registry on 127.0.0.1 (${image})`);
    created.containers.push(names.registry);
    await docker.runDetached({ name: names.registry, image, labels, network: names.network, publish: [`127.0.0.1::${REGISTRY_PORT}`] });
    await docker.waitForLog(names.registry, "listening on", options.registryTimeoutMs ?? 60_000);
    const port = parsePublishedPort((await docker.run(["port", names.registry, `${REGISTRY_PORT}/tcp`])).stdout, names.registry);
    const registry: RegistryEndpoint = { host: "127.0.0.1", port, url: `http://127.0.0.1:${port}`, container: names.registry, network: names.network };
    log.success(`registry ${names.registry} on 127.0.0.1:${port} in ${seconds(since)}`);

    await step("push");
    since = performance.now();
    const target = `${names.registry}:${REGISTRY_PORT}/${PACK_REPOSITORY}:${key}`;
    log.start(`pushing ${key}.tar with crane`);
    created.containers.push(names.crane);
    const user = typeof process.getuid === "function" && typeof process.getgid === "function" ? `${process.getuid()}:${process.getgid()}` : undefined;
    await docker.run([
      "run",
      ...containerArgs({
        name: names.crane,
        image: craneImage(env),
        labels,
        network: names.network,
        // The tarball stays private to this user: crane reads it as the same uid.
        user,
        env: { HOME: "/tmp" },
        mounts: [{ source: tarball, target: "/img.tar", readonly: true }],
        // Container DNS resolves the registry by name; --insecure forces plain HTTP.
        command: ["push", "--insecure", "/img.tar", target],
      }),
    ]);
    log.success(`pushed ${PACK_REPOSITORY}:${key} in ${seconds(since)}`);

    await step("pack");
    since = performance.now();
    const output = join(staging, key);
    const pullRef = `localhost:${port}/${PACK_REPOSITORY}:${key}`;
    log.start(`packing ${pullRef} with smolvm`);
    await (options.pack ?? smolvmPack)({ exec: docker.exec, env, image: pullRef, repository: PACK_REPOSITORY, tag: key, registry, output });

    await step("commit");
    const size = commitCacheEntry(`${output}.smolmachine`, path);
    log.success(`packed ${key}.smolmachine (${formatBytes(size)}) in ${seconds(since)}; prepare took ${seconds(started)}`);
  } catch (error) {
    failure = { error };
  }
  // Teardown always runs, with the signal handlers still installed so a
  // second Ctrl-C cannot kill bottle half-way through it.
  await teardownPack(docker, created, staging);
  // A child killed by Ctrl-C can be reported before our own handler has run.
  if (failure && !guard.signal) await Bun.sleep(25);
  guard.dispose();
  // Ctrl-C reaches the running step's process group too, and its child may die
  // before our handler runs: decide only after teardown, and report the
  // interrupt rather than the dying child.
  if (guard.signal)
    throw new BottleError(`interrupted (${guard.signal}); removed the registry, network and tarball`, {
      exitCode: signalExitCode(guard.signal) ?? 130,
      cause: failure?.error,
    });
  if (failure) throw failure.error;
}

/** Containers first (crane, then registry), then the network, then the staging dir. Never throws. */
async function teardownPack(docker: Docker, created: { containers: string[]; network?: string }, staging: string): Promise<void> {
  const containers = [...created.containers].reverse();
  try {
    await docker.containerRm(containers);
  } catch (error) {
    log.debug(`removing ${containers.join(", ")}: ${String(error)}`);
  }
  if (created.network) {
    try {
      await docker.networkRm([created.network]);
    } catch (error) {
      log.debug(`removing network ${created.network}: ${String(error)}`);
    }
  }
  try {
    rmSync(staging, { recursive: true, force: true });
  } catch (error) {
    log.warn(`could not remove ${staging}: ${String(error)}`);
  }
  log.debug(`removed ${[...containers, ...(created.network ? [created.network] : []), staging].join(", ")}`);
}

// ---- leftovers (SIGKILL mid-prepare), for `bottle cleanup` ----

export interface PackLeftovers {
  containers: string[];
  networks: string[];
  stagingDirs: string[];
}

function ownerPid(session: string | undefined): number | undefined {
  const pid = Number(session?.split("-")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Pack objects and staging dirs whose process is gone. */
export async function findPackLeftovers(docker: Docker, env: Env = process.env, alive: (pid: number) => boolean = processAlive): Promise<PackLeftovers> {
  const dead = (labels: Record<string, string>) => {
    const pid = Number(labels[PACK_LABELS.pid]);
    return !(Number.isInteger(pid) && pid > 0 && alive(pid));
  };
  const filter = `label=${PACK_LABELS.role}=${PACK_ROLE}`;
  const [containers, networks] = await Promise.all([docker.ps([filter]), docker.networkLs([filter])]);
  let stagingDirs: string[] = [];
  try {
    stagingDirs = readdirSync(smolmachinesDir(env))
      .filter((name) => name.startsWith(STAGING_PREFIX))
      .filter((name) => {
        const pid = ownerPid(name.slice(STAGING_PREFIX.length));
        return pid === undefined || !alive(pid);
      })
      .map((name) => join(smolmachinesDir(env), name));
  } catch {
    // No cache dir yet.
  }
  return {
    containers: containers.filter((c) => dead(c.labels)).map((c) => c.name),
    networks: networks.filter((n) => dead(n.labels)).map((n) => n.name),
    stagingDirs,
  };
}

export async function removePackLeftovers(docker: Docker, leftovers: PackLeftovers): Promise<void> {
  await docker.containerRm(leftovers.containers);
  await docker.networkRm(leftovers.networks);
  for (const dir of leftovers.stagingDirs) rmSync(dir, { recursive: true, force: true });
}
