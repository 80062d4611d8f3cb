import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { assets } from "./assets.ts";
import { collectCertificates, extraCaBundlesFromEnv } from "./ca-certs.ts";
import type { Docker, ImageInfo } from "./docker.ts";
import { BottleError } from "./errors.ts";
import { withLock } from "./lock.ts";
import { log } from "./log.ts";
import { cacheDir } from "./paths.ts";

/**
 * Content-addressed images: the tag is a hash of everything that goes into
 * the build (Dockerfile, context files, build args), so an unchanged bottle
 * never runs `docker build` again. The base image's id is a label instead of
 * a hash input: planning then asks for the base and the tags in one round,
 * and an image built on another base counts as missing.
 */

export const DEFAULT_BASE_IMAGE =
  "debian:trixie-slim@sha256:a29215f6a35e51e22adffa17f89e9d2ef06214e64a2bad10d765c46aea49f11f";
export const CLAUDE_CODE_VERSION = "2.1.332";
export const HASH_LABEL = "bottle.hash";
/** The base the image was built on (`ref@id`, see plannedImages); images built on it inherit it. */
export const BASE_LABEL = "bottle.base";
/** On a custom image: the agent image it was built FROM (image cleanup keeps that one while this one stays). */
export const FROM_LABEL = "bottle.from";

const IMAGE_KINDS = ["agent", "gate", "custom", "plumbing"] as const;
export type ImageKind = (typeof IMAGE_KINDS)[number];

export interface ImageSpec {
  kind: ImageKind;
  dockerfile: string;
  /** Context files by relative path. */
  files: Record<string, string>;
  buildArgs: Record<string, string>;
  /** Extra inputs that change the image without being files (e.g. the agent image a custom one builds on). */
  inputs: string[];
  /** The base as found locally (plannedImages): recorded in BASE_LABEL, checked rather than hashed. */
  base?: string;
  /** A user context dir (custom layers), hashed by path, size and mtime. */
  contextDir?: string;
  /** Labels on the built image that are not hash inputs. */
  labels?: Record<string, string>;
}

export interface ImageRef {
  kind: ImageKind;
  tag: string;
  hash: string;
}

type Env = Record<string, string | undefined>;

export function baseImage(env: Env = process.env): string {
  return env.BOTTLE_BASE_IMAGE || DEFAULT_BASE_IMAGE;
}

export function npmRegistry(env: Env = process.env): string {
  return env.BOTTLE_NPM_REGISTRY || env.npm_config_registry || "https://registry.npmjs.org";
}

function listContext(dir: string): string[] {
  const entries: string[] = [];
  const walk = (current: string) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      if (entry.name === ".git" || entry.name === "node_modules") continue;
      const full = join(current, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entries.length < 5000) {
        const stat = statSync(full);
        entries.push(`${relative(dir, full)}:${stat.size}:${stat.mtimeMs}`);
      }
    }
  };
  walk(dir);
  return entries.sort();
}

export function imageHash(spec: ImageSpec): string {
  // One update over the joined parts (the same digest as one per part):
  // thousands of small updates (a CA bundle split into certificates) cost ~12 ms.
  const parts: string[] = [];
  const feed = (part: string) => parts.push(`${part.length}:${part}`);
  feed(spec.kind);
  feed(spec.dockerfile);
  for (const name of Object.keys(spec.files).sort()) {
    feed(name);
    feed(spec.files[name]!);
  }
  for (const key of Object.keys(spec.buildArgs).sort()) feed(`${key}=${spec.buildArgs[key]}`);
  for (const input of spec.inputs) feed(input);
  if (spec.contextDir) for (const entry of listContext(spec.contextDir)) feed(entry);
  return createHash("sha256").update(parts.join("")).digest("hex");
}

/** Tags carry the hash's first 16 hex digits. */
const TAG_HASH_LENGTH = 16;

export function imageRef(spec: ImageSpec): ImageRef {
  const hash = imageHash(spec);
  return { kind: spec.kind, hash, tag: `bottle-${spec.kind}:${hash.slice(0, TAG_HASH_LENGTH)}` };
}

