import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { assets } from "../../../../lib/assets.ts";
import { realExec } from "../../../../lib/exec.ts";
import { gateEnvContent } from "../../../../lib/gates/git/config.ts";
import { cleanupTempDirs, tempDir } from "../../../helpers/unit.ts";

/**
 * The git gate's shell functions on the host, with a fake gitleaks: the
 * fail-closed decisions do not need a container to be checked. Skipped when
 * the host lacks bash or jq (the gate image has both).
 */

afterAll(cleanupTempDirs);

const hasTools = ["bash", "jq", "git"].every((tool) => Bun.which(tool) !== null);

/** A gate dir on the host: lib.sh pointed at it, gate.env, and a fake gitleaks first on its PATH. */
function fakeGate(fakeGitleaks: string, maxLogBytes = 0): { dir: string; run: (script: string, env?: Record<string, string>) => Promise<{ exitCode: number; stdout: string; stderr: string }> } {
  const dir = tempDir("bottle-git-gate-");
  mkdirSync(join(dir, "bin"));
  writeFileSync(join(dir, "lib.sh"), assets.gitLib.replace("GIT_GATE_DIR=/etc/bottle/git", `GIT_GATE_DIR=${dir}`));
  writeFileSync(join(dir, "gate.env"), gateEnvContent({ bottle: "bottle-unit", port: 9418, log: join(dir, "git.jsonl"), maxLogBytes, mirrors: join(dir, "mirrors") }));
  writeFileSync(join(dir, "bin", "gitleaks"), `#!/bin/bash\n${fakeGitleaks}\n`);
  chmodSync(join(dir, "bin", "gitleaks"), 0o755);
  return {
    dir,
    run: async (script, env = {}) => {
      const out = await realExec.run(["bash", "-c", `. "${dir}/lib.sh"; WORK="${dir}"; ${script}`], { check: false, env });
      return { exitCode: out.exitCode, stdout: out.stdout, stderr: out.stderr };
    },
  };
}

/** A fake gitleaks: writes $FAKE_REPORT to --report-path (unless empty), prints $FAKE_LOG, exits $FAKE_RC. */
const FAKE = `
report=""
while [ $# -gt 0 ]; do case "$1" in --report-path) report=$2; shift ;; esac; shift; done
[ -n "$FAKE_REPORT" ] && printf '%s' "$FAKE_REPORT" > "$report"
printf '%b\\n' "$FAKE_LOG" >&2
exit "$FAKE_RC"
`;

const FINDING = JSON.stringify([{ File: "a.env", StartLine: 1, RuleID: "aws-access-token", Description: "AWS", Commit: "c".repeat(40), Secret: "REDACTED" }]);

