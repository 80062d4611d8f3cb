import { existsSync, readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import type { ResolvedBottle } from "./manifest/types.ts";
import { exists, homeSensitivePaths, isWithin, type SensitivePath, sensitivePaths, spellings } from "./sensitive-paths.ts";

/**
 * Whether a workspace would hand a bottle what the gates keep out of it
 * (lib/sensitive-paths.ts): a workspace that is `/` or the user's home, that
 * holds one of those paths, or that lies inside one. Both ways, with symlinks
 * resolved on both sides (a workspace that links to home, a key that links
 * into the workspace), and case-insensitively where the file system is.
 *
 * Beyond the user's own list, a workspace may hold somebody else's home
 * (`/home` holds `/home/bob/.ssh`): the workspace itself, its direct
 * subdirectories and every home in the user database (/etc/passwd) that lies
 * inside it are looked at as homes. Deeper copies of a `.ssh` are not looked
 * for (that would walk the whole tree on every launch).
 */

type Env = Record<string, string | undefined>;

export interface Exposure {
  /** What would come in (or what the workspace lies inside). */
  path: string;
  what: string;
  /** is: the workspace is it; holds: it lies in the workspace; inside: the workspace lies in it. */
  how: "is" | "holds" | "inside";
}

export interface ExposureOptions {
  env: Env;
  /** The bottle's identity and CA files are kept out too. */
  bottle?: Pick<ResolvedBottle, "git" | "ssh" | "caCerts">;
  platform?: NodeJS.Platform;
  /** The machine's users' homes; default: read from /etc/passwd. */
  homes?: string[];
}

const PASSWD = "/etc/passwd";

function passwdHomes(): string[] {
  if (!existsSync(PASSWD)) return [];
  try {
    return readFileSync(PASSWD, "utf8")
      .split("\n")
      .map((line) => line.split(":")[5] ?? "")
      .filter((home) => home.startsWith("/"));
  } catch {
    return [];
  }
}

/** A credential store found outside the user's own home counts when it is there (and holds one of its markers, if it names any). */
function present(entry: SensitivePath): boolean {
  if (!exists(entry.path)) return false;
  return !entry.markers || entry.markers.some((marker) => exists(join(entry.path, marker)));
}

function subdirectories(dir: string): string[] {
  try {
    // Symlinks are not followed: a link in a mount points at nothing inside, and a copy keeps it a link.
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => join(dir, entry.name));
  } catch {
    return [];
  }
}

/** Every way `workspace` (a real path) would expose what the gates hold; empty when it is safe. */
export function workspaceExposures(workspace: string, options: ExposureOptions): Exposure[] {
  const platform = options.platform ?? process.platform;
  const within = (inner: string, outer: string) => isWithin(inner, outer, platform);
  const found: Exposure[] = [];
  const same = (a: string, b: string) => spellings(a).some((x) => spellings(b).some((y) => within(x, y) && within(y, x)));
  const add = (path: string, what: string, how: Exposure["how"]) => {
    if (!found.some((known) => same(known.path, path))) found.push({ path, what, how });
  };
  /** How `path` and the workspace meet, if they do. */
  const meets = (path: string): Exposure["how"] | undefined => {
    const spelt = spellings(path);
    if (spelt.some((p) => within(p, workspace) && within(workspace, p))) return "is";
    if (spelt.some((p) => within(p, workspace))) return "holds";
    if (spelt.some((p) => within(workspace, p))) return "inside";
    return undefined;
  };

  if (workspace === "/") add("/", "the whole file system", "is");
  const home = options.env.HOME || homedir();
  const atHome = meets(home);
  if (atHome === "is" || atHome === "holds") add(home, "your home directory", atHome);

  // The user's own list, each entry as written and as its symlinks resolve.
  for (const entry of sensitivePaths(options.env, options.bottle)) {
    const how = exists(entry.path) ? meets(entry.path) : undefined;
    if (how) add(entry.path, entry.what, how);
  }

  // Anyone's credential stores: in the workspace taken as a home, in its subdirectories, in the machine's homes it holds.
  const candidates = [workspace, ...subdirectories(workspace)];
  for (const other of options.homes ?? passwdHomes()) if (exists(other) && meets(other) === "holds") candidates.push(other);
  for (const candidate of candidates) for (const entry of homeSensitivePaths(candidate)) if (present(entry)) add(entry.path, entry.what, "holds");

  // A workspace inside anyone's credential store (/home/bob/.ssh/keys).
  for (let dir = dirname(workspace); ; dir = dirname(dir)) {
    for (const entry of homeSensitivePaths(dir)) if (within(workspace, entry.path) && present(entry)) add(entry.path, entry.what, meets(entry.path) ?? "inside");
    if (dir === dirname(dir)) break;
  }
  return found;
}

/** `path (what)` items for one message, the first few and a count of the rest. */
export function describeExposures(exposures: readonly Exposure[], show: (path: string) => string, limit = 4): string {
  const phrase = (exposure: Exposure) => {
    const item = `${show(exposure.path)} (${exposure.what})`;
    return exposure.how === "is" ? `it is ${item}` : exposure.how === "inside" ? `it lies inside ${item}` : `it holds ${item}`;
  };
  const shown = exposures.slice(0, limit).map(phrase);
  if (exposures.length > limit) shown.push(`and ${exposures.length - limit} more`);
  return shown.join("; ");
}
