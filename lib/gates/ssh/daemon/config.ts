/**
 * The SSH gate's config file (/etc/bottle/ssh/ssh.json): the schema the
 * host renders it from (../config.ts, sshGateConfig) and the daemon checks
 * it against as it starts.
 */
import * as v from "valibot";
import { issueText } from "../../common/schema-issue.ts";

const text = v.pipe(v.string(), v.minLength(1));
/** 0: any free port (tests). */
const port = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535));

export const SshGateConfigSchema = v.strictObject({
  bottle: text,
  /** Name whose address (on the bottle network) the gate listens on. */
  listen: text,
  agentPort: port,
  agentSocket: text,
  log: text,
  /** The log and its one rotated generation together (egress.limits.max_log_bytes); 0 = no cap. */
  maxLogBytes: v.pipe(v.number(), v.integer(), v.minValue(0)),
  readyFile: text,
  /**
   * Per listed host: where it is, and the login its agent signs — `user`
   * with `key` (the public half of the host's identity, `<type> <base64>`;
   * absent when it could not be derived: then nothing is signed with it).
   */
  hosts: v.array(
    v.strictObject({
      host: text,
      port,
      listenPort: port,
      hostKey: text,
      user: text,
      key: v.optional(text),
    }),
  ),
});

export type SshGateConfig = v.InferOutput<typeof SshGateConfigSchema>;

/** Parses and checks the config file's text; throws an Error naming the bad field. */
export function parseSshGateConfig(json: string): SshGateConfig {
  const result = v.safeParse(SshGateConfigSchema, JSON.parse(json), { abortEarly: true });
  if (!result.success) throw new Error(issueText(result.issues[0]));
  return result.output;
}
