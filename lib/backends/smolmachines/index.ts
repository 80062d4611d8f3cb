import { existsSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import type { ContainerSummary } from "../../docker.ts";
import type { Check } from "../../doctor-check.ts";
import type { Exec } from "../../exec.ts";
import { ensureImage } from "../../images.ts";
import { LABELS, type Plan } from "../../plan.ts";
import { bottleRow, removeBottleObjects } from "../objects.ts";
import type { Backend, Env, PreparedBottle } from "../types.ts";
import { listSmolmachineCache } from "./cache.ts";
import { machineHandle } from "./handle.ts";
import { launchSmolmachine, removeMachineQuietly, smolvmUnavailable, teardownSmolmachine } from "./launch.ts";
import { findPackLeftovers, prepareSmolmachine, removePackLeftovers } from "./prepare.ts";
import { machineListArgv, parseMachineList, smolvmBinary } from "./smolvm.ts";

/**
 * The smolmachines backend: the bottle is a smolvm microVM created from a
 * cached `.smolmachine` of its image; its gate runs in Docker like any
 * bottle's, on the egress network only, published on a loopback address the
 * VM alone may reach. Details: docs/smolmachines.md.
 */

/** A VM bottle has no container: its gate container stands for it in docker. */
function isMachineGate(container: ContainerSummary): boolean {
  return container.labels[LABELS.role] === "gate" && container.labels[LABELS.backend] === "smolmachines";
}

/** smolvm's machines by name → state; undefined when smolvm cannot be asked (not installed). */
async function machineStates(exec: Exec, env: Env): Promise<Map<string, string> | undefined> {
  try {
    const out = await exec.run(machineListArgv(smolvmBinary(env)), { check: false, timeoutMs: 10_000 });
    if (out.exitCode !== 0) return undefined;
    return new Map(parseMachineList(out.stdout).map((machine) => [machine.name, machine.state ?? "?"]));
  } catch {
    return undefined;
  }
}

async function doctorRows(exec: Exec, env: Env): Promise<Check[]> {
  const checks: Check[] = [];
  const smolvm = Bun.which(smolvmBinary(env));
  const version = smolvm ? (await exec.run([smolvm, "--version"], { check: false, timeoutMs: 5000 })).stdout.trim() : "";
  checks.push(
    smolvm
      ? { name: "smolvm", status: "ok", detail: `${smolvm}${version ? ` (${version})` : ""}` }
      : { name: "smolvm", status: "info", detail: "not installed; only needed for --backend smolmachines" },
  );
  const cached = listSmolmachineCache(env);
  if (cached.length)
    checks.push({
      name: "smolmachine cache",
      status: "info",
      detail: `${cached.length} packed image${cached.length === 1 ? "" : "s"}, ${(cached.reduce((n, e) => n + e.size, 0) / 1024 ** 3).toFixed(1)} GiB`,
    });
  if (process.platform === "linux")
    checks.push(
      existsSync("/dev/kvm")
        ? { name: "/dev/kvm", status: "ok", detail: "present" }
        : { name: "/dev/kvm", status: "info", detail: "absent; only needed for --backend smolmachines" },
    );
  return checks;
}

export const smolmachinesBackend: Backend = {
  name: "smolmachines",
  summary: "smolvm microVMs, each with its own kernel (needs smolvm, and /dev/kvm on Linux)",
  // smolvm mounts host directories only, and a directory the agent writes is not one bottle keeps on the host.
  keepsHomes: false,
  remoteEngines: false,

  // The VM's network reaches only its gate, published on a loopback address for it alone: nothing could carry a port in.
  ports: undefined,

  unavailable: (env) => smolvmUnavailable(env),

  doctor: doctorRows,

  // gVisor is a container runtime; a VM does not use one. Its CPUs and memory
  // are this machine's, not the Docker engine's; it has whole vCPUs, and its
  // own kernel, whose process table is its own.
  planEngine: () => ({
    runtime: "runc",
    capacity: {
      cpus: availableParallelism(),
      memory: totalmem(),
      of: "this machine",
      cannot: { pids: "a smolmachines VM has no process limit (its own kernel bounds a fork bomb in it)" },
      wholeCpus: "a smolmachines VM",
    },
  }),

  async prepare(docker, plan, images, env): Promise<PreparedBottle> {
    const { specs } = images;
    const [gate, packed] = await Promise.all([
      ensureImage(docker, specs.gate, env),
      prepareSmolmachine({ docker, images: [specs.agent, ...(specs.custom ? [specs.custom] : [])], env }),
    ]);
    const prepared: Plan = {
      ...plan,
      images: { ...plan.images, gate: gate.ref, ...(specs.custom ? { custom: packed.ref } : { agent: packed.ref }) },
      bottleImage: packed.ref.tag,
    };
    return {
      plan: prepared,
      launch: (target, launched, request) => launchSmolmachine(target, launched, { ...request, smolmachine: packed.path, binary: smolvmBinary(env) }),
    };
  },

  teardown: (docker, created, env) => teardownSmolmachine(docker, created, smolvmBinary(env)),

  standsFor: isMachineGate,

  async rows(exec, containers, env) {
    const machines = containers.length ? await machineStates(exec, env) : undefined;
    // A VM's state is smolvm's to tell; without smolvm, the gate's.
    return containers.map((container) => {
      const name = container.labels[LABELS.name] ?? container.name;
      return bottleRow(container, machines ? (machines.get(name) ?? "machine missing") : `gate ${container.state}`);
    });
  },

  handle: (docker, plan, env) => machineHandle(docker.exec, plan.containers.bottle, smolvmBinary(env)),

  async open(docker, plan, _name, env) {
    if (!plan) return undefined;
    const gate = await docker.containerInspect(plan.containers.gate);
    return gate?.Config.Labels?.[LABELS.backend] === "smolmachines" && gate.State.Running ? machineHandle(docker.exec, plan.containers.bottle, smolvmBinary(env)) : undefined;
  },

  async remove(docker, name, plan, env) {
    // The machine is named like the bottle container would be.
    await removeMachineQuietly(docker.exec, plan?.containers.bottle ?? name, smolvmBinary(env));
    await removeBottleObjects(docker, name);
  },

  async leftovers(docker) {
    const pack = await findPackLeftovers(docker);
    if (!pack.containers.length && !pack.networks.length && !pack.stagingDirs.length) return undefined;
    return { describe: "(smolmachines prepare)", containers: pack.containers, networks: pack.networks, remove: () => removePackLeftovers(docker, pack) };
  },
};
