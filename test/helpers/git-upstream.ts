import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { docker, testImage } from "./docker.ts";
import { sshKeygen, startSshd, waitForLogLine } from "./world.ts";

/**
 * The upstream of the git gate's tests: a real sshd with git (on the base
 * image) holding one bare repository, reached by the gate as
 * `git@<made-up host>:project.git` on the bottle's egress network. Its client
 * key pair and host key are made here, so a test knows what to pin; the
 * test secrets are made at run time (random, realistic shapes), so no
 * scanner ever finds a credential in the test files.
 */

export const GIT_UPSTREAM_REPO = "/srv/git/project.git";

const UPSTREAM_DOCKERFILE = `ARG BASE_IMAGE
FROM \${BASE_IMAGE}
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server git >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --home-dir /srv/git --shell /usr/bin/git-shell git \\
 && usermod -p '*' git && mkdir -p /run/sshd && rm -f /etc/ssh/ssh_host_*
`;

function randomFrom(alphabet: string, length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}
const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/** A real-shaped AWS access key id (gitleaks rule aws-access-token). */
export const awsKey = () => `AKIA${randomFrom(UPPER, 16)}`;
/** A real-shaped GitHub personal access token (gitleaks rule github-pat). */
export const githubToken = () => `ghp_${randomFrom(ALNUM, 36)}`;

export interface GitUpstream {
  container: string;
  host: string;
  /** What the bottle's remote names: git@<host>:project.git. */
  url: string;
  /** Dir of the key pairs: id_ed25519 (the gate's client key), host_key. */
  keys: string;
  /** `git --git-dir=<repo> ARGS` as the git user on the upstream; trimmed stdout. */
  git(...args: string[]): string;
  /** The commit a ref points at upstream, or "" when it does not exist. */
  ref(ref: string): string;
  /** Whether the upstream's repository holds the object at all. */
  has(object: string): boolean;
  /** The bottle manifest's `git:` section with this upstream as remote `origin`. */
  manifest(): string[];
  /** Joins the bottle's egress network under its host name; returns once sshd listens. */
  attach(bottle: string): void;
  /** Removes the container and the keys. */
  remove(): void;
}

/**
 * Starts the upstream: a bare repository whose main holds a README commit,
 * then whatever `setup` (shell lines run as the git user in a clone of it,
 * with `env`, before it is pushed) adds.
 */
export function startGitUpstream(options: { label: string; host: string; setup?: string[]; env?: Record<string, string> }): GitUpstream {
  const keys = mkdtempSync(join(tmpdir(), "bottle-git-keys-"));
  sshKeygen(keys, "id_ed25519", "bottle-test-client");
  sshKeygen(keys, "host_key", "bottle-test-host");
  const hostKey = readFileSync(join(keys, "host_key.pub"), "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
  const container = startSshd({ prefix: "upstream", image: testImage("bottle-test-upstream", UPSTREAM_DOCKERFILE), keys, label: options.label, user: "git", home: "/srv/git" });
  const envArgs = Object.entries(options.env ?? {}).flatMap(([key, value]) => ["-e", `${key}=${value}`]);
  docker(
    "exec", "-u", "git", ...envArgs, container, "sh", "-c",
    [
      "set -e",
      `git init -q --bare -b main ${GIT_UPSTREAM_REPO}`,
      `git clone -q ${GIT_UPSTREAM_REPO} /tmp/seed 2>/dev/null`,
      "cd /tmp/seed",
      "git config user.name Seed; git config user.email seed@example.test",
      "echo '# project' > README.md; git add README.md; git commit -qm init",
      ...(options.setup ?? []),
      "git push -q origin main",
    ].join("; "),
  );
  const run = (...args: string[]) => Bun.spawnSync(["docker", "exec", "-u", "git", container, "git", `--git-dir=${GIT_UPSTREAM_REPO}`, ...args], { stdout: "pipe", stderr: "pipe" });
  const url = `git@${options.host}:project.git`;
  return {
    container,
    host: options.host,
    url,
    keys,
    git: (...args) => docker("exec", "-u", "git", container, "git", `--git-dir=${GIT_UPSTREAM_REPO}`, ...args),
    ref: (ref) => {
      const out = run("rev-parse", "--verify", "--quiet", ref);
      return out.exitCode === 0 ? out.stdout.toString().trim() : "";
    },
    has: (object) => run("cat-file", "-e", object).exitCode === 0,
    manifest: () => [
      "git:",
      "  user: { name: Agent, email: agent@example.test }",
      "  remotes:",
      "    origin:",
      `      upstream: "${url}"`,
      `      identity_file: ${join(keys, "id_ed25519")}`,
      // With a leading host field, as ssh-keyscan prints it.
      `      known_host_key: "${options.host} ${hostKey}"`,
    ],
    attach: (bottle) => {
      docker("network", "connect", "--alias", options.host, `${bottle}-egress`, container);
      waitForLogLine(container, "Server listening");
    },
    remove: () => {
      Bun.spawnSync(["docker", "rm", "-f", container], { stdout: "pipe", stderr: "pipe" });
      rmSync(keys, { recursive: true, force: true });
    },
  };
}
