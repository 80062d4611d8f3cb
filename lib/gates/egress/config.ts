import type { Plan } from "../../plan.ts";
import { custodyGateConfig } from "../custody/index.ts";
import type { EgressConfigFile } from "./daemon/config-schema.ts";

export { EGRESS_READY_LINE, readyLineAddresses, readyLineCa } from "./daemon/ready-line.ts";

/**
 * The egress gate's config file, written by the host into the gate
 * (/etc/bottle/egress.json, root-only) before it starts: the input of the
 * schema the gate checks it against.
 */
export type EgressGateFile = EgressConfigFile;

export const EGRESS_AUDIT_FILE = "egress.jsonl";

/**
 * `listen`: the subnets of the network the bottle reaches its gate on (the
 * internal one; a VM's gate: the egress one). Every gate service binds only
 * to the gate's address there.
 */
export function egressGateConfig(plan: Plan, hostAddresses: string[], withSecrets: boolean, listen: string[]): EgressGateFile {
  return {
    bottle: plan.name,
    proxyPort: plan.egress.proxyPort,
    dnsPort: plan.egress.dnsPort,
    listen,
    allow: plan.egress.allow,
    allowPrivate: plan.egress.allowPrivate,
    auditLog: `/var/log/bottle/${EGRESS_AUDIT_FILE}`,
    ...(withSecrets ? { secretsFile: "/etc/bottle/secrets.json" } : {}),
    limits: plan.egress.limits,
    hostAddresses,
    ...custodyGateConfig(plan.custody),
  };
}
