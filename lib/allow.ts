import { readAudit } from "./audit.ts";
import { type Denied, deniedHosts } from "./denied-hosts.ts";
import { syncGateLogs } from "./backends/gate.ts";
import { dockerFor } from "./docker.ts";
import { BottleError } from "./errors.ts";
import type { Exec } from "./exec.ts";
import type { EgressGateFile } from "./gates/egress/config.ts";
import { Policy } from "./gates/egress/daemon/policy.ts";
import { allowEntryProblem } from "./manifest/hosts.ts";
import { parsePresetRef } from "./manifest/presets.ts";
import type { Plan } from "./plan.ts";
import { auditLogPath, readPlan, writeState, readOwner } from "./state.ts";
import { createTar } from "./tar.ts";

/**
 * `bottle allow NAME HOST…`: add hosts to a running bottle's egress gate.
 * The host rewrites the gate's root-only config and signals the gate to
 * reload; nothing inside the bottle can reach that path. `bottle allow
 * NAME` lists what the bottle was denied, to pick from.
 */

function runningPlan(name: string): Plan {
  const plan = readPlan(name);
  if (!plan) throw new BottleError(`no running bottle named ${name}`, { fix: "see `bottle ls`" });
  return plan;
}

/** A host as a YAML list item: `*.x` and `[::1]:80` would read as an alias and a list unquoted. */
function yamlItem(host: string): string {
  return /^[a-z0-9]/i.test(host) ? host : JSON.stringify(host);
}

export interface AllowResult {
  added: string[];
  /** Already allowed: nothing to do. */
  already: string[];
  /** The manifest lines that keep them after the bottle stops. */
  manifestHint: string;
}

/** Allow `hosts` in the running bottle `name`: one config write and one reload for all. */
export async function allowHosts(exec: Exec, name: string, hosts: readonly string[]): Promise<AllowResult> {
  for (const host of hosts) {
    if (!("problem" in parsePresetRef(host.toLowerCase())))
      throw new BottleError(`${host} is a preset, not a host`, { fix: `add it to the bottle: egress.presets: [${host.toLowerCase()}] (it takes effect at the next bottle up)` });
    const problem = allowEntryProblem(host);
    if (problem) throw new BottleError(`${host}: ${problem}`, { fix: "give a host name like api.example.com, *.example.com or host:8443" });
  }
  const plan = runningPlan(name);
  const docker = dockerFor(exec, plan.engine);
  const gate = plan.containers.gate;
  const current = await docker.execIn(gate, ["cat", "/etc/bottle/egress.json"], { check: false });
  if (current.exitCode !== 0) throw new BottleError(`the gate of ${name} is not running`, { fix: `restart the bottle: bottle down ${name} && bottle up` });
  const config = JSON.parse(current.stdout) as EgressGateFile;
  const added = [...new Set(hosts)].filter((host) => !config.allow.includes(host));
  const already = hosts.filter((host) => config.allow.includes(host));
  const manifestHint = `to keep ${hosts.length === 1 ? "it" : "them"}, add to the bottle "${plan.bottle.name}" (${plan.bottle.sources.at(-1)}):\n  egress:\n    allow:\n${hosts.map((host) => `      - ${yamlItem(host)}`).join("\n")}`;
  if (added.length === 0) return { added, already, manifestHint };
  config.allow = [...config.allow, ...added];
  await docker.copyArchiveIn(
    gate,
    "/",
    createTar([{ path: "etc/bottle/egress.json", content: `${JSON.stringify(config, null, 2)}\n`, mode: 0o600, uid: 0, gid: 0 }]),
  );
  await docker.kill(gate, "HUP");
  const owner = readOwner(name);
  if (owner) writeState({ ...plan, egress: { ...plan.egress, allow: config.allow } }, owner);
  return { added, already, manifestHint };
}

/** What the running bottle `name` was denied, from its egress log (the rotated generation too; a remote gate's copied in first). */
export async function deniedIn(exec: Exec, name: string): Promise<Denied> {
  const plan = runningPlan(name);
  await syncGateLogs(dockerFor(exec, plan.engine), plan);
  return deniedHosts(readAudit(auditLogPath(name, "egress")), new Policy(plan.egress.allow, plan.egress.allowPrivate, []));
}
