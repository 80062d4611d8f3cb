import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { ResolvedBottle } from "../../lib/manifest/types.ts";
import { sensitiveHolder, sensitivePaths } from "../../lib/sensitive-paths.ts";
import { describeExposures, type Exposure, type ExposureOptions, workspaceExposures } from "../../lib/workspace-exposure.ts";
import { cleanupTempDirs, tempDir } from "../helpers/unit.ts";

/**
 * Which workspaces would hand a bottle what the gates keep out: each case
 * with a fake HOME (and a fake user database) in a temp dir.
 */

afterAll(cleanupTempDirs);

function write(path: string, content = "x"): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  return path;
}

function dir(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}

/** A machine in a temp dir: a home with a project and ~/.ssh, and nobody else's homes unless given. */
function machine() {
  const root = realpathSync(tempDir("bottle-exposure-"));
  const home = dir(join(root, "home", "me"));
  write(join(home, ".ssh", "id_ed25519"), "-----BEGIN OPENSSH PRIVATE KEY-----\n");
  const project = dir(join(home, "project"));
  write(join(project, "README"), "a project\n");
  const env = { HOME: home, BOTTLE_CONFIG_DIR: join(home, ".config", "bottle") };
  const options = (more: Partial<ExposureOptions> = {}): ExposureOptions => ({ env, homes: [], platform: "linux", ...more });
  return { root, home, project, env, options };
}

const paths = (found: Exposure[]) => found.map((exposure) => `${exposure.how} ${exposure.path}`);

function bottleWith(files: { identity?: string; sshIdentity?: string; ca?: string }): Pick<ResolvedBottle, "git" | "ssh" | "caCerts"> {
  return {
    git: { remotes: files.identity ? { origin: { upstream: "git@git.test:me/p.git", identityFile: files.identity, knownHostKey: "ssh-ed25519 AAAA" } } : {} },
    ssh: { hosts: files.sshIdentity ? [{ host: "build.test", port: 22, identityFile: files.sshIdentity, knownHostKey: "ssh-ed25519 AAAA" }] : [] },
    caCerts: files.ca ? [files.ca] : [],
  };
}

