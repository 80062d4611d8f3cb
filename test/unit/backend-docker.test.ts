import { describe, expect, test } from "bun:test";
import {
  bottleContainerSpec,
  bottleLabels,
  gateContainerSpec,
  isNameConflict,
  listBottleObjects,
} from "../../lib/backends/docker.ts";
import { Docker } from "../../lib/docker.ts";
import { recordingExec } from "../../lib/exec.ts";
import { LABELS } from "../../lib/plan.ts";
import { selfTestProblems, selfTestScript } from "../../lib/selftest.ts";
import { makePlan } from "../helpers/unit.ts";

describe("the bottle container", () => {
  const plan = makePlan({ workspace: { mode: "mount", hostPath: "/home/u/p", readonlyPaths: [".git/config", ".git/hooks"], user: { uid: 1234, gid: 1234 } } });
  const spec = bottleContainerSpec(plan, "172.30.0.2", { a: "b" });

  test("sits only on the internal network, resolves through the gate, proxies through the gate", () => {
    expect(spec.network).toBe(plan.networks.internal);
    expect(spec.dns).toEqual(["172.30.0.2"]);
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

  test("mounts the workspace, with the host repo's hooks and config read-only on top", () => {
    expect(spec.mounts).toEqual([
      { source: "/home/u/p", target: "/workspace" },
      { source: "/home/u/p/.git/config", target: "/workspace/.git/config", readonly: true },
      { source: "/home/u/p/.git/hooks", target: "/workspace/.git/hooks", readonly: true },
    ]);
  });

  test("carries no env value besides the proxy settings and its name", () => {
    expect(Object.keys(spec.env ?? {}).sort()).toEqual(["BOTTLE_NAME", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"]);
  });

  test("uses gVisor only when the plan chose it", () => {
    expect(spec.runtime).toBeUndefined();
    expect(bottleContainerSpec({ ...plan, runtime: "runsc" }, "x", {}).runtime).toBe("runsc");
  });
});

describe("the gate container", () => {
  test("drops every capability but binding port 53", () => {
    const spec = gateContainerSpec(makePlan(), {}, "/state/logs");
    expect(spec.capDrop).toEqual(["ALL"]);
    expect(spec.capAdd).toEqual(["NET_BIND_SERVICE"]);
    expect(spec.networkAliases).toEqual(["gate"]);
    expect(spec.mounts).toEqual([{ source: "/state/logs", target: "/var/log/bottle" }]);
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

  test("probes the gate's egress-side address directly and a reserved name through the proxy", () => {
    const script = selfTestScript(makePlan(), "172.31.0.3");
    expect(script).toContain("--noproxy '*'");
    expect(script).toContain("http://172.31.0.3:3128/");
    expect(script).toContain("-x http://gate:3128 http://bottle-self-test.invalid/");
  });
});
