import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { makeSandbox, ROOT, writeFile, type Sandbox } from "../helpers/cli.ts";
import { describeDocker, removeLabelled, uniqueId } from "../helpers/docker.ts";
import { initRepo, writeHostGitConfig } from "../helpers/git-project.ts";

/** The compiled binary, run from a directory that holds a .env and a bunfig.toml it must ignore. */

const BIN = join(ROOT, "dist", "bottle");

async function run(sandbox: Sandbox, args: string[]) {
  const proc = Bun.spawn([BIN, ...args], { cwd: sandbox.project, env: sandbox.env, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, exitCode };
}

describe("the compiled binary", () => {
  let sandbox: Sandbox;
  const marker = () => join(sandbox.home, "bunfig-preload-ran");

  beforeAll(() => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`bun run build\` first`);
    sandbox = makeSandbox();
    // A .env that would redirect the config dir, and a bunfig that would preload code.
    writeFile(join(sandbox.project, ".env"), "BOTTLE_CONFIG_DIR=/from-dotenv\nNO_COLOR=0\n");
    writeFile(join(sandbox.project, "preload.ts"), `require("node:fs").writeFileSync(${JSON.stringify(join(sandbox.home, "bunfig-preload-ran"))}, "x");\n`);
    writeFile(join(sandbox.project, "bunfig.toml"), 'preload = ["./preload.ts"]\n');
  });

  test("--version prints version and commit", async () => {
    const out = await run(sandbox, ["--version"]);
    expect(out.exitCode).toBe(0);
    expect(out.stdout).toMatch(/^bottle \d+\.\d+\.\d+ \(([0-9a-f]{7,}|unknown)\)\n$/);
    expect(out.stdout).not.toContain("(source)");
  });

  test("--help lists the commands, and every command has --help", async () => {
    const out = await run(sandbox, ["--help"]);
    expect(out.exitCode).toBe(0);
    const commands = ["up", "ls", "attach", "exec", "logs", "down", "port", "cleanup", "agents", "info", "init", "schema", "doctor"];
    for (const command of commands) expect(out.stdout).toContain(command);
    for (const command of commands) {
      const help = await run(sandbox, [command, "--help"]);
      expect(help.exitCode).toBe(0);
      expect(help.stdout).toContain(`bottle ${command}`);
    }
  });

  test("usage errors — unknown command or flag, missing or extra argument — exit 2 with one line and a fix", async () => {
    const cases: Array<[string[], string]> = [
      [["uup"], 'bottle: unknown command "uup" — did you mean `bottle up`?'],
      [["ls", "--jsn"], "bottle: unknown flag --jsn for bottle ls — did you mean --json?"],
      [["exec"], "bottle: missing NAME for bottle exec"],
      [["exec", "bottle-x"], "bottle: missing the command for bottle exec"],
      [["down"], "bottle: missing NAME… for bottle down"],
      [["logs", "x", "y"], "bottle: too many arguments for bottle logs"],
      [["logs", "bottle-x", "--gate", "egres"], 'bottle: unknown gate "egres" — did you mean egress?'],
      [["up", "-p", "3000", "-p", "8080:80"], "bottle: -p is given twice for bottle up; only one value would count"],
      [["up", "-p", "http"], 'bottle: -p http: expected a port like 3000, or "HOSTPORT:PORT" like "8080:3000", got "http"'],
      [["port"], "bottle: missing NAME for bottle port"],
    ];
    for (const [argv, first] of cases) {
      const out = await run(sandbox, argv);
      expect({ argv, code: out.exitCode }).toEqual({ argv, code: 2 });
      const lines = out.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(2);
      expect(lines[0]).toBe(first);
      expect(lines[1]).toStartWith("  fix: ");
    }
  });

  test("help on a pipe is plain text; on a terminal it is coloured", async () => {
    const piped = await run(sandbox, ["up", "--help"]);
    expect(piped.stdout).toContain("USAGE");
    expect(piped.stdout).not.toContain("\x1b[");
    const { NO_COLOR: _, ...env } = sandbox.env;
    const script = Bun.spawnSync(["script", "-qec", `${BIN} up --help`, "/dev/null"], { env: { ...env, TERM: "xterm" }, stdout: "pipe" });
    expect(script.stdout.toString()).toContain("\x1b[");
    const noColor = Bun.spawnSync(["script", "-qec", `${BIN} up --help`, "/dev/null"], { env: { ...env, TERM: "xterm", NO_COLOR: "1" }, stdout: "pipe" });
    expect(noColor.stdout.toString()).not.toContain("\x1b[");
  });

  test("reads embedded assets, not the source tree", async () => {
    const out = await run(sandbox, ["assets", "agentDockerfile"]);
    expect(out.exitCode).toBe(0);
    expect(out.stdout).toBe(readFileSync(join(ROOT, "assets", "agent.Dockerfile"), "utf8"));
    const gate = await run(sandbox, ["assets", "egressGate"]);
    expect(gate.stdout).toContain("egress gate ready");
    for (const [asset, file] of [["bottleClaudeSync", "bottle-claude-sync.sh"], ["bottleAttach", "bottle-attach.sh"], ["tmuxConf", "tmux.conf"], ["gitScanMerge", "git/scan-merge.sh"]])
      expect((await run(sandbox, ["assets", asset!])).stdout).toBe(readFileSync(join(ROOT, "assets", file!), "utf8"));
    const relay = await run(sandbox, ["assets", "portRelay"]);
    expect(relay.stdout).toContain("port relay ready");
  });

  test("doctor --json reports checks and ignores .env and bunfig.toml in the cwd", async () => {
    const out = await run(sandbox, ["doctor", "--json"]);
    const report = JSON.parse(out.stdout) as { checks: Array<{ name: string; detail: string }>; dockerReady: boolean };
    const config = report.checks.find((check) => check.name === "config dir");
    expect(config?.detail).toContain(sandbox.config);
    expect(config?.detail).not.toContain("/from-dotenv");
    expect(existsSync(marker())).toBe(false);
    expect(out.exitCode).toBe(report.dockerReady ? 0 : 1);
  });

  test("a reader that closes stdout early ends it quietly: no stack trace, exit 0", async () => {
    // `true` is gone long before the binary has started, so its first write meets a closed pipe.
    const proc = Bun.spawn(["sh", "-c", `{ '${BIN}' schema; echo "exit $?" >&2; } | true`], { cwd: sandbox.project, env: sandbox.env, stdout: "pipe", stderr: "pipe" });
    const [stderr] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(stderr).toBe("exit 0\n");
  });

  test("logs go to stderr: stdout of --json stays parseable", async () => {
    const out = await run(sandbox, ["agents", "--json"]);
    expect(out.exitCode).toBe(0);
    expect(() => JSON.parse(out.stdout)).not.toThrow();
  });
});

