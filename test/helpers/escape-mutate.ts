import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RELAY_SCRIPT, relayContainerSpec, startRelay } from "../../lib/backends/docker/ports.ts";
import { Docker, type ContainerSpec } from "../../lib/docker.ts";
import { realExec } from "../../lib/exec.ts";
import { LABELS, type Plan } from "../../lib/plan.ts";
import { docker, dockerOk } from "./docker.ts";
import { MUTATIONS, RELAY_MUTATIONS } from "./escape-mutations.ts";

/**
 * Testing the escape suite itself: with ESCAPE_MUTATE=<names> (comma
 * separated) every attacker bottle's gate runs a copy of the egress-gate
 * bundle with one defence switched off, so the attacks on that defence must
 * now FAIL. Never set in normal runs; it only ever edits the test's own gate
 * container (the bundle in the repository is untouched).
 *
 *   ESCAPE_MUTATE=allowlist bun test test/integration/escape/proxy.test.ts
 *
 * A bottle's port relays are mutated by making each again from its own
 * spec (lib/backends/docker/ports.ts) with one change: its container
 * (RELAY_SETUP_MUTATIONS), or its script (RELAY_MUTATIONS, mounted over the
 * image's).
 */

/** Mutations of the Docker setup rather than the gate's code. */
export const SETUP_MUTATIONS: Record<string, (name: string) => void> = {
  /** The bottle also sits on the egress network (as if its network were not --internal). */
  "bottle-on-egress": (name) => void docker("network", "connect", `${name}-egress`, name),
  /** The bottle also sits on its ports network (as if its relays' network were its own). */
  "bottle-on-ports": (name) => void (dockerOk("network", "inspect", `${name}-ports`) && docker("network", "connect", `${name}-ports`, name)),
};

/** Mutations of a port relay's container. */
export const RELAY_SETUP_MUTATIONS: Record<string, (spec: ContainerSpec) => ContainerSpec> = {
  /** The relay routes packets between its two networks. */
  "relay-forwarding": (spec) => ({ ...spec, sysctls: { ...spec.sysctls, "net.ipv4.ip_forward": "1", "net.ipv4.conf.all.forwarding": "1" } }),
  /** Published on every address of the host, not on 127.0.0.1. */
  "relay-bind-all": (spec) => ({ ...spec, publish: (spec.publish ?? []).map((publish) => publish.replace(/^127\.0\.0\.1:/, "0.0.0.0:")) }),
};

const BUNDLE = "/opt/bottle/egress-gate.mjs";

/** Applies the requested mutations to the bottle of `plan`, its gate and its port relays. */
export async function applyMutations(plan: Plan, names = requestedMutations()): Promise<void> {
  for (const mutation of names.filter((n) => n in SETUP_MUTATIONS)) SETUP_MUTATIONS[mutation]!(plan.name);
  const relay = names.filter((n) => n in RELAY_MUTATIONS || n in RELAY_SETUP_MUTATIONS);
  mutateGate(`${plan.name}-gate`, names.filter((n) => !(n in SETUP_MUTATIONS) && !relay.includes(n)));
  await mutateRelays(plan, relay);
}

/** Makes each port relay of the bottle again, from its spec with the mutations applied. */
export async function mutateRelays(plan: Plan, names: string[]): Promise<void> {
  if (names.length === 0) return;
  const relays = docker("ps", "--filter", `label=${LABELS.name}=${plan.name}`, "--filter", `label=${LABELS.role}=port`, "--format", "{{.Names}}").split("\n").filter(Boolean);
  for (const relay of relays) {
    const inspect = JSON.parse(docker("container", "inspect", "--format", "{{json .}}", relay)) as {
      Config: { Labels: Record<string, string>; Cmd: string[] };
      NetworkSettings: { Ports: Record<string, Array<{ HostIp: string; HostPort: string }>> };
    };
    const port = Number(inspect.Config.Labels[LABELS.port]);
    const published = inspect.NetworkSettings.Ports[`${port}/tcp`]![0]!;
    const bottleIp = inspect.Config.Cmd.at(-1)!.split(":")[0]!;
    let spec = relayContainerSpec(plan, { port, hostIp: published.HostIp, hostPort: Number(published.HostPort), explicit: true }, bottleIp, inspect.Config.Labels[LABELS.version]!);
    // Its labels as they were (the state dir they name is the sandbox's, not this process's).
    spec = { ...spec, labels: inspect.Config.Labels };
    for (const name of names) spec = RELAY_SETUP_MUTATIONS[name]?.(spec) ?? spec;
    const patches = names.filter((name) => name in RELAY_MUTATIONS);
    if (patches.length) spec = { ...spec, mounts: [...(spec.mounts ?? []), { source: mutatedRelayScript(relay, patches), target: RELAY_SCRIPT, readonly: true }] };
    docker("rm", "-f", relay);
    await startRelay(new Docker(realExec), spec, { network: plan.networks.internal }, []);
  }
}

/** The relay's script with these patches, in a file its user (nobody) can read. */
function mutatedRelayScript(relay: string, names: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "bottle-mutant-relay-"));
  chmodSync(dir, 0o755);
  const file = join(dir, "port-relay.mjs");
  docker("cp", `${relay}:${RELAY_SCRIPT}`, file);
  let text = readFileSync(file, "utf8");
  for (const name of names) {
    const [from, to] = RELAY_MUTATIONS[name]!;
    if (!text.includes(from)) throw new Error(`mutation ${name} does not apply to the relay's script any more`);
    text = text.replace(from, to);
  }
  writeFileSync(file, text, { mode: 0o644 });
  return file;
}

export function requestedMutations(): string[] {
  return (process.env.ESCAPE_MUTATE ?? "")
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
}

/** Patches the gate's bundle and restarts the gate; throws when a mutation no longer applies. */
export function mutateGate(gate: string, names: string[]): void {
  if (names.length === 0) return;
  const dir = mkdtempSync(join(tmpdir(), "bottle-mutant-"));
  const file = join(dir, "egress-gate.mjs");
  docker("cp", `${gate}:${BUNDLE}`, file);
  let text = readFileSync(file, "utf8");
  for (const name of names) {
    const mutation = MUTATIONS[name];
    if (!mutation) throw new Error(`unknown mutation ${name}; known: ${Object.keys(MUTATIONS).join(", ")}`);
    if (!text.includes(mutation[0])) throw new Error(`mutation ${name} does not apply to the gate bundle any more`);
    text = text.replace(mutation[0], mutation[1]);
  }
  writeFileSync(file, text);
  docker("cp", file, `${gate}:${BUNDLE}`);
  const readyBefore = docker("logs", gate).split("egress gate ready").length;
  docker("restart", "-t", "1", gate);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const out = Bun.spawnSync(["docker", "logs", gate], { stdout: "pipe", stderr: "pipe" });
    if (out.stdout.toString().split("egress gate ready").length > readyBefore) return;
    Bun.sleepSync(100);
  }
  throw new Error(`${gate} did not come back after mutation`);
}