const TAG = new RegExp(`^bottle-(${IMAGE_KINDS.join("|")}):([0-9a-f]{${TAG_HASH_LENGTH}})$`);

/** The kind and hash prefix of a tag `imageRef` makes; undefined for any other ref. */
export function parseImageTag(ref: string): { kind: ImageKind; hashPrefix: string } | undefined {
  const match = TAG.exec(ref);
  return match ? { kind: match[1] as ImageKind, hashPrefix: match[2] ?? "" } : undefined;
}

/** The CA certificates as context files `<dir>/extra-N.crt` (always at least the dir). */
export function caCertFiles(extraPaths: string[], env: Env = process.env, dir = "ca-certs"): Record<string, string> {
  const certs = collectCertificates([...extraPaths, ...extraCaBundlesFromEnv(env)]);
  const files: Record<string, string> = { [`${dir}/.keep`]: "" };
  certs.forEach((cert, i) => {
    files[`${dir}/extra-${String(i).padStart(3, "0")}.crt`] = cert;
  });
  return files;
}

/**
 * Planning's image questions in one docker call: the base (`ref@id`, its id
 * when present locally, so a re-imported base rebuilds), and which of `refs`
 * are missing or not current (see imageCurrent).
 */
export async function plannedImages(docker: Docker, refs: ImageRef[], env: Env): Promise<{ base: string; missing: string[] }> {
  const baseRef = baseImage(env);
  const [inspectedBase, ...images] = await docker.imagesInspect([baseRef, ...refs.map((ref) => ref.tag)]);
  const base = `${baseRef}@${inspectedBase?.id ?? "remote"}`;
  return { base, missing: refs.filter((_, i) => !builtOn(images[i], base)).map((ref) => ref.tag) };
}

/** The CA certificate context files of both images (the build's, the bottle's): read once per plan. */
export function caContextFiles(caCerts: string[], env: Env = process.env): Record<string, string> {
  return { ...caCertFiles([], env, "build-ca"), ...caCertFiles(caCerts, env) };
}

/** `ca`: caContextFiles. The base (plannedImages) is added once known: builds label it, tags do not hash it. */
export function agentImageSpec(ca: Record<string, string>, env: Env = process.env): ImageSpec {
  return {
    kind: "agent",
    dockerfile: assets.agentDockerfile,
    files: {
      "bottle-run.sh": assets.bottleRun,
      "bottle-session.sh": assets.bottleSession,
      "bottle-attach.sh": assets.bottleAttach,
      "bottle-claude-sync.sh": assets.bottleClaudeSync,
      "tmux.conf": assets.tmuxConf,
      "install-packages.sh": assets.installPackages,
      ...ca,
    },
    buildArgs: { BASE_IMAGE: baseImage(env), CLAUDE_CODE_VERSION, NPM_REGISTRY: npmRegistry(env) },
    inputs: [],
  };
}

export function gateImageSpec(ca: Record<string, string>, env: Env = process.env): ImageSpec {
  return {
    kind: "gate",
    dockerfile: assets.gateDockerfile,
    files: {
      "egress-gate.mjs": assets.egressGate,
      "port-relay.mjs": assets.portRelay,
      "gate-entrypoint.sh": assets.gateEntrypoint,
      "install-packages.sh": assets.installPackages,
      "bottle-splice.c": assets.bottleSplice,
      ...ca,
    },
    buildArgs: { BASE_IMAGE: baseImage(env), NPM_REGISTRY: npmRegistry(env) },
    inputs: [],
  };
}

/**
 * A bottle's `image.dockerfile`: instructions appended onto the agent image.
 * Its directory is the build context.
 */
