import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { BottleError } from "../../lib/errors.ts";
import { CommandError, describeArgv, realExec, stderrTail } from "../../lib/exec.ts";
import { recordingExec } from "../helpers/exec.ts";
import { caught, cleanupTempDirs, tempDir } from "../helpers/unit.ts";

afterAll(cleanupTempDirs);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await Bun.sleep(20);
  }
  return condition();
}

describe("realExec.run", () => {
  test("captures stdout and stderr separately", async () => {
    const result = await realExec.run(["sh", "-c", "printf out; printf err >&2"]);
    expect(result).toEqual({ argv: ["sh", "-c", "printf out; printf err >&2"], exitCode: 0, stdout: "out", stderr: "err" });
  });

  test("reads both pipes concurrently: 2 MiB on stderr before 2 MiB on stdout does not deadlock", async () => {
    const size = 2 * 1024 * 1024;
    // stderr is written (and fills its pipe) before anything goes to stdout:
    // reading stdout to the end first would block forever.
    const script = `head -c ${size} /dev/zero | tr '\\0' e >&2; head -c ${size} /dev/zero | tr '\\0' o`;
    const run = realExec.run(["sh", "-c", script], { timeoutMs: 20_000, check: false });
    const result = await Promise.race([run, Bun.sleep(15_000).then(() => "deadlock" as const)]);
    if (result === "deadlock") throw new Error("realExec.run deadlocked on a chatty stderr");
    expect(result.exitCode).toBe(0);
    expect(result.stderr.length).toBe(size);
    expect(result.stdout.length).toBe(size);
    expect(/^e+$/.test(result.stderr)).toBe(true);
    expect(/^o+$/.test(result.stdout)).toBe(true);
  });

  test("a child written in Bun flooding both streams (>1 MB each) completes", async () => {
    const code = [
      "const mb = 'x'.repeat(1024 * 1024);",
      "for (let i = 0; i < 3; i++) { await Bun.write(Bun.stderr, mb); await Bun.write(Bun.stdout, mb); }",
    ].join("\n");
    const run = realExec.run([process.execPath, "-e", code], { timeoutMs: 20_000, check: false });
    const result = await Promise.race([run, Bun.sleep(15_000).then(() => "deadlock" as const)]);
    if (result === "deadlock") throw new Error("realExec.run deadlocked");
    expect(result.exitCode).toBe(0);
    expect(result.stdout.length).toBe(3 * 1024 * 1024);
    expect(result.stderr.length).toBe(3 * 1024 * 1024);
  });

  test("a non-zero exit throws a CommandError naming the command and showing the stderr tail", async () => {
    const lines = Array.from({ length: 20 }, (_, i) => `L${String(i + 1).padStart(2, "0")}`);
    const script = `printf '${lines.join("\\n")}\\n' >&2; printf 'not shown'; exit 3`;
    const error = await caught(realExec.run(["sh", "-c", script]));
    expect(error).toBeInstanceOf(CommandError);
    expect(error).toBeInstanceOf(BottleError);
    const commandError = error as CommandError;
    expect(commandError.name).toBe("CommandError");
    expect(commandError.exitCode).toBe(1);
    expect(commandError.result.exitCode).toBe(3);
    expect(commandError.result.stdout).toBe("not shown");
    const [first, ...tail] = commandError.message.split("\n");
    expect(first).toBe(`sh -c ${JSON.stringify(script)} failed (exit code: 3)`);
    // The last 12 lines of stderr, in order; stdout is not used when stderr has text.
    expect(tail).toEqual(lines.slice(-12));
    expect(tail).not.toContain("L08");
    expect(tail.join("\n")).not.toContain("not shown");
  });

  test("the error falls back to stdout when stderr is empty", async () => {
    const error = (await caught(realExec.run(["sh", "-c", "echo only-on-stdout; exit 2"]))) as CommandError;
    expect(error.message).toContain("failed (exit code: 2)\nonly-on-stdout");
  });

  test("check:false returns the exit code instead of throwing", async () => {
    const result = await realExec.run(["sh", "-c", "printf partial; exit 7"], { check: false });
    expect(result.exitCode).toBe(7);
    expect(result.stdout).toBe("partial");
  });

  test("stdin is delivered and closed (string and bytes)", async () => {
    const text = await realExec.run(["cat"], { stdin: "hello\nworld" });
    expect(text.stdout).toBe("hello\nworld");
    const bytes = new Uint8Array([0, 1, 2, 255, 10]);
    const counted = await realExec.run(["sh", "-c", "wc -c"], { stdin: bytes });
    expect(counted.stdout.trim()).toBe("5");
  });

  test("a large stdin echoed back does not deadlock", async () => {
    const big = "y".repeat(3 * 1024 * 1024);
    const run = realExec.run(["cat"], { stdin: big, timeoutMs: 20_000 });
    const result = await Promise.race([run, Bun.sleep(15_000).then(() => "deadlock" as const)]);
    if (result === "deadlock") throw new Error("stdin + stdout deadlock");
    expect(result.stdout.length).toBe(big.length);
  });

  test("without stdin the child sees an empty, closed stdin", async () => {
    const result = await realExec.run(["sh", "-c", "cat; echo done"], { timeoutMs: 5000 });
    expect(result.stdout).toBe("done\n");
  });

  test("env is added on top of the current environment; cwd is honoured", async () => {
    const dir = tempDir();
    const result = await realExec.run(["sh", "-c", 'printf "%s|%s|%s" "$BOTTLE_UNIT_X" "$PATH" "$(pwd -P)"'], {
      env: { BOTTLE_UNIT_X: "it's $set" },
      cwd: dir,
    });
    const [x, path, cwd] = result.stdout.split("|");
    expect(x).toBe("it's $set");
    expect(path).toBe(process.env.PATH!);
    expect(cwd).toBe(realpathSync(dir));
  });

  test("timeoutMs kills the child (SIGKILL → exit code 137)", async () => {
    const started = performance.now();
    const result = await realExec.run(["sleep", "30"], { timeoutMs: 200, check: false });
    expect(result.exitCode).toBe(137);
    expect(performance.now() - started).toBeLessThan(5000);
  });

  test("a timed-out run throws when check is on", async () => {
    const error = (await caught(realExec.run(["sleep", "30"], { timeoutMs: 200 }))) as CommandError;
    expect(error).toBeInstanceOf(CommandError);
    expect(error.result.exitCode).toBe(137);
    expect(error.message).toStartWith("sleep 30 failed (exit code: 137)");
  });

  test("timeoutMs bounds the wait even when a grandchild keeps the pipes open", async () => {
    // `sh` is killed at the deadline, but the `sleep` it started still holds
    // stdout/stderr; the run should still come back close to the timeout.
    const started = performance.now();
    const run = realExec.run(["sh", "-c", "sleep 6; echo late"], { timeoutMs: 300, check: false });
    const result = await Promise.race([run, Bun.sleep(3000).then(() => "still waiting" as const)]);
    expect(result === "still waiting" ? result : result.exitCode).toBe(137);
    expect(performance.now() - started).toBeLessThan(3000);
    await run; // let the orphaned sleep finish so nothing leaks into later tests
  }, 15_000);

  test("exit by signal reports 128+N", async () => {
    const term = await realExec.run(["sh", "-c", "kill -TERM $$"], { check: false });
    expect(term.exitCode).toBe(128 + 15);
    const kill = await realExec.run(["sh", "-c", "kill -KILL $$"], { check: false });
    expect(kill.exitCode).toBe(128 + 9);
    const hup = await realExec.run(["sh", "-c", "kill -HUP $$"], { check: false });
    expect(hup.exitCode).toBe(128 + 1);
  });

  test("stdoutFile receives the exact bytes (a bundle is binary); stdout is then empty, stderr still captured", async () => {
    const file = join(tempDir("bottle-exec-out-"), "out.bin");
    const out = await realExec.run(["sh", "-c", "printf 'a\\000\\377\\n'; echo err >&2"], { stdoutFile: file });
    expect(out.stdout).toBe("");
    expect(out.stderr).toBe("err\n");
    expect([...readFileSync(file)]).toEqual([0x61, 0, 0xff, 0x0a]);
  });

  test("a missing executable rejects (the error names it)", async () => {
    const error = await caught(realExec.run(["/nonexistent/bottle-unit-binary"]));
    expect(String(error)).toMatch(/ENOENT|not found/);
  });
});

