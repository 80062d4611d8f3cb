import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { assets } from "../../../../lib/assets.ts";
import { BottleError } from "../../../../lib/errors.ts";
import { realExec } from "../../../../lib/exec.ts";
import {
  formatGitLogLine,
  gateEnvContent,
  gateUrl,
  gitGateConfig,
  gitGateEntries,
  gitPlan,
  hostKeyOnly,
  insteadOfConfig,
  knownHostsContent,
  knownHostsPattern,
  parseUpstream,
  remoteEnvContent,
  renderTemplate,
  upstreamVariants,
} from "../../../../lib/gates/git/config.ts";
import { readGitRemotes } from "../../../../lib/gates/git/host.ts";
import { parsePlan } from "../../../../lib/plan.ts";
import { gitconfigContent, provisionEntries } from "../../../../lib/provision.ts";
import { formatPreflight } from "../../../../lib/preflight.ts";
import { cleanupTempDirs, makePlan, tempDir } from "../../../helpers/unit.ts";

afterAll(cleanupTempDirs);

/** Tests that drive real host tools skip when the tool is missing (the gate image has them all). */
const has = (...tools: string[]) => tools.every((tool) => Bun.which(tool) !== null);

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/** What real git makes of a config file: `git config --file F --get-all KEY`. */
async function gitConfigGetAll(text: string, key: string): Promise<string[]> {
  const file = join(tempDir(), "gitconfig");
  writeFileSync(file, text);
  const out = await realExec.run(["git", "config", "--file", file, "--get-all", key], { check: false });
  return out.stdout.split("\n").filter(Boolean);
}

/** What real git makes of a URL under a config: `git ls-remote --get-url URL`. */
async function rewritten(text: string, url: string): Promise<string> {
  const dir = tempDir();
  writeFileSync(join(dir, "gitconfig"), text);
  const out = await realExec.run(["git", "ls-remote", "--get-url", url], { env: { GIT_CONFIG_GLOBAL: join(dir, "gitconfig"), GIT_CONFIG_NOSYSTEM: "1", HOME: dir }, cwd: dir });
  return out.stdout.trim();
}

describe("upstream URLs", () => {
  test("ssh:// and scp-style upstreams are parsed into user, host, port and path", () => {
    expect(parseUpstream("ssh://git@github.com/org/repo.git")).toEqual({ form: "url", user: "git", host: "github.com", path: "/org/repo.git" });
    expect(parseUpstream("ssh://git.example.test:2222/srv/repo.git")).toEqual({ form: "url", host: "git.example.test", port: 2222, path: "/srv/repo.git" });
    expect(parseUpstream("git@github.com:org/repo.git")).toEqual({ form: "scp", user: "git", host: "github.com", path: "org/repo.git" });
    expect(parseUpstream("host.test:/abs/repo")).toEqual({ form: "scp", host: "host.test", path: "/abs/repo" });
    expect(() => parseUpstream("https://github.com/org/repo.git")).toThrow();
  });

  test("the gate URL is git://gate/<name>.git, with the port only when it is not git's own", () => {
    expect(gateUrl("origin")).toBe("git://gate/origin.git");
    expect(gateUrl("origin", 9419)).toBe("git://gate:9419/origin.git");
  });

  test("variants cover .git / no .git and the other SSH syntax", () => {
    expect(upstreamVariants("git@github.com:org/repo.git")).toEqual([
      "git@github.com:org/repo.git",
      "git@github.com:org/repo",
      "ssh://git@github.com/org/repo.git",
      "ssh://git@github.com/org/repo",
    ]);
    expect(upstreamVariants("ssh://git@github.com/org/repo")).toEqual([
      "ssh://git@github.com/org/repo",
      "ssh://git@github.com/org/repo.git",
      "git@github.com:org/repo",
      "git@github.com:org/repo.git",
    ]);
    // With a port there is no scp-style spelling.
    expect(upstreamVariants("ssh://git@host.test:2222/r.git")).toEqual(["ssh://git@host.test:2222/r.git", "ssh://git@host.test:2222/r"]);
  });
});