describe("no Docker", () => {
  test("no docker CLI: one line that says so and how to fix it, no stack trace, nothing created", async () => {
    const sandbox = makeSandbox({ PATH: "/nonexistent-bin" });
    const proc = Bun.spawn([BIN, "up", "--yes", "--", "true"], { cwd: sandbox.project, env: sandbox.env, stdout: "pipe", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(1);
    expect(stderr).toContain("bottle: the docker CLI is not installed (or not on PATH)");
    expect(stderr).toContain("fix: install Docker");
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  test("daemon down: one line that says so and how to fix it", async () => {
    const sandbox = makeSandbox({ DOCKER_HOST: "unix:///nonexistent/docker.sock" });
    const proc = Bun.spawn([BIN, "up", "--yes", "--", "true"], { cwd: sandbox.project, env: sandbox.env, stdout: "pipe", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(1);
    expect(stderr).toContain("bottle: the Docker daemon is not running");
    expect(stderr).toContain("fix: start Docker");
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  test("a broken manifest: file, line, column, field and fix; nothing created", async () => {
    const sandbox = makeSandbox({ DOCKER_HOST: "unix:///nonexistent/docker.sock" });
    writeFile(join(sandbox.config, "bottles", "default.yaml"), "egress:\n  allow:\n    - https://x.com/\n  alow_private: []\n");
    const proc = Bun.spawn([BIN, "up", "--yes"], { cwd: sandbox.project, env: sandbox.env, stdout: "pipe", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).not.toBe(0);
    expect(stderr).toContain("default.yaml:3:7: egress.allow[0]: expected a host name");
    expect(stderr).toContain("write the host only: x.com");
    expect(stderr).toContain("alow_private");
    expect(stderr).toContain("did you mean");
  });
});

describeDocker("the compiled binary with the real engine", () => {
  test(
    "a branch bottle from the compiled binary: its commit comes back and bottle branches, diff and merge take it",
    async () => {
      const repo = makeSandbox();
      writeHostGitConfig(repo);
      initRepo(repo, repo.project, { "README.md": "e2e\n" });
      const agent = uniqueId("e2e");
      writeFile(join(repo.config, "agents", `${agent}.md`), "---\ndescription: e2e\n---\n");
      try {
        const up = await run(repo, ["up", agent, "--yes", "--branch", "--", "sh", "-c", "echo done > e2e.txt && git add e2e.txt && git -c user.name=a -c user.email=a@b.test commit -qm 'from the binary' && git log --oneline | wc -l"]);
        expect(up.exitCode).toBe(0);
        expect(up.stdout.trim()).toBe("2");
        const branches = JSON.parse((await run(repo, ["branches", "--json"])).stdout) as Array<{ branch: string; ahead: number }>;
        expect(branches).toEqual([expect.objectContaining({ branch: `bottle/${agent}`, ahead: 1 })]);
        expect((await run(repo, ["diff", `bottle-${agent}`])).stdout).toContain("+done");
        expect((await run(repo, ["merge", `bottle-${agent}`])).exitCode).toBe(0);
        expect(readFileSync(join(repo.project, "e2e.txt"), "utf8")).toBe("done\n");
      } finally {
        removeLabelled(`bottle.agent=${agent}`);
      }
    },
    600_000,
  );
});