describe("realExec.interactive", () => {
  test("a hangup (the terminal closed) goes to the child and ends neither us nor what runs after it", async () => {
    const ready = join(tempDir(), "ready");
    const child = realExec.interactive(["sh", "-c", 'trap "exit 7" HUP; echo > "$0"; while :; do sleep 0.05; done', ready]);
    // Once the child's trap is set, hang up on ourselves as a closing terminal does.
    while (!existsSync(ready)) await Bun.sleep(20);
    process.kill(process.pid, "SIGHUP");
    expect(await child).toBe(7);
    expect(process.listenerCount("SIGHUP")).toBe(0);
  });
});

describe("realExec.waitForOutput", () => {
  test("gives the line holding the pattern on stdout, and the process is stopped", async () => {
    const dir = tempDir();
    const pidFile = join(dir, "pid");
    const started = performance.now();
    const seen = await realExec.waitForOutput(["sh", "-c", `echo $$ > ${pidFile}; echo booting; echo server ready on 10.0.0.2; exec sleep 30`], "server ready", 10_000);
    expect(seen.line).toBe("server ready on 10.0.0.2");
    expect(seen.output).toContain("booting\n");
    expect(performance.now() - started).toBeLessThan(5000);
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    expect(pid).toBeGreaterThan(0);
    expect(await waitUntil(() => !alive(pid), 3000)).toBe(true);
  });

  test("finds the pattern on stderr", async () => {
    const seen = await realExec.waitForOutput(["sh", "-c", "echo nothing here; echo 'listening on :3128' >&2; exec sleep 30"], "listening on", 10_000);
    expect(seen.line).toBe("listening on :3128");
  });

  test("waits for the whole line when it is split across writes", async () => {
    const seen = await realExec.waitForOutput(["sh", "-c", "printf rea; sleep 0.3; printf 'dy 1.2'; sleep 0.3; printf '.3.4\\nnext\\n'; exec sleep 30"], "ready", 10_000);
    expect(seen.line).toBe("ready 1.2.3.4");
  });

  test("writes stdin, then closes it", async () => {
    const seen = await realExec.waitForOutput(["sh", "-c", "wc -c | sed 's/^ */got /'; echo done; exec sleep 30"], "done", 10_000, { stdin: Promise.resolve("12345") });
    expect(seen.line).toBe("done");
    expect(seen.output).toContain("got 5");
  });

  test("no line when the process exits without printing the pattern; the output is kept", async () => {
    const started = performance.now();
    const seen = await realExec.waitForOutput(["sh", "-c", "echo starting; echo failed >&2; exit 1"], "ready", 10_000);
    expect(seen.line).toBeUndefined();
    expect(seen.output).toContain("failed");
    expect(performance.now() - started).toBeLessThan(5000);
  });

  test("no line on timeout", async () => {
    const started = performance.now();
    const seen = await realExec.waitForOutput(["sh", "-c", "echo waiting; exec sleep 30"], "ready", 300);
    expect(seen).toEqual({ output: "waiting\n", timedOut: true });
    expect(performance.now() - started).toBeLessThan(5000);
  });
});

