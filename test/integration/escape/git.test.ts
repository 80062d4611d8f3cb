import { afterAll, beforeAll, expect, test } from "bun:test";
import { runBottle } from "../../helpers/cli.ts";
import { describeDocker, uniqueId } from "../../helpers/docker.ts";
import { type Attacker, SETUP_TIMEOUT_MS, TEST_TIMEOUT_MS, tearDown, upAttacker } from "../../helpers/escape-world.ts";
import { awsKey, githubToken, startGitUpstream, type GitUpstream } from "../../helpers/git-upstream.ts";

/**
 * Secrets past the git gate: an attacker bottle pushes, through the gate,
 * to a real sshd upstream, secrets hidden where a scan of `git log -p`
 * would not look — in blobs git calls binary (a NUL byte, a pushed
 * .gitattributes) and in commit and tag messages that start like a binary
 * file format. Each push must be refused with the finding, and the upstream
 * (checked on the upstream itself) must never get the commit.
 */

describeDocker("escape through the git gate: secrets git or gitleaks take for binary", () => {
  let attacker: Attacker | undefined;
  let upstream: GitUpstream | undefined;
  const label = `bottle.test=${uniqueId("esc-git-upstream")}`;
  let clones = 0;

  /** A fresh clone through the gate, then `script` in it. */
  const inClone = (script: string) => {
    const dir = `/tmp/clone-${++clones}`;
    return attacker!.sh(`git clone -q ${upstream!.url} ${dir} && cd ${dir} || exit 99; ${script}`);
  };

  /** The push was refused and nothing of it reached the upstream. */
  function refused(out: string, before: string, commit: string): void {
    expect(out).toContain("push rejected");
    expect(out).not.toContain("no secrets found");
    expect(out).not.toMatch(/^exit=0$/m);
    expect(upstream!.ref("main")).toBe(before);
    expect(upstream!.has(commit)).toBe(false);
  }

  beforeAll(async () => {
    upstream = startGitUpstream({ label, host: "git.upstream.test" });
    attacker = await upAttacker({ prefix: "esc-git", manifest: ["workspace: none", ...upstream.manifest()], dockerfile: null });
    upstream.attach(attacker.name);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    upstream?.remove();
    if (attacker) await tearDown(attacker.sandbox, [attacker.name], [attacker.agent]);
  });

  test(
    "a NUL byte before a real AWS key id and a GitHub token (a file git calls binary) is refused, naming file, line, rule and commit",
    async () => {
      const before = upstream!.ref("main");
      const key = awsKey();
      const token = githubToken();
      const out = await inClone(
        [
          `printf '\\000AWS_ACCESS_KEY_ID=%s\\ntoken = "%s"\\n' '${key}' '${token}' > payload.dat`,
          "git add payload.dat && git commit -qm 'add payload'",
          // The attacker's own git agrees the file is binary.
          "git show --format= HEAD | grep -c '^Binary files'",
          `git push origin main 2>&1; echo "exit=$?"; echo "commit=$(git rev-parse HEAD)"`,
        ].join("; "),
      );
      const commit = /commit=([0-9a-f]{40})/.exec(out.stdout)![1]!;
      expect(out.stdout).toMatch(/^1$/m);
      refused(out.stdout, before, commit);
      expect(out.stdout).toMatch(new RegExp(`payload\\.dat:1  rule aws-access-token .* commit ${commit.slice(0, 12)}`));
      expect(out.stdout).toMatch(new RegExp(`payload\\.dat:2  rule github-pat .* commit ${commit.slice(0, 12)}`));
      expect(out.stdout).not.toContain(key);
      expect(out.stdout).not.toContain(token);
      // The gate's log says so too, without the secrets.
      const logs = await runBottle(attacker!.sandbox, ["logs", attacker!.name, "--gate", "git", "--json"]);
      const scans = logs.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line)).filter((line) => line.event === "scan" && line.new === commit);
      expect(scans).toHaveLength(1);
      expect(scans[0].decision).toBe("deny");
      expect(scans[0].findings.map((f: { file: string; line: number; rule: string }) => `${f.file}:${f.line} ${f.rule}`).sort()).toEqual([
        "payload.dat:1 aws-access-token",
        "payload.dat:2 github-pat",
      ]);
      expect(logs.stdout).not.toContain(key);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "files a pushed .gitattributes marks binary, -diff or textconv are refused, also once that .gitattributes is upstream",
    async () => {
      // First a clean push of only the attributes: it goes through and becomes the upstream's (and the mirror's) HEAD.
      const attributes = await inClone(
        [
          "printf '*.dat binary\\n*.nd -diff\\n*.tc diff=hexdump\\n' > .gitattributes",
          "git add .gitattributes && git commit -qm attributes",
          `git push origin main 2>&1; echo "exit=$?"; echo "commit=$(git rev-parse HEAD)"`,
        ].join("; "),
      );
      expect(attributes.stdout).toContain("exit=0");
      expect(upstream!.ref("main")).toBe(/commit=([0-9a-f]{40})/.exec(attributes.stdout)![1]!);
      const before = upstream!.ref("main");
      const out = await inClone(
        [
          `printf 'AWS_ACCESS_KEY_ID=%s\\n' '${awsKey()}' > keys.dat`,
          `printf 'token = "%s"\\n' '${githubToken()}' > token.nd`,
          `printf 'AWS_ACCESS_KEY_ID=%s\\n' '${awsKey()}' > more.tc`,
          "git add -A && git commit -qm 'add data'",
          // binary and -diff: binary to the attacker's git too (diff=hexdump would take a textconv in the gate's config).
          "git show --format= HEAD | grep -c '^Binary files'",
          `git push origin main 2>&1; echo "exit=$?"; echo "commit=$(git rev-parse HEAD)"`,
        ].join("; "),
      );
      expect(out.stdout).toMatch(/^2$/m);
      refused(out.stdout, before, /commit=([0-9a-f]{40})/.exec(out.stdout)![1]!);
      for (const finding of ["keys.dat:1  rule aws-access-token", "token.nd:1  rule github-pat", "more.tc:1  rule aws-access-token"]) expect(out.stdout).toContain(finding);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a commit message or a tag message that starts like a binary file format (MZ, %PDF) is scanned all the same",
    async () => {
      const before = upstream!.ref("main");
      const message = await inClone(
        [
          "echo notes > notes.txt && git add notes.txt",
          `git commit -qm 'MZ deploy with ${githubToken()}'`,
          `git push origin main 2>&1; echo "exit=$?"; echo "commit=$(git rev-parse HEAD)"`,
        ].join("; "),
      );
      const commit = /commit=([0-9a-f]{40})/.exec(message.stdout)![1]!;
      refused(message.stdout, before, commit);
      expect(message.stdout).toContain(`(message):1  rule github-pat (GitHub Personal Access Token)  commit ${commit.slice(0, 12)}`);

      const tag = await inClone(
        [
          `git tag -a v9.9 -m '%PDF-1.7 release, deploy key ${awsKey()}'`,
          `git push origin v9.9 2>&1; echo "exit=$?"; echo "commit=$(git rev-parse v9.9)"`,
        ].join("; "),
      );
      const tagObject = /commit=([0-9a-f]{40})/.exec(tag.stdout)![1]!;
      refused(tag.stdout, before, tagObject);
      expect(tag.stdout).toContain("(message):1  rule aws-access-token");
      expect(upstream!.ref("refs/tags/v9.9")).toBe("");
    },
    TEST_TIMEOUT_MS,
  );
});
