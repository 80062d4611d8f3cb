import type { TarEntry } from "../tar.ts";
import type { HostGitFiles, HostRepo } from "./host-repo.ts";

/**
 * The git directory a mount-mode bottle commits to: its own, made at launch
 * from the host repository's refs, index and a few safe config keys, and
 * borrowing the host's objects read-only (objects/info/alternates). Nothing in
 * it is ever read by the host: the agent's commits come back only as objects,
 * from a bundle (bottle-branch.ts).
 */

/** Where the host's object store is mounted read-only in the bottle. */
export const HOST_OBJECTS_MOUNT = "/run/bottle-git-objects";

/** A git config value in double quotes. */
function quoted(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").replace(/\t/g, "\\t")}"`;
}

/** `remote.origin.url` → section `remote "origin"`, key `url`; the subsection keeps its case, as git does. */
function splitKey(key: string): { section: string; name: string } {
  const first = key.indexOf(".");
  const last = key.lastIndexOf(".");
  const section = key.slice(0, first);
  const name = key.slice(last + 1);
  if (first === last) return { section, name };
  return { section: `${section} ${quoted(key.slice(first + 1, last))}`, name };
}

/** The private git dir's config: a plain non-bare repository plus the host's safe keys. */
export function privateConfig(repo: Pick<HostRepo, "objectFormat" | "config">): string {
  const sections = new Map<string, string[]>();
  const add = (section: string, line: string) => sections.set(section, [...(sections.get(section) ?? []), line]);
  const sha256 = repo.objectFormat === "sha256";
  add("core", `\trepositoryformatversion = ${sha256 ? 1 : 0}`);
  add("core", "\tbare = false");
  add("core", "\tlogallrefupdates = true");
  if (sha256) add("extensions", "\tobjectformat = sha256");
  for (const [key, value] of repo.config) {
    if (/^extensions\./i.test(key) || /^core\.(repositoryformatversion|bare)$/i.test(key)) continue;
    const { section, name } = splitKey(key);
    add(section, `\t${name} = ${quoted(value)}`);
  }
  return [...sections].map(([section, lines]) => `[${section}]\n${lines.join("\n")}\n`).join("");
}

/**
 * The private git dir as tar entries under `root` (the bottle's
 * /workspace/.git, or where a gitfile points), owned by the agent. Without
 * a host repository at the workspace it is an empty directory the agent may
 * `git init` in.
 */
export function privateGitDirEntries(root: string, repo: HostRepo | undefined, files: HostGitFiles, uid: number, gid: number, borrowObjects = true): TarEntry[] {
  const dir = (path: string): TarEntry => ({ path: `${root}${path}`, type: "dir", mode: 0o755, uid, gid });
  const file = (path: string, content: string | Uint8Array, mode = 0o644): TarEntry => ({ path: `${root}${path}`, content, mode, uid, gid });
  const entries: TarEntry[] = [dir("")];
  if (!repo?.head) return entries;
  entries.push(
    file("/HEAD", `${repo.head}\n`),
    file("/config", privateConfig(repo)),
    file("/packed-refs", `# pack-refs with: peeled fully-peeled sorted \n${repo.refs.map((line) => `${line}\n`).join("")}`),
    dir("/refs"),
    dir("/refs/heads"),
    dir("/refs/tags"),
    dir("/objects"),
    dir("/objects/info"),
    dir("/objects/pack"),
    dir("/info"),
  );
  // On a remote engine the host's objects cannot be mounted: they come in as a bundle (objectsBundle) instead.
  if (borrowObjects) entries.push(file("/objects/info/alternates", `${HOST_OBJECTS_MOUNT}\n`));
  if (files.index) entries.push(file("/index", files.index));
  for (const [name, content] of files.sharedIndexes) entries.push(file(`/${name}`, content));
  if (files.exclude) entries.push(file("/info/exclude", files.exclude));
  if (files.sparseCheckout) entries.push(file("/info/sparse-checkout", files.sparseCheckout));
  if (files.shallow) entries.push(file("/shallow", files.shallow));
  return entries;
}