describe("workspaceExposures", () => {
  test("a project in the home is safe", () => {
    const m = machine();
    expect(workspaceExposures(m.project, m.options())).toEqual([]);
  });

  test("the home itself, and every directory above it, are refused", () => {
    const m = machine();
    expect(paths(workspaceExposures(m.home, m.options()))[0]).toBe(`is ${m.home}`);
    expect(paths(workspaceExposures(join(m.root, "home"), m.options()))).toContain(`holds ${m.home}`);
    const root = workspaceExposures("/", m.options());
    expect(paths(root).slice(0, 2)).toEqual(["is /", `holds ${m.home}`]);
  });

  test("a home without any credential store is still the home", () => {
    const m = machine();
    const bare = dir(join(m.root, "bare"));
    expect(paths(workspaceExposures(bare, m.options({ env: { HOME: bare } })))).toEqual([`is ${bare}`]);
  });

  test("a workspace that is a symlink to the home is the home (the caller resolves it, as workspacePlan does)", () => {
    const m = machine();
    const link = join(m.root, "innocent");
    symlinkSync(m.home, link);
    expect(paths(workspaceExposures(realpathSync(link), m.options()))[0]).toBe(`is ${m.home}`);
    // A HOME spelt through a symlink is the same home.
    expect(paths(workspaceExposures(m.home, m.options({ env: { HOME: link } })))[0]).toBe(`is ${link}`);
  });

  test("a directory with a .ssh, .gnupg, .netrc, .claude.json or Claude Code login of its own is refused", () => {
    const m = machine();
    const cases: Array<[string, string]> = [
      [".ssh/id_rsa", ".ssh"],
      [".gnupg/pubring.kbx", ".gnupg"],
      [".netrc", ".netrc"],
      [".claude.json", ".claude.json"],
      [".claude/.credentials.json", ".claude/.credentials.json"],
      [".config/gcloud/credentials.db", ".config/gcloud"],
      [".config/bottle/bottles/dev.yaml", ".config/bottle"],
    ];
    for (const [file, store] of cases) {
      const ws = dir(join(m.root, `ws-${file.replace(/[/.]/g, "_")}`));
      write(join(ws, file));
      expect(paths(workspaceExposures(ws, m.options()))).toEqual([`holds ${join(ws, store)}`]);
    }
    // A project's own .claude/ (its settings, commands) is fine.
    write(join(m.project, ".claude", "settings.json"), "{}");
    expect(workspaceExposures(m.project, m.options())).toEqual([]);
  });

  test("a project's own .docker/, .aws/ or .kube/ without credentials is fine; with them it is refused", () => {
    const m = machine();
    write(join(m.project, ".docker", "Dockerfile"), "FROM scratch\n");
    write(join(m.project, ".aws", "template.yaml"));
    write(join(m.project, ".kube", "deployment.yaml"));
    expect(workspaceExposures(m.project, m.options())).toEqual([]);
    write(join(m.project, ".docker", "config.json"), '{"auths":{}}');
    write(join(m.project, ".aws", "credentials"));
    write(join(m.project, ".kube", "config"));
    expect(paths(workspaceExposures(m.project, m.options())).sort()).toEqual(
      [`holds ${join(m.project, ".aws")}`, `holds ${join(m.project, ".docker")}`, `holds ${join(m.project, ".kube")}`].sort(),
    );
  });

  test("the user's own .docker counts whatever it holds", () => {
    const m = machine();
    dir(join(m.home, ".docker", "contexts"));
    const ws = dir(join(m.home, ".docker", "contexts", "x"));
    expect(paths(workspaceExposures(ws, m.options()))).toEqual([`inside ${join(m.home, ".docker")}`]);
  });

  test("a workspace inside ~/.ssh, or ~/.ssh itself, is refused", () => {
    const m = machine();
    const inside = dir(join(m.home, ".ssh", "keys"));
    expect(paths(workspaceExposures(inside, m.options()))).toEqual([`inside ${join(m.home, ".ssh")}`]);
    expect(paths(workspaceExposures(join(m.home, ".ssh"), m.options()))).toEqual([`is ${join(m.home, ".ssh")}`]);
  });

  test("bottle's own config dir, where $BOTTLE_CONFIG_DIR puts it and at ~/.config/bottle", () => {
    const m = machine();
    const elsewhere = dir(join(m.root, "etc-bottle"));
    write(join(elsewhere, "bottles", "dev.yaml"));
    const ws = dir(join(elsewhere, "bottles"));
    expect(paths(workspaceExposures(ws, m.options({ env: { ...m.env, BOTTLE_CONFIG_DIR: elsewhere } })))).toEqual([`inside ${elsewhere}`]);
    write(join(m.home, ".config", "bottle", "bottles", "dev.yaml"));
    const config = join(m.home, ".config");
    expect(paths(workspaceExposures(config, m.options({ env: { ...m.env, BOTTLE_CONFIG_DIR: elsewhere } })))).toEqual([`holds ${join(config, "bottle")}`]);
  });

  test("the git gate's and SSH gate's identity files, and the bottle's CA files, inside the workspace", () => {
    const m = machine();
    const identity = write(join(m.project, "deploy", "id_git"));
    const sshIdentity = write(join(m.project, "id_build"));
    const ca = write(join(m.project, "certs", "corp.pem"));
    const found = workspaceExposures(m.project, m.options({ bottle: bottleWith({ identity, sshIdentity, ca }) }));
    expect(found.map((exposure) => `${exposure.path} ${exposure.what}`)).toEqual([
      `${identity} the git gate's identity file`,
      `${sshIdentity} the SSH gate's identity file`,
      `${ca} a CA file of the bottle's ca_certs`,
    ]);
  });

  test("a key that is a symlink into the workspace: its real file is there", () => {
    const m = machine();
    const real = write(join(m.project, "secrets", "key"));
    const named = join(m.home, ".ssh", "id_bottle");
    symlinkSync(real, named);
    const found = workspaceExposures(m.project, m.options({ bottle: bottleWith({ identity: named }) }));
    expect(paths(found)).toEqual([`holds ${named}`]);
    // ~/.ssh itself a link into the workspace.
    const m2 = machine();
    const keys = write(join(m2.project, "keys", "id"));
    const ssh = join(m2.home, ".ssh");
    Bun.spawnSync(["rm", "-rf", ssh]);
    symlinkSync(dirname(keys), ssh);
    expect(paths(workspaceExposures(m2.project, m2.options()))).toEqual([`holds ${ssh}`]);
  });

  test("a workspace inside a directory that ~/.ssh links to is inside ~/.ssh", () => {
    const m = machine();
    const keys = dir(join(m.root, "data", "keys"));
    write(join(keys, "id"));
    const ssh = join(m.home, ".ssh");
    Bun.spawnSync(["rm", "-rf", ssh]);
    symlinkSync(keys, ssh);
    const ws = dir(join(keys, "sub"));
    expect(paths(workspaceExposures(ws, m.options()))).toEqual([`inside ${ssh}`]);
  });

  test("another user's home under the workspace: from the user database, and as a direct subdirectory", () => {
    const m = machine();
    const homes = dir(join(m.root, "home"));
    const bob = dir(join(homes, "bob"));
    write(join(bob, ".ssh", "authorized_keys"));
    // /home holds /home/bob/.ssh (and the user's own home).
    expect(paths(workspaceExposures(homes, m.options()))).toContain(`holds ${join(bob, ".ssh")}`);
    // Deeper than a direct subdirectory, the user database finds it.
    const srv = dir(join(m.root, "srv"));
    const git = dir(join(srv, "apps", "git"));
    write(join(git, ".ssh", "id_ed25519"));
    expect(workspaceExposures(srv, m.options())).toEqual([]);
    expect(paths(workspaceExposures(srv, m.options({ homes: [git, "/nonexistent", "/"] })))).toEqual([`holds ${join(git, ".ssh")}`]);
    // And a workspace inside bob's .ssh.
    const inBob = dir(join(bob, ".ssh", "sub"));
    expect(paths(workspaceExposures(inBob, m.options()))).toEqual([`inside ${join(bob, ".ssh")}`]);
  });

  test("a subdirectory that is a symlink is not followed (a link in a mount points at nothing inside)", () => {
    const m = machine();
    const ws = dir(join(m.root, "ws"));
    symlinkSync(m.home, join(ws, "home-link"));
    expect(workspaceExposures(ws, m.options())).toEqual([]);
  });

  test("trailing slashes and .. are the same path", () => {
    const m = machine();
    expect(paths(workspaceExposures(`${m.home}/`, m.options()))[0]).toBe(`is ${m.home}`);
    expect(paths(workspaceExposures(join(m.project, ".."), m.options()))[0]).toBe(`is ${m.home}`);
    expect(paths(workspaceExposures(m.project, m.options({ env: { ...m.env, HOME: `${m.project}/../` } })))).toEqual([]);
  });

  test("on macOS paths compare without case: ~/Project/../ is the home, ~/.SSH/x is inside ~/.ssh", () => {
    const m = machine();
    const upper = m.home.toUpperCase();
    expect(paths(workspaceExposures(upper, m.options({ platform: "darwin" })))[0]).toBe(`is ${m.home}`);
    expect(workspaceExposures(upper, m.options({ platform: "linux" }))).toEqual([]);
    const keys = dir(join(m.home, ".ssh", "keys"));
    expect(paths(workspaceExposures(keys.replace(".ssh", ".SSH"), m.options({ platform: "darwin" })))).toEqual([`inside ${join(m.home, ".ssh")}`]);
  });

  test("the message names each item and how it meets the workspace, the first few and a count", () => {
    const m = machine();
    const found = workspaceExposures("/", m.options());
    const text = describeExposures(found, (path) => path.replace(m.home, "~"), 2);
    expect(text).toStartWith("it is / (the whole file system); it holds ~ (your home directory); and ");
  });
});

describe("sensitiveHolder", () => {
  test("a path reached through a symlinked sensitive dir is held by it", () => {
    const m = machine();
    const keys = dir(join(m.root, "keys"));
    const file = write(join(keys, "id"));
    Bun.spawnSync(["rm", "-rf", join(m.home, ".ssh")]);
    symlinkSync(keys, join(m.home, ".ssh"));
    expect(sensitiveHolder(file, sensitivePaths(m.env))?.what).toBe("SSH keys");
  });

  test("the bottle's CA files are on the list", () => {
    const m = machine();
    const ca = write(join(m.root, "ca.pem"));
    expect(sensitiveHolder(ca, sensitivePaths(m.env, bottleWith({ ca })))?.what).toBe("a CA file of the bottle's ca_certs");
  });
});
