import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "bun:test";
import { bottleContainerSpec } from "../../lib/backends/docker/container.ts";
import { containerHandle } from "../../lib/backends/docker/handle.ts";
import { gateAddresses, gateConfigStream, gateContainerSpec } from "../../lib/backends/gate.ts";
import { bottleLabels, isNameConflict, listBottleObjects } from "../../lib/backends/objects.ts";
import { passwdEntries } from "../../lib/provision.ts";
import { Docker } from "../../lib/docker.ts";
import { EGRESS_READY_LINE, egressReadyLine, readyLineAddresses, readyLineCa } from "../../lib/gates/egress/daemon/ready-line.ts";
import { recordingExec } from "../helpers/exec.ts";
import { LABELS } from "../../lib/plan.ts";
import { containerArgs } from "../../lib/docker.ts";
import { HOST_OBJECTS_MOUNT } from "../../lib/git/private-gitdir.ts";
import { PRIVATE_GITDIR, workspaceGitFiles } from "../../lib/git/workspace-git.ts";
import { createTar } from "../../lib/tar.ts";
import { selfTestProblems, selfTestScript } from "../../lib/selftest.ts";
import { cleanupTempDirs, makePlan, tempDir } from "../helpers/unit.ts";

afterAll(cleanupTempDirs);

