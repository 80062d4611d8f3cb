import { homedir } from "node:os";
import { join, relative, resolve, sep } from "node:path";
import type { ResolvedBottle } from "./manifest/types.ts";
import { configDir, hostClaudeJson } from "./paths.ts";

/**
 * What the gates keep out of a bottle, as host paths: the user's keys and
 * credentials (~/.ssh, cloud and cluster configs, ~/.claude.json with its
 * MCP tokens), bottle's own config (it holds every bottle's credentials), and
 * the key and CA files a bottle names. Nothing bottle copies into a bottle
 * may come from inside one of these.
 */

type Env = Record<string, string | undefined>;

export interface SensitivePath {
  path: string;
  /** Why it stays out, for messages. */
  what: string;
}

export function sensitivePaths(env: Env, bottle?: Pick<ResolvedBottle, "git" | "ssh" | "caCerts">): SensitivePath[] {
  const home = env.HOME || homedir();
  const paths: SensitivePath[] = [
    { path: join(home, ".ssh"), what: "your SSH keys" },
    { path: join(home, ".aws"), what: "AWS credentials" },
    { path: join(home, ".docker"), what: "Docker's credentials" },
    { path: join(home, ".kube"), what: "Kubernetes credentials" },
    { path: join(home, ".gnupg"), what: "your GnuPG keys" },
    { path: join(home, ".netrc"), what: "your .netrc passwords" },
    { path: join(home, ".config", "gcloud"), what: "Google Cloud credentials" },
    { path: hostClaudeJson(env), what: "Claude Code's config with its MCP tokens" },
    { path: configDir(env), what: "bottle's config, with every bottle's credentials" },
  ];
  for (const remote of Object.values(bottle?.git.remotes ?? {})) paths.push({ path: remote.identityFile, what: "the git gate's identity file" });
  for (const host of bottle?.ssh.hosts ?? []) paths.push({ path: host.identityFile, what: "the SSH gate's identity file" });
  return paths;
}

/** The sensitive path `path` is (or lies inside), if any. */
export function sensitiveHolder(path: string, sensitive: readonly SensitivePath[]): SensitivePath | undefined {
  const target = resolve(path);
  return sensitive.find((entry) => {
    const rel = relative(resolve(entry.path), target);
    return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !rel.startsWith(sep));
  });
}
