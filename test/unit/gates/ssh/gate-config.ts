import { join } from "node:path";
import type { SshGateConfig } from "../../../../lib/gates/ssh/daemon/config.ts";

/** An SSH gate's config for a unit test: listening on loopback, its files under `dir`, no agent. */
export function sshGateConfig(dir: string, hosts: SshGateConfig["hosts"], maxLogBytes = 0): SshGateConfig {
  return {
    bottle: "bottle-unit",
    listen: "127.0.0.1",
    agentPort: 0,
    agentSocket: join(dir, "none.sock"),
    log: join(dir, "ssh.jsonl"),
    maxLogBytes,
    readyFile: join(dir, "ready"),
    hosts,
  };
}
