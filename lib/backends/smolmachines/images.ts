/**
 * The helper images of the smolmachines prepare path. Production pins them by
 * digest (multi-arch index digests); `BOTTLE_REGISTRY_IMAGE` and
 * `BOTTLE_CRANE_IMAGE` override them (air-gapped mirrors, tests).
 */

type Env = Record<string, string | undefined>;

/** distribution 2.8.3: serves the image to `smolvm pack create` over plain HTTP on 127.0.0.1. */
export const DEFAULT_REGISTRY_IMAGE =
  "registry:2.8.3@sha256:a3d8aaa63ed8681a604f1dea0aa03f100d5895b6a58ace528858a7b332415373";

/** go-containerregistry's crane (distroless; its entrypoint is /ko-app/crane). */
export const DEFAULT_CRANE_IMAGE =
  "gcr.io/go-containerregistry/crane@sha256:fc86bcad43a000c2a1ca926a1e167db26c053cebc3fa5d14285c72773fb8c11d";

/** The port distribution listens on inside its container. */
export const REGISTRY_PORT = 5000;

/** Repository the agent image is pushed to; the tag is the cache key. */
export const PACK_REPOSITORY = "bottle/agent";

export function registryImage(env: Env = process.env): string {
  return env.BOTTLE_REGISTRY_IMAGE || DEFAULT_REGISTRY_IMAGE;
}

export function craneImage(env: Env = process.env): string {
  return env.BOTTLE_CRANE_IMAGE || DEFAULT_CRANE_IMAGE;
}
