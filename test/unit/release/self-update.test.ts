import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BottleError } from "../../../lib/errors.ts";
import { recordingExec } from "../../helpers/exec.ts";
import { sha256Hex } from "../../../lib/release/checksums.ts";
import { machineTarget, selfUpdate, type Fetch } from "../../../lib/release/self-update.ts";
import { cleanupTempDirs, tempDir } from "../../helpers/unit.ts";

afterAll(cleanupTempDirs);

const BASE = "http://releases.invalid/r";
const TARBALL = new TextEncoder().encode("pretend this is a tarball");

/** A fetch that serves `files` under BASE and records the URLs asked for. */
function fakeFetch(files: Record<string, Uint8Array | string>): Fetch & { urls: string[] } {
  const urls: string[] = [];
  const fn = async (url: string) => {
    urls.push(url);
    const name = url.slice(BASE.length + 1);
    const body = files[name];
    return body === undefined ? new Response("not found", { status: 404 }) : new Response(body);
  };
  return Object.assign(fn, { urls });
}

function installed(): string {
  const dir = tempDir();
  const target = join(dir, "bottle");
  writeFileSync(target, "#!/bin/sh\necho old\n", { mode: 0o755 });
  return target;
}

const env = { BOTTLE_DOWNLOAD_URL: BASE, BOTTLE_TARGET: "linux-x64" };

async function failure(promise: Promise<unknown>): Promise<BottleError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(BottleError);
    return error as BottleError;
  }
  throw new Error("expected the update to fail");
}

describe("bottle update refuses before touching anything", () => {
  test("no network: a clear error with a fix", async () => {
    const target = installed();
    const before = readFileSync(target);
    const offline: Fetch = async () => {
      throw new TypeError("Unable to connect. Is the computer able to access the url?");
    };
    const error = await failure(selfUpdate({ target, env, exec: recordingExec(), fetch: offline }));
    expect(error.message).toContain(`cannot download ${BASE}/SHA256SUMS`);
    expect(error.fix).toContain("network");
    expect(readFileSync(target)).toEqual(before);
  });

  test("HTTP errors name the URL", async () => {
    const error = await failure(selfUpdate({ target: installed(), env, exec: recordingExec(), fetch: fakeFetch({}) }));
    expect(error.message).toContain("HTTP 404");
    expect(error.fix).toContain("BOTTLE_VERSION");
  });

  test("missing sum: fail closed, the tarball is not even downloaded", async () => {
    const fetch = fakeFetch({ SHA256SUMS: `${"a".repeat(64)}  bottle-darwin-arm64.tar.gz\n`, "bottle-linux-x64.tar.gz": TARBALL });
    const error = await failure(selfUpdate({ target: installed(), env, exec: recordingExec(), fetch }));
    expect(error.message).toContain("no checksum for bottle-linux-x64.tar.gz");
    expect(fetch.urls).toEqual([`${BASE}/SHA256SUMS`]);
  });

  test("mismatch: refused, nothing extracted or written", async () => {
    const target = installed();
    const before = readFileSync(target);
    const exec = recordingExec();
    const fetch = fakeFetch({ SHA256SUMS: `${"b".repeat(64)}  bottle-linux-x64.tar.gz\n`, "bottle-linux-x64.tar.gz": TARBALL });
    const error = await failure(selfUpdate({ target, env, exec, fetch }));
    expect(error.message).toContain("checksum mismatch for bottle-linux-x64.tar.gz");
    expect(error.message).toContain(sha256Hex(TARBALL));
    expect(exec.calls).toEqual([]);
    expect(readFileSync(target)).toEqual(before);
  });

  test("Homebrew installs are left to brew", async () => {
    const cellar = join(tempDir(), "Cellar", "bottle", "1.0.0", "bin");
    mkdirSync(cellar, { recursive: true });
    writeFileSync(join(cellar, "bottle"), "x");
    const error = await failure(selfUpdate({ target: join(cellar, "bottle"), env, exec: recordingExec(), fetch: fakeFetch({}) }));
    expect(error.fix).toContain("brew upgrade bottle");
  });

  test("a missing target or a directory", async () => {
    const dir = tempDir();
    expect((await failure(selfUpdate({ target: join(dir, "nope"), env, exec: recordingExec(), fetch: fakeFetch({}) }))).message).toContain("does not exist");
    expect((await failure(selfUpdate({ target: dir, env, exec: recordingExec(), fetch: fakeFetch({}) }))).message).toContain("is not a file");
  });
});

describe("machineTarget", () => {
  test("BOTTLE_TARGET forces a build and is validated", async () => {
    expect(await machineTarget(recordingExec(), { BOTTLE_TARGET: "linux-x64-baseline" })).toEqual({ target: "linux-x64-baseline" });
    await expect(machineTarget(recordingExec(), { BOTTLE_TARGET: "linux-mips" })).rejects.toThrow("not a release build");
  });

  test("an x64 process on macOS asks sysctl about Rosetta", async () => {
    const exec = recordingExec((argv) => (argv[0] === "sysctl" ? { stdout: "1\n" } : undefined));
    expect((await machineTarget(exec, {}, "darwin", "x64")).target).toBe("darwin-arm64");
    expect(exec.calls.map((c) => c.argv)).toEqual([["sysctl", "-n", "sysctl.proc_translated"]]);
    const native = recordingExec((argv) => (argv[0] === "sysctl" ? { exitCode: 1, stderr: "unknown oid" } : undefined));
    expect((await machineTarget(native, {}, "darwin", "x64")).target).toBe("darwin-x64");
    expect((await machineTarget(recordingExec(), {}, "darwin", "arm64")).target).toBe("darwin-arm64");
  });

  test("unsupported platforms are refused", async () => {
    await expect(machineTarget(recordingExec(), {}, "win32", "x64")).rejects.toThrow("WSL");
  });
});
