/**
 * A git bundle, read as data: its header (format, prerequisites, refs) and
 * the pack that follows. The host never hands a bottle's bundle to `git
 * fetch` (older gits skip fsck for bundles): it checks the header here and
 * gives the pack to `git index-pack --strict` itself.
 */

export interface Bundle {
  objectFormat: "sha1" | "sha256";
  prerequisites: string[];
  refs: Array<{ id: string; name: string }>;
  pack: Uint8Array;
}

const SIGNATURES = ["# v2 git bundle\n", "# v3 git bundle\n"];
/** A header longer than this is not one a bottle's `git bundle create` writes for one ref. */
const MAX_HEADER = 4 * 1024 * 1024;

export class BundleError extends Error {}

/** Parses a bundle; throws a BundleError naming what is wrong. */
export function parseBundle(data: Uint8Array): Bundle {
  let end = -1;
  for (let i = 0; i + 1 < Math.min(data.length, MAX_HEADER); i++) {
    if (data[i] === 0x0a && data[i + 1] === 0x0a) {
      end = i + 1;
      break;
    }
  }
  if (end === -1) throw new BundleError("no bundle header");
  const header = new TextDecoder("utf-8", { fatal: false }).decode(data.subarray(0, end));
  const signature = SIGNATURES.find((candidate) => header.startsWith(candidate));
  if (!signature) throw new BundleError("not a v2 or v3 git bundle");
  let objectFormat: Bundle["objectFormat"] = "sha1";
  const prerequisites: string[] = [];
  const refs: Bundle["refs"] = [];
  for (const line of header.slice(signature.length).split("\n").filter(Boolean)) {
    if (line.startsWith("@")) {
      const [key, value] = line.slice(1).split("=");
      if (key === "object-format" && (value === "sha1" || value === "sha256")) objectFormat = value;
      else throw new BundleError(`unsupported bundle capability ${line.slice(0, 60)}`);
      continue;
    }
    const prerequisite = /^-([0-9a-f]{40}|[0-9a-f]{64})(?: .*)?$/.exec(line);
    if (prerequisite) {
      prerequisites.push(prerequisite[1]!);
      continue;
    }
    const ref = /^([0-9a-f]{40}|[0-9a-f]{64}) (\S+)$/.exec(line);
    if (!ref) throw new BundleError(`malformed bundle line: ${line.slice(0, 60)}`);
    refs.push({ id: ref[1]!, name: ref[2]! });
  }
  const idLength = objectFormat === "sha1" ? 40 : 64;
  if ([...prerequisites, ...refs.map((ref) => ref.id)].some((id) => id.length !== idLength)) throw new BundleError(`object ids do not match ${objectFormat}`);
  return { objectFormat, prerequisites, refs, pack: data.subarray(end + 1) };
}
