import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { makeSandbox, runBottle, spawnBottle, writeFile, type Sandbox } from "../helpers/cli.ts";
import { describeDocker, docker, objectsWithLabel, uniqueId, removeLabelled } from "../helpers/docker.ts";

/** `bottle up` lifecycle on the real engine: launch, exit codes, teardown in every way it can end. */

function leftovers(agent: string) {
  return objectsWithLabel(`bottle.agent=${agent}`);
}

async function waitFor(check: () => boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await Bun.sleep(200);
  }
}

function stateDirs(sandbox: Sandbox): string[] {
  const dir = join(sandbox.state, "bottle", "bottles");
  return existsSync(dir) ? readdirSync(dir) : [];
}

describeDocker("bottle up on docker", () => {
  let sandbox: Sandbox;
  const agent = uniqueId("up");

  beforeAll(() => {
    sandbox = makeSandbox();
    chownSync(sandbox.project, 1000, 1000);
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\ndescription: lifecycle test agent\n---\nYou are a test agent.\n");
  });

  afterAll(() => removeLabelled(`bottle.agent=${agent}`));

  test("--dry-run --json prints the plan and creates nothing", async () => {
    const sorted = (text: string) => text.split("\n").sort().join(",");
    const snapshot = () => [docker("ps", "-aq"), docker("network", "ls", "-q"), docker("images", "-aq")].map(sorted).join("|");
    const before = snapshot();
    const out = await runBottle(sandbox, ["up", agent, "--dry-run", "--json"]);
    expect(out.exitCode).toBe(0);
    const plan = JSON.parse(out.stdout);
    expect(plan.name).toBe(`bottle-${agent}`);
    expect(plan.egress.allow).toContain("api.anthropic.com");
    expect(plan.containers).toEqual({ bottle: `bottle-${agent}`, gate: `bottle-${agent}-gate` });
    expect(snapshot()).toBe(before);
    expect(stateDirs(sandbox)).toEqual([]);
  });

  test("`up --yes -- claude --version` prints Claude Code's version from inside the bottle", async () => {
    const out = await runBottle(sandbox, ["up", agent, "--yes", "--", "claude", "--version"]);
    expect(out.stderr).not.toContain("bottle: ");
    expect(out.exitCode).toBe(0);
    expect(out.stdout).toMatch(/\d+\.\d+\.\d+ \(Claude Code\)/);
    expect(leftovers(agent)).toEqual({ containers: [], networks: [] });
    expect(stateDirs(sandbox)).toEqual([]);
  });

  test("a second up of an unchanged bottle builds nothing", async () => {
    const out = await runBottle(sandbox, ["up", agent, "--yes", "--", "true"]);
    expect(out.exitCode).toBe(0);
    expect(out.stderr).not.toContain("building");
    expect(out.stderr).toContain("(present)");
  });

  test("the command's exit code passes through, and an error tears everything down", async () => {
    const out = await runBottle(sandbox, ["up", agent, "--yes", "--", "sh", "-c", "echo to-stderr >&2; exit 7"]);
    expect(out.exitCode).toBe(7);
    expect(out.stderr).toContain("to-stderr");
    expect(leftovers(agent)).toEqual({ containers: [], networks: [] });
  });

  test("a gate that dies as it starts (its config never arrives) fails the launch with its own output, and leaves nothing", async () => {
    // The real engine, with the gate's stdin (its config) cut off on the way.
    const wrapper = join(sandbox.home, "docker-without-gate-config");
    writeFile(wrapper, `#!/bin/sh\nif [ "$1" = start ] && [ "$2" = --attach ]; then exec docker "$@" </dev/null; fi\nexec docker "$@"\n`);
    chmodSync(wrapper, 0o755);
    const out = await runBottle(sandbox, ["up", agent, "--yes", "--", "true"], { env: { BOTTLE_DOCKER: wrapper } });
    expect(out.exitCode).toBe(1);
    // The gate's own words are in the error.
    expect(out.stderr).toContain(`bottle: bottle-${agent}-gate stopped before it was ready; its last output:\n    gate: its config did not arrive on stdin`);
    expect(leftovers(agent)).toEqual({ containers: [], networks: [] });
    expect(stateDirs(sandbox)).toEqual([]);
  });

  test("no TTY and no --yes is an error that says what to pass, and nothing is created", async () => {
    const out = await runBottle(sandbox, ["up", agent, "--", "true"]);
    expect(out.exitCode).toBe(1);
    expect(out.stderr).toContain("--yes");
    expect(leftovers(agent)).toEqual({ containers: [], networks: [] });
  });

  test("SIGINT during the session removes everything", async () => {
    const proc = spawnBottle(sandbox, ["up", agent, "--yes", "--", "sleep", "60"]);
    await waitFor(() => docker("ps", "--filter", `label=bottle.agent=${agent}`, "--filter", "label=bottle.role=bottle", "-q") !== "");
    // The session is running; the user presses Ctrl-C.
    await Bun.sleep(500);
    proc.kill("SIGINT");
    const code = await proc.exited;
    expect(code).toBe(130);
    expect(leftovers(agent)).toEqual({ containers: [], networks: [] });
    expect(stateDirs(sandbox)).toEqual([]);
  });

  test("after SIGKILL of bottle, `bottle cleanup --yes` removes the leftovers", async () => {
    const proc = spawnBottle(sandbox, ["up", agent, "--yes", "--", "sleep", "60"]);
    await waitFor(() => docker("ps", "--filter", `label=bottle.agent=${agent}`, "--filter", "label=bottle.role=bottle", "-q") !== "");
    proc.kill("SIGKILL");
    await proc.exited;
    expect(leftovers(agent).containers.length).toBeGreaterThan(0);
    const listed = await runBottle(sandbox, ["cleanup", "--json"]);
    expect(JSON.parse(listed.stdout).map((o: { name: string }) => o.name)).toContain(`bottle-${agent}`);
    const out = await runBottle(sandbox, ["cleanup", "--yes"]);
    expect(out.exitCode).toBe(0);
    expect(leftovers(agent)).toEqual({ containers: [], networks: [] });
    expect(stateDirs(sandbox)).toEqual([]);
  });

  test("8 parallel detached launches of one agent get distinct names; ls shows them; down --all removes them", async () => {
    const runs = await Promise.all(Array.from({ length: 8 }, () => runBottle(sandbox, ["up", agent, "--yes", "--detach"])));
    for (const run of runs) expect(run.stderr.includes("bottle: ") ? run.stderr : "").toBe("");
    const names = runs.map((run) => run.stdout.trim());
    expect(new Set(names).size).toBe(8);
    for (const name of names) expect(name).toMatch(new RegExp(`^bottle-${agent}(-\\d+)?$`));
    const ls = JSON.parse((await runBottle(sandbox, ["ls", "--json"])).stdout) as Array<{ name: string; agent: string; status: string }>;
    const mine = ls.filter((row) => row.agent === agent);
    expect(mine.map((row) => row.name).sort()).toEqual([...names].sort());
    expect(mine.every((row) => row.status === "running")).toBe(true);
    // Orphan detection leaves running detached bottles alone.
    expect(JSON.parse((await runBottle(sandbox, ["cleanup", "--json"])).stdout)).toEqual([]);
    const down = await runBottle(sandbox, ["down", "--all"]);
    expect(down.exitCode).toBe(0);
    expect(leftovers(agent)).toEqual({ containers: [], networks: [] });
    expect(stateDirs(sandbox)).toEqual([]);
  }, 600_000);

  test("exec and attach reach a detached bottle; down of an unknown name is a clear error", async () => {
    const up = await runBottle(sandbox, ["up", agent, "--yes", "--detach"]);
    const name = up.stdout.trim();
    const out = await runBottle(sandbox, ["exec", name, "--", "sh", "-c", "id -u; pwd; test -w /workspace && echo writable"]);
    expect(out.exitCode).toBe(0);
    expect(out.stdout.split("\n").slice(0, 3)).toEqual(["1000", "/workspace", "writable"]);
    const missing = await runBottle(sandbox, ["down", `${name}x`]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain(`no bottle named ${name}x`);
    expect((await runBottle(sandbox, ["down", name])).exitCode).toBe(0);
    expect(leftovers(agent)).toEqual({ containers: [], networks: [] });
  });

  test("the interactive path under a pseudo-terminal: input reaches the command and the exit code passes through", async () => {
    const inner = ["up", agent, "--yes", "--", "sh", "-c", "read line; echo got:$line; exit 5"];
    const command = [...(process.env.BOTTLE_BIN ? [process.env.BOTTLE_BIN] : [process.execPath, join(import.meta.dir, "../../cmd/bottle.ts")]), ...inner]
      .map((arg) => `'${arg.replace(/'/g, "'\\''")}'`)
      .join(" ");
    const proc = Bun.spawn(["script", "-qefc", command, "/dev/null"], {
      cwd: sandbox.project,
      env: sandbox.env,
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    // Type once the bottle is up.
    await waitFor(() => docker("ps", "--filter", `label=bottle.agent=${agent}`, "--filter", "label=bottle.role=bottle", "-q") !== "");
    await Bun.sleep(1500);
    proc.stdin.write("hello-pty\n");
    await proc.stdin.flush();
    const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    expect(stdout).toContain("got:hello-pty");
    expect(code).toBe(5);
    expect(leftovers(agent)).toEqual({ containers: [], networks: [] });
  });
});
