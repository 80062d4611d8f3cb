import type { ContainerSpec } from "../../docker.ts";
import { HOST_OBJECTS_MOUNT } from "../../git/private-gitdir.ts";
import { workspaceGitMounts } from "../../git/workspace-git.ts";
import { CLAUDE_HOME, homeLabels } from "../../homes.ts";
import type { Plan } from "../../plan.ts";
import { proxyEnvironment } from "../../proxy-env.ts";
import { bottleVariables, GATE_ALIAS } from "../gate.ts";
import type { InternalAddresses } from "../internal-subnet.ts";

/**
 * The docker backend's bottle container: only on its internal network (no
 * route out; the gate is the way), unprivileged, limited (CPUs, memory with
 * no swap, processes), the workspace and its git shadows mounted, under an init.
 */

/** `internal`: the addresses chosen for the internal network (the gate's, the bottle's own). */
export function bottleContainerSpec(plan: Plan, internal: Pick<InternalAddresses, "gate" | "bottle">, labels: Record<string, string>): ContainerSpec {
  const proxy = `http://${GATE_ALIAS}:${plan.egress.proxyPort}`;
  const mounts: ContainerSpec["mounts"] = [];
  const { hostPath, containerPath, git } = plan.workspace;
  // Claude's home, kept across `down` (docker creates the volume, labelled, on first use).
  if (plan.home) mounts.push({ target: CLAUDE_HOME, volume: { name: plan.home.volume, labels: homeLabels(hostPath ?? plan.workspace.mode, plan.agent.name) } });
  if (plan.workspace.mode === "mount" && hostPath) {
    mounts.push({ source: hostPath, target: containerPath });
    // The workspace's .git (what the host later runs git in) is the bottle's own, never the host's.
    if (git)
      for (const mount of workspaceGitMounts(plan.name, git, hostPath, containerPath))
        mounts.push(mount.volume ? { target: mount.target, volume: { labels } } : { source: mount.source, target: mount.target, readonly: mount.readonly });
  } else if (git?.objects && !plan.engine?.remote) {
    // A copy or branch of a repository: its private git dir borrows the host's objects, read-only.
    mounts.push({ source: git.objects, target: HOST_OBJECTS_MOUNT, readonly: true });
  }
  return {
    name: plan.containers.bottle,
    image: plan.bottleImage,
    labels,
    network: plan.networks.internal,
    // Static: the bottle may start before the gate, and must not take the gate's address.
    ip: internal.bottle,
    // Docker's embedded DNS forwards what it cannot answer to the gate's DNS.
    dns: [internal.gate],
    // Every proxied request names the gate: /etc/hosts spares it a DNS round trip.
    extraHosts: { [GATE_ALIAS]: internal.gate },
    env: { ...proxyEnvironment(proxy), ...bottleVariables(plan) },
    mounts,
    user: `${plan.workspace.user.uid}:${plan.workspace.user.gid}`,
    capDrop: ["ALL"],
    securityOpt: ["no-new-privileges"],
    // The plan's limits (lib/resources.ts): a fork bomb, a leak or a runaway build stops there.
    pidsLimit: plan.resources.pids?.value,
    memory: plan.resources.memory?.value,
    cpus: plan.resources.cpus?.value,
    // PID 1 (Docker's tini) reaps orphans; `sleep infinity` would leave their
    // zombies to use up the pids limit until not even `bottle exec` starts.
    init: true,
    runtime: plan.runtime === "runsc" ? "runsc" : undefined,
    hostname: plan.name,
    workdir: plan.workspace.containerPath,
    command: ["sleep", "infinity"],
  };
}