describe.skipIf(!hasTools)("run_gitleaks fails closed", () => {
  const cases: Array<[string, Record<string, string>, number]> = [
    ["a clean scan", { FAKE_RC: "0", FAKE_REPORT: "[]", FAKE_LOG: "INF 3 commits scanned.\\nINF no leaks found" }, 0],
    ["findings", { FAKE_RC: "3", FAKE_REPORT: FINDING, FAKE_LOG: "WRN leaks found: 1" }, 1],
    [
      "gitleaks 8.16's 'partial scan' after a git error, exit 0",
      { FAKE_RC: "0", FAKE_REPORT: "[]", FAKE_LOG: '\\e[90m1:13PM\\e[0m \\e[1m\\e[31mERR\\e[0m [git] fatal: bad revision\\n\\e[31mWRN\\e[0m no leaks found in partial scan' },
      2,
    ],
    ["a fatal error (exit 1)", { FAKE_RC: "1", FAKE_REPORT: "", FAKE_LOG: "FTL unable to load config" }, 2],
    ["exit 0 without a report", { FAKE_RC: "0", FAKE_REPORT: "", FAKE_LOG: "INF no leaks found" }, 2],
    ["exit 3 without findings", { FAKE_RC: "3", FAKE_REPORT: "[]", FAKE_LOG: "" }, 2],
  ];
  for (const [what, env, expected] of cases)
    test(`${what} → ${["clean", "findings", "failed"][expected]}`, async () => {
      const gate = fakeGate(FAKE);
      const out = await gate.run(`run_gitleaks "${gate.dir}/report.json" "${gate.dir}/scan.log" /nowhere main; echo "status=$?"`, env);
      expect(out.stdout.trim()).toBe(`status=${expected}`);
    });

  test("gitleaks runs in git mode with the gate's rules, redaction, every blob as text, and a PATH that starts with the gate's git wrapper", async () => {
    const gate = fakeGate(`printf '%s\\n' "PATH=$PATH" "GITLEAKS_CONFIG=\${GITLEAKS_CONFIG-unset}" "$@" > "${"$"}{0%/bin/gitleaks}/args"; for a; do [ "$prev" = --report-path ] && echo '[]' > "$a"; prev=$a; done; exit 0`);
    await gate.run(`run_gitleaks "${gate.dir}/r.json" "${gate.dir}/l.log" /repo "x --not --all"`, { GITLEAKS_CONFIG: "/evil.toml" });
    const args = readFileSync(join(gate.dir, "args"), "utf8").split("\n");
    expect(args[0]).toBe(`PATH=${gate.dir}/bin:/usr/bin:/bin`);
    expect(args[1]).toBe("GITLEAKS_CONFIG=unset");
    expect(args).toContain("--redact");
    expect(args).toContain(`${gate.dir}/gitleaks.toml`);
    expect(args.join(" ")).toContain("--source /repo");
    expect(args).toContain("--log-opts=--text --no-textconv --no-ext-diff x --not --all");
    expect(args).not.toContain("--no-git");
  });
});