describe("describeArgv", () => {
  test("plain arguments are shown as they are", () => {
    expect(describeArgv(["docker", "run", "--name=x", "a@b:c,d/e.f%g+h"])).toBe("docker run --name=x a@b:c,d/e.f%g+h");
  });

  test("arguments needing quotes are JSON-quoted", () => {
    expect(describeArgv(["sh", "-c", "echo hi"])).toBe('sh -c "echo hi"');
    expect(describeArgv(["printf", ""])).toBe('printf ""');
    expect(describeArgv(["echo", "it's"])).toBe(`echo "it's"`);
    expect(describeArgv(["echo", 'say "x"'])).toBe('echo "say \\"x\\""');
    expect(describeArgv(["echo", "$HOME"])).toBe('echo "$HOME"');
    expect(describeArgv(["echo", "a\nb"])).toBe('echo "a\\nb"');
  });

  test("shows at most `max` arguments, then an ellipsis", () => {
    expect(describeArgv(["a", "b", "c", "d", "e", "f"])).toBe("a b c d e f");
    expect(describeArgv(["a", "b", "c", "d", "e", "f", "g"])).toBe("a b c d e f …");
    expect(describeArgv(["a", "b", "c"], 2)).toBe("a b …");
    expect(describeArgv([])).toBe("");
  });
});

