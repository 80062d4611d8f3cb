import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { withLock } from "../../lib/lock.ts";
import { BASE_IMAGE, docker, dockerOk } from "./docker.ts";

/**
 * Stand-ins for the pinned registry and crane images (no registry can be
 * pulled from here): both built from Debian trixie packages on the local
 * base image. Tags are content hashes (Dockerfile, context files, base image
 * id), so an unchanged helper never rebuilds.
 */

/** distribution's registry, serving without auth (Debian's own config turns on htpasswd). */
const REGISTRY_CONFIG = `version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
`;

const REGISTRY_DOCKERFILE = `ARG BASE_IMAGE
FROM \${BASE_IMAGE}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /var/lib/registry /etc/docker/registry
COPY config.yml /etc/docker/registry/config.yml
EXPOSE 5000
ENTRYPOINT ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config.yml"]
`;

/** crane from the packaged go-containerregistry source, built offline (GOPATH mode). */
const CRANE_DOCKERFILE = `ARG BASE_IMAGE
FROM \${BASE_IMAGE} AS build
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends golang-go golang-github-google-go-containerregistry-dev \\
 && rm -rf /var/lib/apt/lists/*
RUN cd /usr/share/gocode/src/github.com/google/go-containerregistry \\
 && GO111MODULE=off GOPATH=/usr/share/gocode CGO_ENABLED=0 GOCACHE=/tmp/gocache go build -o /crane ./cmd/crane \\
 && rm -rf /tmp/gocache

FROM \${BASE_IMAGE}
COPY --from=build /crane /crane
ENTRYPOINT ["/crane"]
`;

export interface TestImage {
  name: string;
  dockerfile: string;
  files: Record<string, string>;
}

export const REGISTRY_TEST_IMAGE: TestImage = { name: "registry", dockerfile: REGISTRY_DOCKERFILE, files: { "config.yml": REGISTRY_CONFIG } };
export const CRANE_TEST_IMAGE: TestImage = { name: "crane", dockerfile: CRANE_DOCKERFILE, files: {} };

function baseId(base: string): string {
  return docker("image", "inspect", "--format", "{{.Id}}", base);
}

export function testImageTag(image: TestImage, base = BASE_IMAGE): string {
  const hash = createHash("sha256");
  for (const part of [image.dockerfile, base, baseId(base), ...Object.entries(image.files).flat()]) hash.update(`${part.length}:${part}`);
  return `bottle-test/${image.name}:${hash.digest("hex").slice(0, 16)}`;
}

/** Build `image` unless its content tag exists; returns the tag. */
export async function ensureTestImage(image: TestImage, base = BASE_IMAGE): Promise<string> {
  const tag = testImageTag(image, base);
  if (dockerOk("image", "inspect", tag)) return tag;
  return withLock(join(tmpdir(), "bottle-test-locks", `${tag.replace(/[:/]/g, "_")}.lock`), async () => {
    if (dockerOk("image", "inspect", tag)) return tag;
    const context = mkdtempSync(join(tmpdir(), `bottle-test-${image.name}-`));
    try {
      writeFileSync(join(context, "Dockerfile"), image.dockerfile);
      for (const [name, content] of Object.entries(image.files)) writeFileSync(join(context, name), content);
      const started = performance.now();
      const proc = Bun.spawn(["docker", "build", "--quiet", "--build-arg", `BASE_IMAGE=${base}`, "--tag", tag, context], {
        stdout: "pipe",
        stderr: "pipe",
      });
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      if (code !== 0) throw new Error(`building ${tag} failed (exit ${code}):\n${stdout}\n${stderr}`);
      console.warn(`built ${tag} in ${((performance.now() - started) / 1000).toFixed(1)}s`);
      return tag;
    } finally {
      rmSync(context, { recursive: true, force: true });
    }
  });
}

/** Both stand-ins, built concurrently; ready for BOTTLE_REGISTRY_IMAGE / BOTTLE_CRANE_IMAGE. */
export async function ensureRegistryTestImages(base = BASE_IMAGE): Promise<{ registry: string; crane: string }> {
  const [registry, crane] = await Promise.all([ensureTestImage(REGISTRY_TEST_IMAGE, base), ensureTestImage(CRANE_TEST_IMAGE, base)]);
  return { registry, crane };
}