describe.skipIf(!hasTools)("the gate's helpers", () => {
  test("failure_reason picks ssh's error or the upstream's refusal over git's closing words", async () => {
    const gate = fakeGate("exit 0");
    const reason = async (text: string) => (await gate.run(`printf '%b' "$T" | failure_reason`, { T: text })).stdout.trim();
    expect(await reason("ssh: Could not resolve hostname h: Name or service not known\\nfatal: Could not read from remote repository.\\n\\nPlease make sure you have the correct access rights\\nand the repository exists.\\n")).toBe(
      "ssh: Could not resolve hostname h: Name or service not known",
    );
    expect(await reason("No ED25519 host key is known for h and you have requested strict checking.\\nHost key verification failed.\\nfatal: Could not read from remote repository.\\n")).toContain("host key is known");
    expect(await reason("remote: policy\\nTo h:r\\n ! [remote rejected] abc -> main (pre-receive hook declined)\\nerror: failed to push some refs to 'h:r'\\n")).toBe(
      "! [remote rejected] abc -> main (pre-receive hook declined)",
    );
    expect(await reason("\\n\\nsomething odd\\n")).toBe("something odd");
  });

  test("log_event appends one JSON line with time, bottle, remote and the given fields", async () => {
    const gate = fakeGate("exit 0");
    await gate.run(`REMOTE=origin; log_event event=scan ref=refs/heads/main 'detail=a "quoted" = value' commits=json:3 findings=json:'[{"rule":"x"}]'`);
    const line = JSON.parse(readFileSync(join(gate.dir, "git.jsonl"), "utf8").trim());
    expect(line).toMatchObject({ bottle: "bottle-unit", remote: "origin", event: "scan", ref: "refs/heads/main", detail: 'a "quoted" = value', commits: 3, findings: [{ rule: "x" }] });
    expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  test("log_event keeps git.jsonl and its one rotated generation under GIT_LOG_MAX_BYTES, also with concurrent writers", async () => {
    const cap = 8192;
    const gate = fakeGate("exit 0", cap);
    // 4 hooks at once, 30 events each: ~16 KB of lines in all.
    const out = await gate.run(`REMOTE=origin; for w in 1 2 3 4; do (for i in $(seq 30); do log_event event=fetch service=upload-pack decision=deny detail="w$w-$i"; done) & done; wait`);
    expect(out.stderr).toBe("");
    const log = join(gate.dir, "git.jsonl");
    const [current, rotated] = [statSync(log).size, statSync(`${log}.1`).size];
    expect(current + rotated).toBeLessThanOrEqual(cap);
    expect(Math.max(current, rotated)).toBeLessThanOrEqual(cap / 2);
    // Whole lines only, the newest kept.
    const lines = [`${log}.1`, log].flatMap((path) => readFileSync(path, "utf8").trim().split("\n")).map((line) => JSON.parse(line));
    expect(lines.length).toBeGreaterThan(20);
    for (let w = 1; w <= 4; w++) expect(lines.map((line) => line.detail)).toContain(`w${w}-30`);
  }, 20_000);

  test("a line too long for the cap keeps its decision and drops its lists", async () => {
    const gate = fakeGate("exit 0", 65536);
    const findings = JSON.stringify(Array.from({ length: 800 }, (_, i) => ({ file: `f${i}.env`, line: i, rule: "generic-api-key", commit: "c".repeat(40) })));
    await gate.run(`REMOTE=origin; log_event event=scan ref=refs/heads/main decision=deny commits=json:3 findings=json:"$F"`, { F: findings });
    const text = readFileSync(join(gate.dir, "git.jsonl"), "utf8");
    expect(text.length).toBeLessThan(1024);
    expect(JSON.parse(text)).toMatchObject({ event: "scan", ref: "refs/heads/main", decision: "deny", commits: 3, detail: "too long for the log cap: lists left out" });
  });

  test("load_remote accepts configured names only", async () => {
    const gate = fakeGate("exit 0");
    mkdirSync(join(gate.dir, "remotes", "origin"), { recursive: true });
    writeFileSync(join(gate.dir, "remotes", "origin", "remote.env"), "REMOTE='origin'\nUPSTREAM='git@h.test:r.git'\n");
    const out = await gate.run(`load_remote origin && echo "$REPO|$UPSTREAM"; load_remote docs || echo no-docs; load_remote '../origin' || echo no-escape`);
    expect(out.stdout.split("\n")).toEqual([`${gate.dir}/mirrors/origin.git|git@h.test:r.git`, "no-docs", "no-escape", ""]);
  });

  test("the gitleaks git wrapper defuses gitleaks:allow in any case, keeping lines and exit status", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "real-git"), "#!/bin/sh\nprintf 'k = 1 # gitleaks:allow\\nx GITLEAKS:ALLOW y\\n'\nexit 4\n");
    writeFileSync(join(dir, "git"), assets.gitForGitleaks.replace("/usr/bin/git", join(dir, "real-git")));
    for (const file of ["git", "real-git"]) chmodSync(join(dir, file), 0o755);
    const out = await realExec.run([join(dir, "git"), "log"], { check: false });
    expect(out.stdout).toBe("k = 1 # gitleaks_allow\nx gitleaks_allow y\n");
    expect(out.exitCode).toBe(4);
  });
});

/**
 * What gitleaks gets to read, with the host's real git: a stand-in for
 * gitleaks 8.16 that runs exactly the command gitleaks runs in git mode
 * (`git -C <source> log -p -U0` + --log-opts split on spaces, through the
 * gate's git wrapper first on PATH) and keeps its output. gitleaks itself
 * skips every file that output calls "Binary files … differ"; the real
 * gitleaks runs in test/integration/escape/git.test.ts.
 */
const GITLEAKS_GIT_MODE = `
report=""; source=""; opts=""
while [ $# -gt 0 ]; do case "$1" in --report-path) report=$2; shift ;; --source) source=$2; shift ;; --log-opts=*) opts=\${1#--log-opts=} ;; esac; shift; done
mapfile -d ' ' -t split < <(printf '%s' "$opts")
git -C "$source" log -p -U0 "\${split[@]}" > "$GITLEAKS_SAW" || exit 1
echo '[]' > "$report"
`;

