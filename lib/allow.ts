import { Docker } from "./docker.ts";
import { BottleError } from "./errors.ts";
import type { Exec } from "./exec.ts";
import type { EgressGateFile } from "./gates/egress/config.ts";
import { allowEntryProblem } from "./manifest/hosts.ts";
import { readPlan, writeState, readOwner } from "./state.ts";
import { createTar } from "./tar.ts";

/**
 * `bottle allow NAME HOST`: add a host to a running bottle's egress gate.
 * The host rewrites the gate's root-only config and signals the gate to
 * reload; nothing inside the bottle can reach that path.
 */
export async function allowHost(exec: Exec, name: string, host: string): Promise<{ added: boolean; manifestHint: string }> {
  const problem = allowEntryProblem(host);
  if (problem) throw new BottleError(`${host}: ${problem}`, { fix: "give a host name like api.example.com, *.example.com or host:8443" });
  const plan = readPlan(name);
  if (!plan) throw new BottleError(`no running bottle named ${name}`, { fix: "see `bottle ls`" });
  const docker = new Docker(exec);
  const gate = plan.containers.gate;
  const current = await docker.execIn(gate, ["cat", "/etc/bottle/egress.json"], { check: false });
  if (current.exitCode !== 0) throw new BottleError(`the gate of ${name} is not running`, { fix: `restart the bottle: bottle down ${name} && bottle up` });
  const config = JSON.parse(current.stdout) as EgressGateFile;
  const manifestHint = `to keep it, add to the bottle "${plan.bottle.name}" (${plan.bottle.sources.at(-1)}):\n  egress:\n    allow:\n      - ${host}`;
  if (config.allow.includes(host)) return { added: false, manifestHint };
  config.allow = [...config.allow, host];
  await docker.copyArchiveIn(
    gate,
    "/",
    createTar([{ path: "etc/bottle/egress.json", content: `${JSON.stringify(config, null, 2)}\n`, mode: 0o600, uid: 0, gid: 0 }]),
  );
  await docker.kill(gate, "HUP");
  const owner = readOwner(name);
  if (owner) writeState({ ...plan, egress: { ...plan.egress, allow: config.allow } }, owner);
  return { added: true, manifestHint };
}
