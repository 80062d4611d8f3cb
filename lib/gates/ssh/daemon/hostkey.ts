/**
 * The SSH gate's own host-key check. The forwarder is an L4 pipe, but the
 * start of an SSH connection (RFC 4253: version lines, KEXINIT, the key
 * exchange reply carrying the server's host key K_S) is plain text. The gate
 * reads both directions until the server's K_S and cuts the connection
 * unless it is exactly the pinned `known_host_key` — before the client has
 * finished the key exchange, so before it authenticates and before the
 * gate's agent signs anything. So a bottle that turns StrictHostKeyChecking
 * off still cannot talk to (or sign for) a server that is not the pinned one.
 * Pure code; fails closed on anything it cannot follow.
 */
import { createHash } from "node:crypto";
import { WireError, WireReader, blobType, equalBytes, readUint32 } from "./wire.ts";

const MSG_DISCONNECT = 1;
const MSG_IGNORE = 2;
const MSG_UNIMPLEMENTED = 3;
const MSG_DEBUG = 4;
const MSG_KEXINIT = 20;
const MSG_NEWKEYS = 21;
/** KEXDH_REPLY / KEX_ECDH_REPLY / hybrid PQ replies, and KEX_DH_GEX_GROUP under group exchange. */
const MSG_KEX_31 = 31;
const MSG_KEX_DH_GEX_REPLY = 33;

/** OpenSSH's PACKET_MAX_SIZE. */
const MAX_PACKET = 256 * 1024;
/** Version exchange: lines before "SSH-" (server only) and their total size. */
const MAX_IDENT_BYTES = 16 * 1024;

export class HostKeyError extends Error {}

/** Reads one direction of an SSH connection up to the point the gate needs: version line, then cleartext packets. */
export class SshStreamReader {
  private buffer: Uint8Array = new Uint8Array(0);
  private identBytes = 0;
  /** After NEWKEYS the stream is encrypted: nothing more to read. */
  private encrypted = false;
  version: string | undefined;
  /** Bytes read completely so far (lines and whole packets): safe to pass on. */
  consumed = 0;
  /** `consumed` right after the version line. */
  versionEnd: number | undefined;

  constructor(private readonly side: "client" | "server") {}

  /** The payloads of the complete packets in the data so far (throws HostKeyError on garbage). */
  push(chunk: Uint8Array): Uint8Array[] {
    if (this.encrypted) return [];
    this.buffer = concatBytes(this.buffer, chunk);
    const payloads: Uint8Array[] = [];
    while (this.version === undefined) {
      const newline = this.buffer.indexOf(0x0a);
      if (newline === -1) {
        if (this.identBytes + this.buffer.length > MAX_IDENT_BYTES) throw new HostKeyError(`the ${this.side} sent no SSH version line`);
        return payloads;
      }
      const line = new TextDecoder().decode(this.buffer.subarray(0, newline)).replace(/\r$/, "");
      this.identBytes += newline + 1;
      this.consumed += newline + 1;
      this.buffer = this.buffer.subarray(newline + 1);
      if (line.startsWith("SSH-")) {
        if (!/^SSH-(2\.0|1\.99)-/.test(line)) throw new HostKeyError(`the ${this.side} speaks an unsupported SSH version (${line.slice(0, 40)})`);
        this.version = line;
        this.versionEnd = this.consumed;
      } else if (this.side === "client" || this.identBytes > MAX_IDENT_BYTES) {
        throw new HostKeyError(`the ${this.side} sent no SSH version line`);
      }
    }
    while (this.buffer.length >= 5) {
      const length = readUint32(this.buffer, 0);
      if (length < 5 || length > MAX_PACKET) throw new HostKeyError(`the ${this.side} sent a malformed SSH packet`);
      if (this.buffer.length < 4 + length) break;
      const padding = this.buffer[4]!;
      if (padding + 1 > length) throw new HostKeyError(`the ${this.side} sent a malformed SSH packet`);
      const payload = this.buffer.slice(5, 4 + length - padding);
      payloads.push(payload);
      this.consumed += 4 + length;
      this.buffer = this.buffer.subarray(4 + length);
      if (payload[0] === MSG_NEWKEYS) {
        this.encrypted = true;
        this.buffer = new Uint8Array(0);
        break;
      }
    }
    return payloads;
  }
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return Uint8Array.from(b);
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** The kex_algorithms name-list of a KEXINIT payload. */
export function kexAlgorithms(payload: Uint8Array): string[] {
  const reader = new WireReader(payload);
  if (reader.byte() !== MSG_KEXINIT) throw new WireError("not a KEXINIT");
  reader.skip(16);
  return reader.nameList();
}

/** RFC 4253 §7.1: the first of the client's algorithms the server also has. */
export function negotiateKex(client: string[], server: string[]): string | undefined {
  const offered = new Set(server);
  return client.find((name) => offered.has(name) && !/^(ext-info-|kex-strict-)/.test(name));
}

/** Which server message carries K_S under a key exchange method; undefined when the gate cannot tell. */
export function hostKeyMessage(kex: string): number | undefined {
  if (/^gss-/.test(kex)) return undefined;
  if (/^diffie-hellman-group-exchange-/.test(kex)) return MSG_KEX_DH_GEX_REPLY;
  if (/^(curve25519-|ecdh-sha2-|diffie-hellman-group\d+-|sntrup761x25519-|mlkem\d+)/.test(kex)) return MSG_KEX_31;
  return undefined;
}

export type HostKeyState = { state: "pending" } | { state: "verified"; kex: string };

/** Watches one forwarded connection until the server's host key is known to be the pinned one. */
export class HostKeyCheck {
  private readonly client = new SshStreamReader("client");
  private readonly server = new SshStreamReader("server");
  private clientKex: string[] | undefined;
  private serverKex: string[] | undefined;
  private verified: HostKeyState | undefined;

