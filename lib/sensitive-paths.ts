import { lstatSync, realpathSync } from "node:fs";
import { homedir } from "node:os";
import { join, relative, resolve, sep } from "node:path";
import type { ResolvedBottle } from "./manifest/types.ts";
import { configDir, hostClaudeDir, hostClaudeJson } from "./paths.ts";

/**
 * What the gates keep out of a bottle, as host paths: the user's keys and
 * credentials (~/.ssh, cloud and cluster configs, ~/.claude.json with its
 * MCP tokens, Claude Code's own login), bottle's own config (it holds every bottle's credentials), and
 * the key and CA files a bottle names. Nothing bottle copies or mounts into a
 * bottle may come from inside one of these, nor hold one.
 */

type Env = Record<string, string | undefined>;

export interface SensitivePath {
  path: string;
  /** Why it stays out, for messages. */
  what: string;
  /**
   * Found in a directory that is not the user's home, it counts only when it
   * holds one of these: a project's own `.docker/` holds Dockerfiles, not
   * Docker's credentials. Absent: it always counts.
   */
  markers?: string[];
}

/** What any home holds that the gates keep out, relative to it. */
const IN_A_HOME: ReadonlyArray<{ rel: string; what: string; markers?: string[] }> = [
  { rel: ".ssh", what: "SSH keys" },
  { rel: ".aws", what: "AWS credentials", markers: ["credentials", "config"] },
  { rel: ".docker", what: "Docker's credentials", markers: ["config.json"] },
  { rel: ".kube", what: "Kubernetes credentials", markers: ["config"] },
  { rel: ".gnupg", what: "GnuPG keys" },
  { rel: ".netrc", what: ".netrc passwords" },
  { rel: join(".config", "gcloud"), what: "Google Cloud credentials" },
  { rel: ".claude.json", what: "Claude Code's config with its MCP tokens" },
  { rel: join(".claude", ".credentials.json"), what: "Claude Code's login" },
  { rel: join(".config", "bottle"), what: "bottle's config, with every bottle's credentials" },
];

/** The credential stores of the home `home` (the user's, or anyone's). */
export function homeSensitivePaths(home: string): SensitivePath[] {
  return IN_A_HOME.map(({ rel, what, markers }) => ({ path: join(home, rel), what, ...(markers ? { markers } : {}) }));
}

export function sensitivePaths(env: Env, bottle?: Pick<ResolvedBottle, "git" | "ssh" | "caCerts">): SensitivePath[] {
  const home = env.HOME || homedir();
  const paths: SensitivePath[] = [
    ...homeSensitivePaths(home),
    // Where they are when the environment moves them ($CLAUDE_CONFIG_DIR, $BOTTLE_CONFIG_DIR, $XDG_CONFIG_HOME).
    { path: hostClaudeJson(env), what: "Claude Code's config with its MCP tokens" },
    { path: join(hostClaudeDir(env), ".credentials.json"), what: "Claude Code's login" },
    { path: configDir(env), what: "bottle's config, with every bottle's credentials" },
  ];
  for (const remote of Object.values(bottle?.git.remotes ?? {})) paths.push({ path: remote.identityFile, what: "the git gate's identity file" });
  for (const host of bottle?.ssh.hosts ?? []) paths.push({ path: host.identityFile, what: "the SSH gate's identity file" });
  for (const cert of bottle?.caCerts ?? []) paths.push({ path: cert, what: "a CA file of the bottle's ca_certs" });
  const seen = new Set<string>();
  return paths.filter((entry) => {
    const key = resolve(entry.path);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** macOS (and Windows) file systems ignore case by default: /Users/Me/.SSH is ~/.ssh there. */
function foldsCase(platform: NodeJS.Platform): boolean {
  return platform === "darwin" || platform === "win32";
}

/** `inner` is `outer` or lies inside it; both absolute, compared as the platform's file system does. */
export function isWithin(inner: string, outer: string, platform: NodeJS.Platform = process.platform): boolean {
  const fold = (path: string) => (foldsCase(platform) ? resolve(path).toLowerCase() : resolve(path));
  const rel = relative(fold(outer), fold(inner));
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${sep}`) && !rel.startsWith(sep));
}

/** Whether something is there (a dangling symlink counts: it is there). */
export function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The ways a path is reached: as written (made absolute) and, when it exists,
 * with every symlink resolved — `~/.ssh` may be a link to `/data/keys`.
 */
export function spellings(path: string): string[] {
  const written = resolve(path);
  try {
    const real = realpathSync(written);
    return real === written ? [written] : [written, real];
  } catch {
    return [written];
  }
}

/** The sensitive path `path` is (or lies inside), if any, however either is spelt. */
export function sensitiveHolder(path: string, sensitive: readonly SensitivePath[], platform: NodeJS.Platform = process.platform): SensitivePath | undefined {
  const targets = spellings(path);
  return sensitive.find((entry) => spellings(entry.path).some((held) => targets.some((target) => isWithin(target, held, platform))));
}
