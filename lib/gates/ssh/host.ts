import { createPrivateKey, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import type { BottleHandle } from "../../backends/types.ts";
import { BottleError } from "../../errors.ts";
import type { Resolved } from "../../manifest/index.ts";
import type { Plan } from "../../plan.ts";
import { agentRelayCommand, type SshGateHost } from "./config.ts";
import { WireReader, concat, sshString } from "./daemon/wire.ts";

/**
 * Read each SSH host's identity file on the host, at launch, for the gate
 * only. The key never enters the plan, the state dir, a command line or the
 * bottle: it travels in the tar the gate reads on its stdin as it starts. Only
 * its public half goes to the bottle (so ssh offers each host its own key).
 */
export function readSshHosts(resolved: Pick<Resolved, "bottle">): SshGateHost[] {
  return resolved.bottle.ssh.hosts.map((entry) => {
    const fix = `fix the identity_file of ssh host ${entry.host} in the bottle manifest (a private SSH key without a passphrase the host accepts)`;
    let identity: Uint8Array;
    try {
      identity = readFileSync(entry.identityFile);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
      throw new BottleError(`cannot read the identity_file of ssh host ${entry.host}: ${entry.identityFile} (${code})`, { fix });
    }
    const key = inspectPrivateKey(identity);
    if (key.kind === "encrypted")
      throw new BottleError(`the identity_file of ssh host ${entry.host} is protected by a passphrase: ${entry.identityFile}`, {
        fix: `the SSH gate loads it without asking; use a key without a passphrase (ssh-keygen -p -N "" -f ${entry.identityFile} on a copy)`,
      });
    if (key.kind === "not-a-key") throw new BottleError(`the identity_file of ssh host ${entry.host} is not a private SSH key: ${entry.identityFile}`, { fix });
    return { host: entry.host, identity, ...(key.publicKey ? { publicKey: key.publicKey } : {}) };
  });
}

export type PrivateKeyInfo = { kind: "key"; publicKey?: string } | { kind: "encrypted" } | { kind: "not-a-key" };

const OPENSSH_MAGIC = "openssh-key-v1\0";

/**
 * What a private key file is: an unencrypted key (with its public half as
 * `<type> <base64>` when it can be derived), a passphrase-protected one, or
 * not a key. OpenSSH's own format keeps the public key in clear; PEM/PKCS#8
 * keys go through node:crypto.
 */
export function inspectPrivateKey(identity: string | Uint8Array): PrivateKeyInfo {
  const text = typeof identity === "string" ? identity : new TextDecoder().decode(identity);
  const openssh = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
  if (openssh) {
    try {
      const data = Uint8Array.from(atob(openssh[1]!.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
      if (new TextDecoder().decode(data.subarray(0, OPENSSH_MAGIC.length)) !== OPENSSH_MAGIC) return { kind: "not-a-key" };
      const reader = new WireReader(data.subarray(OPENSSH_MAGIC.length));
      const cipher = reader.text();
      reader.text(); // kdf name
      reader.string(); // kdf options
      if (reader.uint32() < 1) return { kind: "not-a-key" };
      const blob = reader.string();
      if (cipher !== "none") return { kind: "encrypted" };
      const type = new WireReader(blob).text();
      return { kind: "key", publicKey: `${type} ${btoa(String.fromCharCode(...blob))}` };
    } catch {
      return { kind: "not-a-key" };
    }
  }
  if (!/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)) return { kind: "not-a-key" };
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(text)) return { kind: "encrypted" };
  try {
    const publicKey = pemPublicKey(text);
    return { kind: "key", ...(publicKey ? { publicKey } : {}) };
  } catch {
    return { kind: "not-a-key" };
  }
}

function base64url(value: string): Uint8Array {
  return Uint8Array.from(atob(value.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(value.length / 4) * 4, "=")), (c) => c.charCodeAt(0));
}

/** An SSH mpint from unsigned big-endian bytes. */
function mpint(bytes: Uint8Array): Uint8Array {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  return sshString(trimmed[0]! & 0x80 ? concat(Uint8Array.of(0), trimmed) : trimmed);
}

/** The OpenSSH public key line of a PEM/PKCS#8 RSA, ECDSA or Ed25519 private key. */
function pemPublicKey(pem: string): string | undefined {
  const jwk = createPublicKey(createPrivateKey(pem)).export({ format: "jwk" });
  let type: string;
  let blob: Uint8Array;
  if (jwk.kty === "RSA" && jwk.n && jwk.e) {
    type = "ssh-rsa";
    blob = concat(sshString(type), mpint(base64url(jwk.e)), mpint(base64url(jwk.n)));
  } else if (jwk.kty === "OKP" && jwk.crv === "Ed25519" && jwk.x) {
    type = "ssh-ed25519";
    blob = concat(sshString(type), sshString(base64url(jwk.x)));
  } else if (jwk.kty === "EC" && jwk.x && jwk.y) {
    const curve = ({ "P-256": "nistp256", "P-384": "nistp384", "P-521": "nistp521" } as Record<string, string>)[jwk.crv ?? ""];
    if (!curve) return undefined;
    type = `ecdsa-sha2-${curve}`;
    blob = concat(sshString(type), sshString(curve), sshString(concat(Uint8Array.of(4), base64url(jwk.x), base64url(jwk.y))));
  } else {
    return undefined;
  }
  return `${type} ${btoa(String.fromCharCode(...blob))}`;
}

/** Start the agent relay in the bottle as the bottle user; resolves once its socket exists. */
export async function startAgentRelay(bottle: BottleHandle, plan: Plan): Promise<void> {
  if (!plan.ssh?.hosts.length) return;
  const { uid, gid } = plan.workspace.user;
  await bottle.exec(agentRelayCommand(plan.ssh), { user: `${uid}:${gid}`, timeoutMs: 20_000 });
}