describe("the bottle's gitconfig", () => {
  const { remotes } = gitPlan({
    origin: { upstream: "git@github.com:org/repo.git", identityFile: "/keys/origin" },
    docs: { upstream: "ssh://git@git.example.test:2222/team/docs.git", identityFile: "/keys/docs" },
  });

  test.skipIf(!has("git"))("insteadOf lines send every spelling of each upstream to its gate URL", async () => {
    const text = insteadOfConfig(remotes);
    expect(text).toStartWith('[url "git://gate/origin.git"]\n\tinsteadOf = "git@github.com:org/repo.git"\n');
    expect(await gitConfigGetAll(text, "url.git://gate/origin.git.insteadof")).toEqual(upstreamVariants(remotes[0]!.upstream));
    expect(await gitConfigGetAll(text, "url.git://gate/docs.git.insteadof")).toEqual(upstreamVariants(remotes[1]!.upstream));
  });

  test.skipIf(!has("git"))("real git rewrites the upstream URLs (and only them) to the gate", async () => {
    const text = gitconfigContent({ name: "Ada" }, remotes);
    expect(await rewritten(text, "git@github.com:org/repo.git")).toBe("git://gate/origin.git");
    expect(await rewritten(text, "git@github.com:org/repo")).toBe("git://gate/origin.git");
    expect(await rewritten(text, "ssh://git@github.com/org/repo.git")).toBe("git://gate/origin.git");
    expect(await rewritten(text, "ssh://git@git.example.test:2222/team/docs.git")).toBe("git://gate/docs.git");
    expect(await rewritten(text, "git@github.com:org/other.git")).toBe("git@github.com:org/other.git");
  });

  test.skipIf(!has("git"))("values with quotes, backslashes, ; and # survive git's config parser", async () => {
    const upstream = `git@host.test:we"ird\\path;x#y.git`;
    const text = insteadOfConfig([{ url: "git://gate/x.git", upstream }]);
    expect((await gitConfigGetAll(text, "url.git://gate/x.git.insteadof"))[0]).toBe(upstream);
  });

  test("without remotes the gitconfig is unchanged; provisioning writes the plan's remotes", () => {
    expect(gitconfigContent({ name: "Ada" }, [])).toBe(gitconfigContent({ name: "Ada" }));
    expect(gitconfigContent(undefined)).not.toContain("[url");
    const plan = makePlan({ git: gitPlan({ origin: { upstream: "git@github.com:org/repo.git", identityFile: "/keys/id" } }) });
    const entry = provisionEntries({ plan, envValues: {}, prompt: "", skillDirs: {} }).find((e) => e.path.endsWith("/.gitconfig"));
    expect(String(entry?.content)).toContain('[url "git://gate/origin.git"]');
    expect(String(entry?.content)).toContain('insteadOf = "git@github.com:org/repo.git"');
  });
});

describe("known_hosts", () => {
  test("a key with or without a leading host field (and a comment) becomes `<type> <base64>`", () => {
    expect(hostKeyOnly(HOST_KEY)).toBe(HOST_KEY);
    expect(hostKeyOnly(`github.com ${HOST_KEY}`)).toBe(HOST_KEY);
    expect(hostKeyOnly(`[git.example.test]:2222,10.0.0.5 ${HOST_KEY} root@host`)).toBe(HOST_KEY);
    expect(hostKeyOnly(`  ${HOST_KEY}   comment here \n`)).toBe(HOST_KEY);
    expect(hostKeyOnly("ecdsa-sha2-nistp256 AAAAE2VjZHNh")).toBe("ecdsa-sha2-nistp256 AAAAE2VjZHNh");
    expect(() => hostKeyOnly("github.com")).toThrow();
    expect(() => hostKeyOnly("ssh-ed25519 not*base64")).toThrow();
  });

  test("the host field is the upstream's host, [host]:port off port 22", () => {
    expect(knownHostsPattern("git@github.com:org/repo.git")).toBe("github.com");
    expect(knownHostsPattern("ssh://git@github.com/org/repo.git")).toBe("github.com");
    expect(knownHostsPattern("ssh://git@github.com:22/org/repo.git")).toBe("github.com");
    expect(knownHostsPattern("ssh://git@git.example.test:2222/r.git")).toBe("[git.example.test]:2222");
    expect(knownHostsContent("git@github.com:org/repo.git", `github.com ${HOST_KEY}`)).toBe(`github.com ${HOST_KEY}\n`);
    expect(knownHostsContent("ssh://h.test:2222/r", HOST_KEY)).toBe(`[h.test]:2222 ${HOST_KEY}\n`);
  });

  test.skipIf(!has("ssh-keygen"))("ssh-keygen finds the pinned key for the host in the rendered file", async () => {
    const key = (await realExec.run(["sh", "-c", 'd=$(mktemp -d); ssh-keygen -q -t ed25519 -N "" -f "$d/k" && cat "$d/k.pub"; rm -rf "$d"'])).stdout.trim();
    const file = join(tempDir(), "known_hosts");
    writeFileSync(file, knownHostsContent("ssh://git@git.example.test:2222/r.git", `git.example.test ${key}`));
    const found = await realExec.run(["ssh-keygen", "-F", "[git.example.test]:2222", "-f", file], { check: false });
    expect(found.exitCode).toBe(0);
    expect(found.stdout).toContain(key.split(" ")[1]!);
    expect((await realExec.run(["ssh-keygen", "-F", "git.example.test", "-f", file], { check: false })).exitCode).not.toBe(0);
  });
});