describe("stderrTail", () => {
  test("keeps the last lines and drops trailing blank space", () => {
    expect(stderrTail("1\n2\n3\n4\n\n\n", 2)).toBe("3\n4");
    expect(stderrTail("")).toBe("");
  });
});

describe("recordingExec", () => {
  test("records run calls with their options and answers from the responder", async () => {
    const exec = recordingExec((argv) => (argv[1] === "version" ? { stdout: "27.0.1\n" } : undefined));
    const version = await exec.run(["docker", "version"], { timeoutMs: 5 });
    const other = await exec.run(["docker", "ps"]);
    expect(version).toEqual({ argv: ["docker", "version"], exitCode: 0, stdout: "27.0.1\n", stderr: "" });
    expect(other.stdout).toBe("");
    expect(exec.calls).toEqual([
      { argv: ["docker", "version"], options: { timeoutMs: 5 }, interactive: false },
      { argv: ["docker", "ps"], options: {}, interactive: false },
    ]);
  });

  test("failing answers throw a CommandError like the real one", async () => {
    const exec = recordingExec(() => ({ exitCode: 125, stderr: "docker: boom\n" }));
    const error = (await caught(exec.run(["docker", "run", "x"]))) as CommandError;
    expect(error).toBeInstanceOf(CommandError);
    expect(error.message).toBe("docker run x failed (exit code: 125)\ndocker: boom");
    expect(error.result.exitCode).toBe(125);
    expect(exec.calls).toHaveLength(1);
  });

  test("check:false returns the failing code", async () => {
    const exec = recordingExec(() => ({ exitCode: 1, stderr: "no such image" }));
    const result = await exec.run(["docker", "image", "inspect", "x"], { check: false });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toBe("no such image");
  });

  test("interactive calls are recorded and return the responder's code", async () => {
    const exec = recordingExec((argv) => (argv.includes("fail") ? { exitCode: 130 } : undefined));
    expect(await exec.interactive(["docker", "exec", "ok"], { env: { A: "1" } })).toBe(0);
    expect(await exec.interactive(["docker", "exec", "fail"])).toBe(130);
    expect(exec.calls.map((call) => [call.interactive, call.argv.at(-1)])).toEqual([
      [true, "ok"],
      [true, "fail"],
    ]);
    expect(exec.calls[0]!.options).toEqual({ env: { A: "1" } });
  });

  test("isTerminal follows the second parameter", () => {
    expect(recordingExec().isTerminal()).toBe(false);
    expect(recordingExec(undefined, true).isTerminal()).toBe(true);
  });

  test("waitForOutput is recorded and finds the pattern in the answer's stdout unless the answer fails", async () => {
    const exec = recordingExec((argv) => (argv.includes("bad") ? { exitCode: 1, stderr: "boom" } : argv.includes("good") ? { stdout: "x\nready 1.2.3.4\n" } : undefined));
    expect((await exec.waitForOutput(["docker", "logs", "good"], "ready", 10)).line).toBe("ready 1.2.3.4");
    expect(await exec.waitForOutput(["docker", "logs", "bad"], "ready", 10)).toEqual({ output: "boom" });
    expect(exec.calls.map((call) => call.argv)).toEqual([
      ["docker", "logs", "good"],
      ["docker", "logs", "bad"],
    ]);
  });
});