  /** `pinned`: the host key blob (`keyBlob(known_host_key)`). */
  constructor(private readonly pinned: Uint8Array) {}

  get done(): boolean {
    return this.verified !== undefined;
  }

  /** Server bytes read completely (version line, banner lines, whole packets): what may reach the bottle before the check is done. */
  get serverConsumed(): number {
    return this.server.consumed;
  }

  /** Where the server's version line ends, once seen. */
  get serverVersionEnd(): number | undefined {
    return this.server.versionEnd;
  }

  /** Bottle → host bytes. Throws HostKeyError when the connection must be cut. */
  fromClient(chunk: Uint8Array): void {
    if (this.verified || this.clientKex) return;
    for (const payload of this.client.push(chunk)) {
      const type = payload[0];
      if (type === MSG_IGNORE || type === MSG_DEBUG || type === MSG_UNIMPLEMENTED) continue;
      if (type !== MSG_KEXINIT) throw new HostKeyError("the client did not start with a key exchange");
      this.clientKex = parse(() => kexAlgorithms(payload), "the client's KEXINIT");
      return;
    }
  }

  /**
   * Host → bottle bytes; call before passing them on. Throws HostKeyError
   * when the host key is not the pinned one (or cannot be found): then
   * nothing of this chunk may reach the bottle.
   */
  fromServer(chunk: Uint8Array): HostKeyState {
    if (this.verified) return this.verified;
    for (const payload of this.server.push(chunk)) {
      const type = payload[0];
      if (type === MSG_IGNORE || type === MSG_DEBUG || type === MSG_UNIMPLEMENTED || type === MSG_DISCONNECT) continue;
      if (type === MSG_KEXINIT) {
        if (this.serverKex) throw new HostKeyError("the server sent a second KEXINIT before its host key");
        this.serverKex = parse(() => kexAlgorithms(payload), "the server's KEXINIT");
        continue;
      }
      if (type === MSG_NEWKEYS || !this.serverKex) throw new HostKeyError("the server skipped the key exchange");
      if (!this.clientKex) throw new HostKeyError("the server answered a key exchange the client did not start");
      const kex = negotiateKex(this.clientKex, this.serverKex);
      if (!kex) throw new HostKeyError("client and server share no key exchange method");
      const carrier = hostKeyMessage(kex);
      if (carrier === undefined) throw new HostKeyError(`the gate cannot check the host key under key exchange ${kex}`);
      if (type !== carrier) {
        if (carrier === MSG_KEX_DH_GEX_REPLY && type === MSG_KEX_31) continue; // the group, then the reply
        throw new HostKeyError(`unexpected message ${type} during key exchange ${kex}`);
      }
      const hostKey = parse(() => new WireReader(payload.subarray(1)).string(), "the server's key exchange reply");
      if (!equalBytes(hostKey, this.pinned))
        throw new HostKeyError(`host key mismatch: the server presented ${blobType(hostKey)} ${fingerprintOf(hostKey)}, the bottle pins ${blobType(this.pinned)} ${fingerprintOf(this.pinned)}`);
      this.verified = { state: "verified", kex };
      return this.verified;
    }
    return { state: "pending" };
  }
}

function parse<T>(read: () => T, what: string): T {
  try {
    return read();
  } catch {
    throw new HostKeyError(`cannot read ${what}`);
  }
}

/** `SHA256:<base64>`, as `ssh-keygen -l` prints it. */
export function fingerprintOf(blob: Uint8Array): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** The gate's own version line, for refusing a connection before any server spoke. */
export const GATE_IDENT = "SSH-2.0-bottle_ssh_gate\r\n";
const SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE = 9;
const SSH_DISCONNECT_HOST_NOT_ALLOWED_TO_CONNECT = 1;

/**
 * A cleartext SSH_MSG_DISCONNECT (RFC 4253 §11.1) telling the bottle's ssh
 * why the gate cut the connection; ssh prints it as "Received disconnect
 * from …: <reason>". Valid only before NEWKEYS, at a packet boundary.
 */
export function disconnectPacket(reason: string, hostKey = false): Uint8Array {
  const description = new TextEncoder().encode(reason.slice(0, 500));
  const payload = new Uint8Array(1 + 4 + 4 + description.length + 4);
  const view = new DataView(payload.buffer);
  payload[0] = MSG_DISCONNECT;
  view.setUint32(1, hostKey ? SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE : SSH_DISCONNECT_HOST_NOT_ALLOWED_TO_CONNECT);
  view.setUint32(5, description.length);
  payload.set(description, 9);
  view.setUint32(9 + description.length, 0);
  let padding = 8 - ((payload.length + 5) % 8);
  if (padding < 4) padding += 8;
  const packet = new Uint8Array(5 + payload.length + padding);
  new DataView(packet.buffer).setUint32(0, 1 + payload.length + padding);
  packet[4] = padding;
  packet.set(payload, 5);
  return packet;
}