describe("the gate's files", () => {
  const remote = { name: "origin", upstream: "git@github.com:org/it's.git", identity: "-----BEGIN OPENSSH PRIVATE KEY-----\nunit-test-key-body\n", knownHostKey: `github.com ${HOST_KEY}` };

  test("templates render every placeholder and refuse unknown ones", () => {
    expect(renderTemplate("load @@REMOTE@@ @@REMOTE@@", { REMOTE: "origin" })).toBe("load origin origin");
    expect(() => renderTemplate("@@MISSING@@", {})).toThrow("@@MISSING@@");
    expect(assets.gitPreReceive).toContain("@@REMOTE@@");
  });

  test.skipIf(!has("bash"))("the gate config: bottle name, port, log, its cap and mirrors, shell-quoted", async () => {
    const config = gitGateConfig("bottle-dev", 65536);
    expect(config).toEqual({ bottle: "bottle-dev", port: 9418, log: "/var/log/bottle/git.jsonl", maxLogBytes: 65536, mirrors: "/var/lib/bottle/git" });
    const dir = tempDir();
    writeFileSync(join(dir, "gate.env"), gateEnvContent(config));
    writeFileSync(join(dir, "remote.env"), remoteEnvContent(remote));
    const out = await realExec.run([
      "bash",
      "-c",
      '. "$1/gate.env"; . "$1/remote.env"; printf "%s|%s|%s|%s|%s|%s|%s" "$BOTTLE" "$GIT_PORT" "$GIT_LOG" "$GIT_LOG_MAX_BYTES" "$GIT_MIRRORS" "$REMOTE" "$UPSTREAM"',
      "bash",
      dir,
    ]);
    expect(out.stdout).toBe("bottle-dev|9418|/var/log/bottle/git.jsonl|65536|/var/lib/bottle/git|origin|git@github.com:org/it's.git");
  });

  test("entries: root-only dir, key and known_hosts 0600, hooks rendered per remote", () => {
    const entries = gitGateEntries(gitGateConfig("bottle-dev", 0), [remote, { ...remote, name: "docs", upstream: "ssh://git@h.test:2222/docs.git", knownHostKey: HOST_KEY }]);
    const byPath = new Map(entries.map((entry) => [entry.path, entry]));
    for (const entry of entries) {
      expect(entry.uid).toBe(0);
      expect(entry.gid).toBe(0);
      expect(entry.mode & 0o077).toBe(0);
    }
    expect(byPath.get("etc/bottle/git")?.type).toBe("dir");
    expect(byPath.get("etc/bottle/git/remotes/origin/identity")).toMatchObject({ content: remote.identity, mode: 0o600 });
    expect(byPath.get("etc/bottle/git/remotes/origin/known_hosts")?.content).toBe(`github.com ${HOST_KEY}\n`);
    expect(byPath.get("etc/bottle/git/remotes/docs/known_hosts")?.content).toBe(`[h.test]:2222 ${HOST_KEY}\n`);
    const hook = byPath.get("etc/bottle/git/remotes/docs/hooks/pre-receive");
    expect(hook?.mode).toBe(0o700);
    expect(String(hook?.content)).toContain("load_remote docs ");
    expect(String(hook?.content)).not.toContain("@@");
    for (const path of ["start", "access-hook", "bin/git"]) expect(byPath.get(`etc/bottle/git/${path}`)?.mode).toBe(0o700);
    expect(byPath.get("etc/bottle/git/gitleaks.toml")?.content).toBe(assets.gitleaksRules);
    // The key is in the identity entries only.
    expect(entries.filter((entry) => String(entry.content ?? "").includes("unit-test-key-body"))).toHaveLength(2);
  });

  test("no remotes, no git gate; a remote name that could escape its dir is refused", () => {
    expect(gitGateEntries(gitGateConfig("b", 0), [])).toEqual([]);
    expect(() => gitGateEntries(gitGateConfig("b", 0), [{ ...remote, name: "../x" }])).toThrow("invalid git remote name");
  });

  test("the gitleaks rules keep every default rule but no global path allowlist", () => {
    const rules = assets.gitleaksRules;
    expect(rules.match(/^\[\[rules\]\]$/gm)?.length).toBeGreaterThan(100);
    expect(rules).toContain('id = "aws-access-token"');
    expect(rules).toContain('id = "github-pat"');
    expect(rules).toContain('id = "private-key"');
    expect(rules).not.toMatch(/^\[allowlist\]$/m);
    expect(rules).not.toContain("'''vendor'''");
    expect(rules).not.toMatch(/^paths\s*=/m);
  });

  test.skipIf(!has("bash"))("the gate's shell scripts parse", async () => {
    const dir = tempDir();
    for (const [name, text] of Object.entries({
      lib: assets.gitLib,
      start: assets.gitStart,
      access: assets.gitAccessHook,
      wrapper: assets.gitForGitleaks,
      hook: renderTemplate(assets.gitPreReceive, { REMOTE: "origin" }),
    })) {
      writeFileSync(join(dir, name), text);
      const out = await realExec.run(["bash", "-n", join(dir, name)], { check: false });
      expect(`${name}: ${out.stderr}`).toBe(`${name}: `);
    }
  });
});