describe("the bottle container", () => {
  const git = { repo: "/home/u/p", shape: "dir" as const, objects: "/home/u/p/.git/objects", submodules: [{ path: "lib/sub", gitfile: true }, { path: "vendor/old", gitfile: false }], mountPoints: [] };
  const plan = makePlan({ workspace: { mode: "mount", hostPath: "/home/u/p", git, user: { uid: 1234, gid: 1234 } } });
  const spec = bottleContainerSpec(plan, { gate: "198.18.4.2", bottle: "198.18.4.3" }, { a: "b" });

  test("sits only on the internal network at its own address, resolves through the gate, proxies through the gate", () => {
    expect(spec.network).toBe(plan.networks.internal);
    expect(spec.ip).toBe("198.18.4.3");
    expect(spec.dns).toEqual(["198.18.4.2"]);
    expect(spec.extraHosts).toEqual({ gate: "198.18.4.2" });
    expect(spec.env?.HTTPS_PROXY).toBe(`http://gate:${plan.egress.proxyPort}`);
    expect(spec.env?.https_proxy).toBe(spec.env?.HTTPS_PROXY);
    expect(spec.env?.NO_PROXY).toBe("localhost,127.0.0.1,::1");
    expect(spec.publish ?? []).toEqual([]);
  });

  test("runs unprivileged as the workspace owner", () => {
    expect(spec.user).toBe("1234:1234");
    expect(spec.capDrop).toEqual(["ALL"]);
    expect(spec.capAdd ?? []).toEqual([]);
    expect(spec.securityOpt).toContain("no-new-privileges");
    expect(spec.pidsLimit).toBeGreaterThan(0);
  });

  test("runs under an init that reaps orphans (their zombies would use up the pids limit)", () => {
    expect(spec.init).toBe(true);
    expect(spec.command).toEqual(["sleep", "infinity"]);
  });

  test("mounts the workspace; its .git is a labelled volume of the bottle's own, the host's objects and the submodules' .git read-only", () => {
    const empty = workspaceGitFiles(plan.name).empty;
    expect(spec.mounts).toEqual([
      { source: "/home/u/p", target: "/workspace" },
      { target: "/workspace/.git", volume: { labels: { a: "b" } } },
      { source: "/home/u/p/.git/objects", target: HOST_OBJECTS_MOUNT, readonly: true },
      // Each directory down to a submodule is a mount point too, so none can be renamed away.
      { source: "/home/u/p/lib", target: "/workspace/lib" },
      { source: "/home/u/p/vendor", target: "/workspace/vendor" },
      { source: "/home/u/p/lib/sub", target: "/workspace/lib/sub" },
      { source: "/home/u/p/vendor/old", target: "/workspace/vendor/old" },
      { source: "/home/u/p/lib/sub/.git", target: "/workspace/lib/sub/.git", readonly: true },
      { source: empty, target: "/workspace/vendor/old/.git", readonly: true },
    ]);
    expect(containerArgs(spec)).toContain("type=volume,target=/workspace/.git,volume-label=a=b");
  });

  test("a gitfile .git (a linked worktree) is shadowed by a read-only gitfile pointing at the private git dir", () => {
    const worktree = makePlan({ workspace: { mode: "mount", hostPath: "/home/u/wt", git: { ...git, shape: "file", objects: undefined, submodules: [] }, user: { uid: 1234, gid: 1234 } } });
    const mounts = bottleContainerSpec(worktree, { gate: "198.18.4.2", bottle: "198.18.4.3" }, {}).mounts;
    expect(mounts).toEqual([
      { source: "/home/u/wt", target: "/workspace" },
      { source: workspaceGitFiles(worktree.name).gitfile, target: "/workspace/.git", readonly: true },
      { target: PRIVATE_GITDIR, volume: { labels: {} } },
    ]);
  });

  test("carries no env value besides the proxy settings and its name", () => {
    expect(Object.keys(spec.env ?? {}).sort()).toEqual(["BOTTLE_NAME", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"]);
  });

  test("uses gVisor only when the plan chose it", () => {
    expect(spec.runtime).toBeUndefined();
    expect(bottleContainerSpec({ ...plan, runtime: "runsc" }, { gate: "x", bottle: "y" }, {}).runtime).toBe("runsc");
  });
});

describe("the gate container", () => {
  test("drops every capability but binding port 53", () => {
    const spec = gateContainerSpec(makePlan(), {}, "/state/logs");
    expect(spec.capDrop).toEqual(["ALL"]);
    expect(spec.capAdd).toEqual(["NET_BIND_SERVICE"]);
    expect(spec.networkAliases).toEqual(["gate"]);
    expect(spec.mounts).toEqual([{ source: "/state/logs", target: "/var/log/bottle" }]);
    // Its config arrives on stdin as it starts.
    expect(spec.interactive).toBe(true);
  });

  test("runs its daemons under an init that reaps what they orphan", () => {
    expect(gateContainerSpec(makePlan(), {}, "/state/logs").init).toBe(true);
    expect(gateContainerSpec(makePlan(), {}, "/state/logs", ["127.2.0.1:3128:3128"]).init).toBe(true);
  });

  test("its config goes on stdin as the archive's length on a line, then the archive", () => {
    const files = [{ path: "etc/bottle/egress.json", content: "{}\n", mode: 0o600, uid: 0, gid: 0 }];
    const stream = gateConfigStream(files);
    const archive = createTar(files);
    const newline = stream.indexOf(10);
    expect(new TextDecoder().decode(stream.subarray(0, newline))).toBe(String(archive.length));
    expect(stream.subarray(newline + 1)).toEqual(archive);
  });

  test("its addresses come from its ready line: the given internal one, and the other one is the egress network's", () => {
    const line = egressReadyLine(["198.18.4.2", "172.22.0.5"]).trimEnd();
    expect(gateAddresses(line, "198.18.4.2", "g")).toEqual({ gateIp: "198.18.4.2", gateEgressIp: "172.22.0.5" });
    expect(gateAddresses(egressReadyLine(["172.22.0.5", "198.18.4.2"]), "198.18.4.2", "g")).toEqual({ gateIp: "198.18.4.2", gateEgressIp: "172.22.0.5" });
    // A VM's gate is on the egress network only.
    expect(gateAddresses(egressReadyLine(["172.22.0.5"]), undefined, "g")).toEqual({ gateIp: "172.22.0.5", gateEgressIp: "172.22.0.5" });
  });

  test("with credential routes the ready line also carries their CA; the addresses are read past it", () => {
    const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const line = egressReadyLine(["198.18.4.2", "172.22.0.5"], ca).trimEnd();
    expect(line).toMatch(/^egress gate ready 198\.18\.4\.2 172\.22\.0\.5 ca=[A-Za-z0-9+/]+=*$/);
    expect(readyLineCa(line)).toBe(ca);
    expect(gateAddresses(line, "198.18.4.2", "g")).toEqual({ gateIp: "198.18.4.2", gateEgressIp: "172.22.0.5", ca });
    expect(readyLineCa(egressReadyLine(["198.18.4.2"]))).toBeUndefined();
  });

  test("a ready line without the expected addresses stops the launch", () => {
    expect(() => gateAddresses(egressReadyLine(["198.18.4.2"]), "198.18.4.2", "g")).toThrow("the gate g is missing an address on its networks (it reported: 198.18.4.2)");
    expect(() => gateAddresses(egressReadyLine(["172.22.0.5"]), "198.18.4.2", "g")).toThrow(/missing an address/);
    expect(() => gateAddresses(EGRESS_READY_LINE, undefined, "g")).toThrow(/reported: none/);
    expect(readyLineAddresses("egress gate ready fe80::1 10.0.0.2 junk")).toEqual(["10.0.0.2"]);
  });
});

describe("the agent's passwd and group lines", () => {
  test("for a uid other than the image's 1000: both files read in one exec, the agent's lines replaced", async () => {
    const exec = recordingExec(() => ({ stdout: "root:x:0:0:root:/root:/bin/bash\nagent:x:1000:1000::/home/agent:/bin/bash\n\0root:x:0:\nagent:x:1000:\n" }));
    const plan = makePlan({ workspace: { mode: "mount", hostPath: "/home/u/p", user: { uid: 501, gid: 20 } } });
    const entries = await passwdEntries(containerHandle(new Docker(exec, "docker"), plan.containers.bottle), plan);
    expect(exec.calls).toHaveLength(1);
    expect(exec.calls[0]!.argv.slice(0, 2)).toEqual(["docker", "exec"]);
    expect(entries.map((entry) => [entry.path, entry.content])).toEqual([
      ["etc/passwd", "root:x:0:0:root:/root:/bin/bash\nagent:x:501:20::/home/agent:/bin/bash\n"],
      ["etc/group", "root:x:0:\nagent:x:20:\n"],
    ]);
  });

  test("the image's own uid needs nothing", async () => {
    const exec = recordingExec();
    const plan = makePlan({ workspace: { mode: "mount", hostPath: "/p", user: { uid: 1000, gid: 1000 } } });
    expect(await passwdEntries(containerHandle(new Docker(exec, "docker"), plan.containers.bottle), plan)).toEqual([]);
    expect(exec.calls).toHaveLength(0);
  });
});

describe("labels and listing", () => {
  test("every object is labelled with name, agent, role and the launching state dir", () => {
    const labels = bottleLabels(makePlan({ name: "bottle-x" }), "gate", "1.2.3");
    expect(labels[LABELS.name]).toBe("bottle-x");
    expect(labels[LABELS.role]).toBe("gate");
    expect(labels[LABELS.version]).toBe("1.2.3");
    expect(labels[LABELS.state]).toBeTruthy();
  });

  test("ls/down/cleanup see only this state dir's bottles; name claiming sees all", async () => {
    const exec = recordingExec();
    const docker = new Docker(exec, "docker");
    await listBottleObjects(docker, { scope: "own" });
    await listBottleObjects(docker, { scope: "all", name: "bottle-y" });
    const filters = exec.calls.map((call) => call.argv.filter((_, i, a) => a[i - 1] === "--filter"));
    expect(filters[0]).toEqual([`label=${LABELS.name}`, expect.stringMatching(/^label=bottle\.state=\//)]);
    expect(filters[2]).toEqual([`label=${LABELS.name}=bottle-y`]);
  });

  test("a lost race for a name is recognised", () => {
    expect(isNameConflict(new Error('Conflict. The container name "/bottle-x" is already in use'))).toBe(true);
    expect(isNameConflict(new Error("network with name bottle-x-internal already exists"))).toBe(true);
    expect(isNameConflict(new Error("no such image"))).toBe(false);
  });
});

describe("the launch self-test", () => {
  test("passes only when the direct connection failed and the gate denied", () => {
    expect(selfTestProblems("DENIED=403\n")).toEqual([]);
    expect(selfTestProblems("DIRECT-OPEN\nDENIED=403\n")).toEqual(["a direct connection past the egress gate succeeded"]);
    expect(selfTestProblems("DENIED=200\n")[0]).toContain("not denied");
    expect(selfTestProblems("")[0]).toContain("no answer");
  });

  test("probes the gate's egress-side address (read from stdin) directly and a reserved name through the proxy", () => {
    const script = selfTestScript(makePlan());
    expect(script).toContain("read -r ip");
    expect(script).toContain("--noproxy '*'");
    expect(script).toContain('"http://$ip:3128/"');
    expect(script).toContain("-x http://gate:3128 http://bottle-self-test.invalid/");
  });

  /** Runs the real script under sh with a stand-in curl: `direct` is what the direct probe meets, the proxy answers 000 `starting` times first. */
  function runScript(direct: { rc: number; stderr: string }, starting: number, answer = "403", stdin = "172.31.0.3\n"): string {
    proxyCalls = 0;
    const bin = tempDir("selftest-bin");
    const count = join(bin, "count");
    writeFileSync(count, "0");
    writeFileSync(
      join(bin, "curl"),
      [
        "#!/bin/sh",
        `case "$*" in *--noproxy*) echo "$*" > ${bin}/direct; printf '%s' '${direct.stderr}' >&2; exit ${direct.rc};; esac`,
        `n=$(cat ${count}); echo $((n + 1)) > ${count}`,
        `if [ "$n" -lt ${starting} ]; then printf 000; exit 7; fi`,
        `printf ${answer}`,
      ].join("\n"),
      { mode: 0o755 },
    );
    const out = Bun.spawnSync(["sh", "-c", selfTestScript(makePlan())], { env: { PATH: `${bin}:${process.env.PATH}` }, stdin: new TextEncoder().encode(stdin) });
    lastDirect = existsSync(join(bin, "direct")) ? readFileSync(join(bin, "direct"), "utf8") : "";
    proxyCalls = Number(readFileSync(count, "utf8"));
    return out.stdout.toString();
  }
  let lastDirect = "";
  let proxyCalls = 0;

  test("the direct probe goes to the address on stdin; no address (the gate failed) probes nothing", () => {
    expect(selfTestProblems(runScript({ rc: 28, stderr: "timed out" }, 0))).toEqual([]);
    expect(lastDirect).toContain("http://172.31.0.3:3128/");
    const out = runScript({ rc: 0, stderr: "" }, 0, "403", "");
    expect(out.trim()).toBe("GATE-DOWN");
    expect(lastDirect).toBe("");
    expect(selfTestProblems(out)).toEqual(["the gate did not start"]);
  });

  test("a direct probe that times out or finds no route is closed; a refused one reached the gate", () => {
    expect(selfTestProblems(runScript({ rc: 28, stderr: "curl: (28) Connection timed out after 100 milliseconds" }, 0))).toEqual([]);
    expect(selfTestProblems(runScript({ rc: 7, stderr: "curl: (7) Failed to connect to 172.31.0.3 port 3128: No route to host" }, 0))).toEqual([]);
    expect(selfTestProblems(runScript({ rc: 7, stderr: "curl: (7) Failed to connect to 172.31.0.3 port 3128 after 0 ms: Connection refused" }, 0))).toEqual([
      "a direct connection past the egress gate succeeded",
    ]);
    expect(selfTestProblems(runScript({ rc: 0, stderr: "" }, 0))[0]).toContain("direct connection");
  });

  test("the address comes once the gate is ready: the proxy is asked once, no polling; its answer is judged", () => {
    const timeout = { rc: 28, stderr: "timed out" };
    expect(runScript(timeout, 0)).toContain("DENIED=403");
    expect(proxyCalls).toBe(1);
    expect(selfTestScript(makePlan())).not.toContain("sleep");
    expect(selfTestProblems(runScript(timeout, 0, "200"))[0]).toContain("not denied");
    // A proxy that does not answer is a failure, not a wait.
    expect(selfTestProblems(runScript(timeout, 1))).toEqual(["the gate's proxy did not answer"]);
    expect(proxyCalls).toBe(1);
  });
});
