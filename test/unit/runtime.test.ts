import { describe, expect, test } from "bun:test";
import { Docker } from "../../lib/docker.ts";
import { recordingExec } from "../helpers/exec.ts";
import { chooseRuntime, planDockerEngine } from "../../lib/backends/docker/runtime.ts";

function dockerWith(runtimes: string[], probeExit: number) {
  const exec = recordingExec((argv) => {
    if (argv[1] === "info") return { stdout: JSON.stringify({ Runtimes: Object.fromEntries(runtimes.map((r) => [r, {}])) }) };
    if (argv[1] === "run") return { exitCode: probeExit, stderr: probeExit ? "cannot run with network enabled in root network namespace" : "" };
    return undefined;
  });
  return { docker: new Docker(exec, "docker"), exec };
}

describe("gVisor is used only when a probe container starts under it", () => {
  test("not registered: runc, and no probe container", async () => {
    const { docker, exec } = dockerWith(["runc"], 0);
    expect(await chooseRuntime(docker, "img")).toBe("runc");
    expect(exec.calls.some((call) => call.argv[1] === "run")).toBe(false);
  });

  test("registered, at plan time (no side effects): runsc, no probe yet", async () => {
    const { docker, exec } = dockerWith(["runc", "runsc"], 1);
    expect(planDockerEngine(await docker.info()).runtime).toBe("runsc");
    expect(planDockerEngine({ ...(await docker.info()), runtimes: ["runc"] }).runtime).toBe("runc");
    expect(exec.calls.some((call) => call.argv[1] === "run")).toBe(false);
  });

  test("registered but the probe fails (as on this CI machine): runc", async () => {
    const { docker, exec } = dockerWith(["runc", "runsc"], 125);
    expect(await chooseRuntime(docker, "img")).toBe("runc");
    const probe = exec.calls.find((call) => call.argv[1] === "run")!;
    expect(probe.argv).toEqual(["docker", "run", "--rm", "--runtime", "runsc", "--network", "none", "--entrypoint", "true", "img"]);
  });

  test("registered and the probe starts: runsc", async () => {
    const { docker } = dockerWith(["runc", "runsc"], 0);
    expect(await chooseRuntime(docker, "img")).toBe("runsc");
  });
});
