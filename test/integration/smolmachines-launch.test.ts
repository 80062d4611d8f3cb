import { afterAll, beforeAll, expect, test } from "bun:test";
import { chownSync, existsSync, readdirSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { makeSandbox, runBottle, writeFile, type Sandbox } from "../helpers/cli.ts";
import { describeDocker, docker, objectsWithLabel, removeLabelled, uniqueId } from "../helpers/docker.ts";
import { ensureRegistryTestImages } from "../helpers/registry-images.ts";

/**
 * `bottle up --backend smolmachines`. Planning and the refusal without smolvm
 * run wherever Docker does; the real launch (a smolvm VM behind the gate
 * container) runs only with smolvm and /dev/kvm on the host.
 */

const smolvm = Bun.which(process.env.BOTTLE_SMOLVM || "smolvm");
const kvm = process.platform !== "linux" || existsSync("/dev/kvm");
const skipReason = !smolvm ? "smolvm is not installed" : !kvm ? "/dev/kvm is absent" : undefined;
if (skipReason) console.warn(`skipping the real smolmachines launch tests: ${skipReason}`);

const LAUNCH_TIMEOUT = 1_800_000;

function stateDirs(sandbox: Sandbox): string[] {
  const dir = join(sandbox.state, "bottle", "bottles");
  return existsSync(dir) ? readdirSync(dir) : [];
}

function machineNames(): string[] {
  const out = Bun.spawnSync([smolvm!, "machine", "ls", "--json"], { stdout: "pipe", stderr: "pipe" });
  const text = out.stdout.toString();
  const parsed: unknown = text.trim() ? JSON.parse(text) : [];
  const rows = Array.isArray(parsed) ? parsed : Object.values(parsed as object).find(Array.isArray) ?? [];
  return (rows as Array<{ name?: string }>).map((row) => row.name ?? "");
}

/** A non-loopback IPv4 address of this host (the VM must not reach a listener there). */
function hostAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((info) => info && !info.internal && info.family === "IPv4")?.address;
}

describeDocker("bottle up --backend smolmachines", () => {
  let sandbox: Sandbox;
  const agent = uniqueId("smolup");

  beforeAll(async () => {
    // The real launch packs the image: with the local stand-ins for the pinned registry and crane images.
    const helpers = skipReason ? undefined : await ensureRegistryTestImages();
    sandbox = makeSandbox({
      ...(process.env.BOTTLE_SMOLVM ? { BOTTLE_SMOLVM: process.env.BOTTLE_SMOLVM } : {}),
      ...(helpers ? { BOTTLE_REGISTRY_IMAGE: helpers.registry, BOTTLE_CRANE_IMAGE: helpers.crane } : {}),
    });
    chownSync(sandbox.project, 1000, 1000);
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\ndescription: smolmachines launch test agent\n---\nYou are a test agent.\n");
  }, 1_200_000);

  afterAll(() => {
    removeLabelled(`bottle.agent=${agent}`);
    if (smolvm) for (const name of machineNames().filter((name) => name.startsWith(`bottle-${agent}`))) Bun.spawnSync([smolvm, "machine", "delete", "--name", name, "-f"]);
  });

  test("--dry-run --json plans a smolmachines bottle and creates nothing", async () => {
    const sorted = (text: string) => text.split("\n").sort().join(",");
    const snapshot = () => [docker("ps", "-aq"), docker("network", "ls", "-q")].map(sorted).join("|");
    const before = snapshot();
    const out = await runBottle(sandbox, ["up", agent, "--backend", "smolmachines", "--dry-run", "--json"]);
    expect(out.exitCode).toBe(0);
    const plan = JSON.parse(out.stdout);
    expect(plan.backend).toBe("smolmachines");
    expect(plan.containers).toEqual({ bottle: `bottle-${agent}`, gate: `bottle-${agent}-gate` });
    expect(snapshot()).toBe(before);
    expect(stateDirs(sandbox)).toEqual([]);
  });

  test("without smolvm: one error naming it and the fix, and nothing is created", async () => {
    const out = await runBottle(sandbox, ["up", agent, "--backend", "smolmachines", "--yes", "--", "true"], { env: { BOTTLE_SMOLVM: "/nonexistent/smolvm" } });
    expect(out.exitCode).toBe(1);
    expect(out.stderr).toContain("the smolmachines backend cannot run here: smolvm at BOTTLE_SMOLVM=/nonexistent/smolvm");
    expect(out.stderr).toContain("--backend docker");
    expect(objectsWithLabel(`bottle.agent=${agent}`)).toEqual({ containers: [], networks: [] });
    expect(stateDirs(sandbox)).toEqual([]);
  });

  test.skipIf(Boolean(skipReason))(
    "a VM behind the gate: proxy denies off-list hosts, nothing else is reachable, exit code passes through, teardown is complete",
    async () => {
      const address = hostAddress();
      const listener = Bun.listen({ hostname: "0.0.0.0", port: 0, socket: { open: (socket) => void socket.end(), data: () => {} } });
      try {
        const script = [
          "echo uid=$(id -u)",
          "curl -s -o /dev/null -w 'denied=%{http_code}\\n' --max-time 10 http://bottle-self-test.invalid/",
          address ? `(timeout 5 bash -c 'exec 3<>/dev/tcp/${address}/${listener.port}' && echo DIRECT-OPEN) || echo direct-blocked` : "echo direct-blocked",
          "touch /workspace/written-by-vm",
          "exit 7",
        ].join("; ");
        const out = await runBottle(sandbox, ["up", agent, "--backend", "smolmachines", "--yes", "--", "bash", "-c", script]);
        expect(out.stderr).not.toContain("bottle: ");
        expect(out.exitCode).toBe(7);
        expect(out.stdout).toContain("uid=1000");
        expect(out.stdout).toContain("denied=403");
        expect(out.stdout).toContain("direct-blocked");
        expect(out.stdout).not.toContain("DIRECT-OPEN");
        expect(existsSync(join(sandbox.project, "written-by-vm"))).toBe(true);
      } finally {
        listener.stop(true);
      }
      expect(objectsWithLabel(`bottle.agent=${agent}`)).toEqual({ containers: [], networks: [] });
      expect(machineNames().filter((name) => name.startsWith(`bottle-${agent}`))).toEqual([]);
      expect(stateDirs(sandbox)).toEqual([]);
    },
    LAUNCH_TIMEOUT,
  );

  test.skipIf(Boolean(skipReason))(
    "detached: ls lists it, exec runs in the VM, down removes the VM, the gate and the state",
    async () => {
      const up = await runBottle(sandbox, ["up", agent, "--backend", "smolmachines", "--yes", "--detach"]);
      expect(up.exitCode).toBe(0);
      const name = up.stdout.trim();
      const ls = await runBottle(sandbox, ["ls", "--json"]);
      expect(JSON.parse(ls.stdout)).toContainEqual(expect.objectContaining({ name, backend: "smolmachines" }));
      const exec = await runBottle(sandbox, ["exec", name, "--", "sh", "-c", "echo in-vm-$BOTTLE_NAME"]);
      expect(exec.stdout).toContain(`in-vm-${name}`);
      const down = await runBottle(sandbox, ["down", name]);
      expect(down.exitCode).toBe(0);
      expect(machineNames()).not.toContain(name);
      expect(objectsWithLabel(`bottle.name=${name}`)).toEqual({ containers: [], networks: [] });
      expect(stateDirs(sandbox)).not.toContain(name);
    },
    LAUNCH_TIMEOUT,
  );
});