describe("the plan and the preflight", () => {
  test("the plan's git section names remotes, upstreams, gate URLs and key paths only", () => {
    const git = gitPlan({ origin: { upstream: "git@github.com:org/repo.git", identityFile: "/home/u/.ssh/id_ed25519" } });
    expect(git).toEqual({
      port: 9418,
      remotes: [{ name: "origin", upstream: "git@github.com:org/repo.git", url: "git://gate/origin.git", identityFile: "/home/u/.ssh/id_ed25519" }],
    });
    expect(parsePlan({ ...makePlan(), git })?.git).toEqual(git);
    // Plans written before the git gate still parse.
    expect(parsePlan(makePlan())?.git).toBeUndefined();
  });

  test("the preflight lists the git gate and each remote", () => {
    const plan = makePlan({ git: gitPlan({ origin: { upstream: "git@github.com:org/repo.git", identityFile: "/k" } }) });
    const text = formatPreflight(plan, []);
    expect(text).toContain("+ git (mirror, gitleaks on push)");
    expect(text).toContain("origin → git@github.com:org/repo.git (via git gate git://gate/origin.git; pushes scanned by gitleaks)");
    expect(formatPreflight(makePlan(), [])).not.toMatch(/git gate|\+ git/);
  });
});

describe("keys on the host", () => {
  test("identity files are read at launch; a missing one is a clear error naming the remote", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "id"), "KEY");
    const remotes = { origin: { upstream: "git@h.test:r.git", identityFile: join(dir, "id"), knownHostKey: HOST_KEY } };
    const read = readGitRemotes({ bottle: { git: { remotes } } } as never);
    expect(read).toEqual([{ name: "origin", upstream: "git@h.test:r.git", identity: expect.anything(), knownHostKey: HOST_KEY }]);
    expect(Buffer.from(read[0]!.identity).toString()).toBe("KEY");
    const missing = { docs: { ...remotes.origin, identityFile: join(dir, "nope") } };
    expect(() => readGitRemotes({ bottle: { git: { remotes: missing } } } as never)).toThrow(BottleError);
    expect(() => readGitRemotes({ bottle: { git: { remotes: missing } } } as never)).toThrow(`"docs"`);
  });
});

describe("the git log", () => {
  test("lines show decision, event, remote, ref, range, counts and findings", () => {
    expect(
      formatGitLogLine({
        time: "T",
        decision: "deny",
        event: "scan",
        remote: "origin",
        ref: "refs/heads/main",
        old: "a".repeat(40),
        new: "b".repeat(40),
        commits: 2,
        findings: [{ file: "x.env", line: 3, rule: "aws-access-token", commit: "c".repeat(40) }],
      }),
    ).toBe(`T  deny   scan     origin  refs/heads/main  ${"a".repeat(12)}..${"b".repeat(12)}  2 commits  [x.env:3 aws-access-token ${"c".repeat(12)}]`);
    expect(formatGitLogLine({ time: "T", decision: "error", event: "fetch", remote: "origin", service: "upload-pack", detail: "ssh: Could not resolve" })).toBe(
      "T  error  fetch    origin  upload-pack  (ssh: Could not resolve)",
    );
  });
});