describe.skipIf(!hasTools)("every blob is scanned as text", () => {
  const git = (dir: string, ...args: string[]) => {
    const out = Bun.spawnSync(["git", "-C", dir, "-c", "user.name=t", "-c", "user.email=t@t.test", ...args], { stdout: "pipe", stderr: "pipe" });
    if (out.exitCode !== 0) throw new Error(`git ${args.join(" ")}: ${out.stderr.toString()}`);
    return out.stdout.toString().trim();
  };
  const gateWithGit = () => {
    const gate = fakeGate(GITLEAKS_GIT_MODE);
    writeFileSync(join(gate.dir, "bin", "git"), assets.gitForGitleaks);
    chmodSync(join(gate.dir, "bin", "git"), 0o755);
    return gate;
  };
  const SECRET = "AWS_ACCESS_KEY_ID=AKIA_STAND_IN_VALUE";

  test("NUL bytes, big blobs, binary / -diff / textconv / external-diff attributes: git prints every added line", async () => {
    const gate = gateWithGit();
    const work = join(gate.dir, "work");
    mkdirSync(work);
    git(work, "init", "-q", "-b", "main");
    writeFileSync(join(work, "base.txt"), "base\n");
    git(work, "add", ".");
    git(work, "commit", "-qm", "base");
    const files: Record<string, string | Buffer> = {
      "nul.dat": Buffer.concat([Buffer.from([0]), Buffer.from(`${SECRET}-nul\n`)]),
      "big.txt": `${"a".repeat(4096)}\n${SECRET}-big\n`,
      "marked.sec": `${SECRET}-binary-attribute\n`,
      "nodiff.nd": `${SECRET}-minus-diff\n`,
      "conv.tc": `${SECRET}-textconv\n`,
      "ext.ed": `${SECRET}-external\n`,
    };
    for (const [name, content] of Object.entries(files)) writeFileSync(join(work, name), content);
    writeFileSync(join(work, ".gitattributes"), "*.sec binary\n*.nd -diff\n*.tc diff=hide\n*.ed diff=ext\n");
    git(work, "add", ".");
    git(work, "commit", "-qm", "add");
    const repo = join(gate.dir, "mirror.git");
    git(gate.dir, "clone", "-q", "--bare", work, repo);
    // As if this git read attributes from the pushed tree (bare repos may read
    // them from HEAD), with every driver the attributes name, and a low big-file threshold.
    writeFileSync(join(repo, "info", "attributes"), readFileSync(join(work, ".gitattributes")));
    for (const [key, value] of [["core.bigFileThreshold", "1k"], ["diff.hide.textconv", "true"], ["diff.hide.binary", "true"], ["diff.ext.command", "true"]])
      git(repo, "config", key!, value!);
    const output = join(gate.dir, "git-log.out");
    const out = await gate.run(`run_gitleaks "${gate.dir}/r.json" "${gate.dir}/l.log" "${repo}" "main --not main~1"; echo "status=$?"`, { GITLEAKS_SAW: output });
    expect(out.stdout.trim()).toBe("status=0");
    const printed = readFileSync(output, "latin1");
    expect(printed).not.toContain("Binary files");
    for (const suffix of ["nul", "big", "binary-attribute", "minus-diff", "textconv", "external"]) expect(printed).toContain(`${SECRET}-${suffix}\n`);
    expect(printed).toContain(`+\0${SECRET}-nul`);
  });

  test("scan_files scans files in git mode from a repository of their own, never the pushed repository or its quarantine", async () => {
    const gate = gateWithGit();
    const dir = join(gate.dir, "messages");
    mkdirSync(dir);
    // Text that gitleaks 8.16's --no-git mode takes for a Windows executable and skips.
    writeFileSync(join(dir, `${"a".repeat(40)}.txt`), `MZ deploy with ${SECRET}-message\n`);
    const quarantine = join(gate.dir, "quarantine");
    mkdirSync(quarantine);
    const output = join(gate.dir, "git-log.out");
    const out = await gate.run(`scan_files "${dir}" "${gate.dir}/r.json" "${gate.dir}/l.log"; echo "status=$?"`, {
      GITLEAKS_SAW: output,
      GIT_DIR: join(gate.dir, "nowhere.git"),
      GIT_OBJECT_DIRECTORY: quarantine,
      GIT_QUARANTINE_PATH: quarantine,
    });
    expect(out.stdout.trim()).toBe("status=0");
    const printed = readFileSync(output, "utf8");
    expect(printed).toContain(`+++ b/${"a".repeat(40)}.txt`);
    expect(printed).toContain(`+MZ deploy with ${SECRET}-message`);
    expect(readdirSync(quarantine)).toEqual([]);
  });
});