export function customImageSpec(agent: ImageRef, dockerfilePath: string): ImageSpec {
  let text: string;
  try {
    text = readFileSync(dockerfilePath, "utf8");
  } catch {
    throw new BottleError(`cannot read the bottle's image.dockerfile ${dockerfilePath}`, { fix: "fix `image.dockerfile` in the bottle manifest" });
  }
  const fromLine = text.split("\n").findIndex((line) => /^\s*FROM\s/i.test(line));
  if (fromLine !== -1) {
    throw new BottleError(`${dockerfilePath}:${fromLine + 1}: image.dockerfile must not have a FROM line`, {
      fix: "remove it: the instructions are added on top of the agent image (start with e.g. `USER root` and `RUN apt-get install …`)",
    });
  }
  return {
    kind: "custom",
    dockerfile: `FROM ${agent.tag}\n${text}\nUSER agent\nWORKDIR /workspace\n`,
    files: {},
    buildArgs: {},
    inputs: [agent.hash],
    contextDir: dirname(dockerfilePath),
    labels: { [FROM_LABEL]: agent.tag },
  };
}

/** Built on `base` (when one is named; custom images inherit the agent image's label). */
function builtOn(image: ImageInfo | undefined, base: string | undefined): boolean {
  return image !== undefined && (base === undefined || image.labels[BASE_LABEL] === base);
}

/** The image exists and was built on the base (which may still be being asked for). */
export async function imageCurrent(docker: Docker, ref: ImageRef, base: Promise<string | undefined> | string | undefined): Promise<boolean> {
  const [image, expected] = await Promise.all([docker.imageInspect(ref.tag), base]);
  return builtOn(image, expected);
}

const DESCRIPTIONS: Record<ImageKind, string> = {
  agent: "agent image (Claude Code on Debian; first build takes a minute or two)",
  gate: "gate image",
  custom: "the bottle's extra image layers",
  plumbing: "plumbing test image",
};

/**
 * Build the image unless an image with its content hash exists. Returns
 * whether it built. `planned`: planning already hashed this spec (`ref`) and
 * saw whether the image is current (`present`), so neither is done again.
 */
export async function ensureImage(
  docker: Docker,
  spec: ImageSpec,
  env: Env = process.env,
  planned?: { ref: Pick<ImageRef, "tag" | "hash">; present: boolean },
): Promise<{ ref: ImageRef; built: boolean }> {
  const ref: ImageRef = planned ? { kind: spec.kind, tag: planned.ref.tag, hash: planned.ref.hash } : imageRef(spec);
  if (planned?.present || (await imageCurrent(docker, ref, spec.base))) return { ref, built: false };
  // One build per image at a time, across parallel `bottle up`s.
  return withLock(join(cacheDir(env), "locks", `${ref.tag.replace(/[:/]/g, "_")}.lock`), async () => {
    const existing = await docker.imageInspect(ref.tag);
    if (builtOn(existing, spec.base)) return { ref, built: false };
    const context = spec.contextDir ?? mkdtempSync(join(tmpdir(), `bottle-build-${spec.kind}-`));
    const dockerfilePath = join(mkdtempSync(join(tmpdir(), "bottle-dockerfile-")), "Dockerfile");
    try {
      writeFileSync(dockerfilePath, spec.dockerfile);
      if (!spec.contextDir) {
        for (const [name, content] of Object.entries(spec.files)) {
          mkdirSync(dirname(join(context, name)), { recursive: true });
          writeFileSync(join(context, name), content);
        }
      }
      const started = performance.now();
      log.start(`building ${DESCRIPTIONS[spec.kind]}`);
      await docker.build({
        context,
        dockerfile: dockerfilePath,
        tag: ref.tag,
        labels: { ...spec.labels, [HASH_LABEL]: ref.hash, "bottle.image": spec.kind, ...(spec.base ? { [BASE_LABEL]: spec.base } : {}) },
        buildArgs: spec.buildArgs,
      });
      log.success(`built ${ref.tag} in ${((performance.now() - started) / 1000).toFixed(1)}s`);
      // The image built on the old base lost its tag: remove it, unless a container or another tag still uses it.
      if (existing) await docker.imageRm([existing.id], false);
      return { ref, built: true };
    } finally {
      if (!spec.contextDir) rmSync(context, { recursive: true, force: true });
      rmSync(dirname(dockerfilePath), { recursive: true, force: true });
    }
  });
}
