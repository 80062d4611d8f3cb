import { type ContainerSummary, dockerFor } from "./docker.ts";
import { type Engine, engineName } from "./engine.ts";
import type { Exec } from "./exec.ts";
import { agentImageSpec, caContextFiles, FROM_LABEL, gateImageSpec, HASH_LABEL, type ImageKind, imageRef, parseImageTag } from "./images.ts";

/**
 * bottle's images that nothing needs any more. Tags are content hashes, so
 * every change to a bottle's image inputs builds a new tag (a custom image
 * is ~700 MB) and the old one stays. An image is stale when it is bottle's
 * own (a `bottle-<kind>:<hash>` tag whose hash its label confirms: images
 * others build FROM ours inherit our labels, not our tags), no container
 * uses it, and it is not the default bottle's agent or gate image as this
 * version builds them (removing those would make the next `bottle up`
 * build for minutes). A custom image's agent image stays while the custom
 * one does.
 */

export interface StaleImage {
  /** The image's `bottle-<kind>:<hash>` tag. */
  tag: string;
  id: string;
  kind: ImageKind;
  size: number;
  /** The engine it is on ("local", or a context's name / DOCKER_HOST). */
  engine: string;
}

type Env = Record<string, string | undefined>;

/** The agent and gate tags the default bottle uses now. */
export function defaultImageTags(env: Env): string[] {
  const ca = caContextFiles([], env);
  return [imageRef(agentImageSpec(ca, env)).tag, imageRef(gateImageSpec(ca, env)).tag];
}

/** Whether a container's image (as `docker ps` shows it: a ref, or an id when the ref moved) is this one. */
function uses(container: ContainerSummary, image: { id: string; refs: string[] }): boolean {
  const shown = container.image;
  if (image.refs.includes(shown)) return true;
  const bare = (id: string) => id.replace(/^sha256:/, "");
  return shown.length >= 12 && bare(image.id).startsWith(bare(shown));
}

/**
 * The stale images on `engine` (default: the local one), largest first.
 * `leaving`: containers about to be removed (a cleanup's orphans), whose
 * images count as unused.
 */
export async function findStaleImages(exec: Exec, env: Env, leaving: string[] = [], engine?: Engine): Promise<StaleImage[]> {
  const docker = dockerFor(exec, engine);
  const [listed, containers] = await Promise.all([docker.imageLs([`label=${HASH_LABEL}`]), docker.ps([], true)]);
  const own = listed.flatMap((image) => {
    for (const ref of image.refs) {
      const parsed = parseImageTag(ref);
      if (parsed) return [{ ...image, tag: ref, ...parsed }];
    }
    return [];
  });
  if (own.length === 0) return [];
  const infos = await docker.imagesInspect(own.map((image) => image.id));
  const staying = containers.filter((c) => !leaving.includes(c.name) && !leaving.includes(c.id));
  const keep = new Set(defaultImageTags(env));
  const candidates = own.flatMap((image, i) => {
    const info = infos[i];
    // A tag whose hash the label does not confirm is not ours to judge.
    if (!info || !info.labels[HASH_LABEL]?.startsWith(image.hashPrefix)) return [];
    const used = staying.some((c) => uses(c, image));
    return [{ image: { tag: image.tag, id: image.id, kind: image.kind, size: info.size, engine: engineName(engine) }, used, from: info.labels[FROM_LABEL] }];
  });
  for (const c of candidates) if (c.used && c.from) keep.add(c.from);
  return candidates
    .filter((c) => !c.used && !keep.has(c.image.tag))
    .map((c) => c.image)
    .sort((a, b) => b.size - a.size || a.tag.localeCompare(b.tag));
}

/**
 * Removes them without force: an image a container started using since it
 * was listed stays. Returns the ones that are gone.
 */
export async function removeStaleImages(exec: Exec, images: StaleImage[], engine?: Engine): Promise<StaleImage[]> {
  if (images.length === 0) return [];
  const docker = dockerFor(exec, engine);
  await docker.imageRm(
    images.map((image) => image.tag),
    false,
  );
  const left = await docker.imageLs([`label=${HASH_LABEL}`]);
  const tags = new Set(left.flatMap((image) => image.refs));
  return images.filter((image) => !tags.has(image.tag));
}
