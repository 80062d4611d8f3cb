import { readFileSync } from "node:fs";
import { BottleError } from "../../errors.ts";
import type { Resolved } from "../../manifest/index.ts";
import type { GitGateRemote } from "./config.ts";

/**
 * Read each git remote's identity file on the host, at launch, for the gate
 * only. The key never enters the plan, the state dir, a command line or the
 * bottle: it travels in the tar the gate reads on its stdin as it starts.
 */
export function readGitRemotes(resolved: Pick<Resolved, "bottle">): GitGateRemote[] {
  return Object.entries(resolved.bottle.git.remotes).map(([name, remote]) => {
    let identity: Uint8Array;
    try {
      identity = readFileSync(remote.identityFile);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
      throw new BottleError(`cannot read the identity_file of git remote "${name}": ${remote.identityFile} (${code})`, {
        fix: `fix git.remotes.${name}.identity_file in the bottle manifest (a private SSH key without a passphrase the upstream accepts)`,
      });
    }
    return { name, upstream: remote.upstream, identity, knownHostKey: remote.knownHostKey };
  });
}
