/**
 * The SSH gate's agent-protocol filter (draft-miller-ssh-agent): the bottle
 * reaches the gate's ssh-agent only through this, and may do exactly two
 * things with it — list the public keys (REQUEST_IDENTITIES) and have a key
 * sign an SSH public-key authentication request (SIGN_REQUEST whose data is
 * an RFC 4252 §7 USERAUTH_REQUEST) for a user the bottle's ssh.hosts name
 * with that key (SignPolicy). Everything else — adding, removing or
 * listing-and-exporting keys, locking, smartcards, extensions, signing any
 * other data (git commits, SSHSIG files, arbitrary blobs) — is answered
 * with SSH_AGENT_FAILURE by the gate and never reaches the agent. Pure code:
 * unit-tested by feeding it crafted messages.
 */
import { WireError, WireReader, blobType, concat, equalBytes, keyBlob, readUint32, uint32 } from "./wire.ts";

export const AGENT_MSG = {
  FAILURE: 5,
  SUCCESS: 6,
  REQUEST_IDENTITIES: 11,
  IDENTITIES_ANSWER: 12,
  SIGN_REQUEST: 13,
  SIGN_RESPONSE: 14,
  ADD_IDENTITY: 17,
  REMOVE_IDENTITY: 18,
  REMOVE_ALL_IDENTITIES: 19,
  ADD_SMARTCARD_KEY: 20,
  REMOVE_SMARTCARD_KEY: 21,
  LOCK: 22,
  UNLOCK: 23,
  ADD_ID_CONSTRAINED: 25,
  ADD_SMARTCARD_KEY_CONSTRAINED: 26,
  EXTENSION: 27,
} as const;

const NAMES: Record<number, string> = {
  1: "rsa1-request-identities",
  3: "rsa1-challenge",
  7: "rsa1-add-identity",
  8: "rsa1-remove-identity",
  9: "rsa1-remove-all-identities",
  [AGENT_MSG.REQUEST_IDENTITIES]: "request-identities",
  [AGENT_MSG.SIGN_REQUEST]: "sign",
  [AGENT_MSG.ADD_IDENTITY]: "add-identity",
  [AGENT_MSG.REMOVE_IDENTITY]: "remove-identity",
  [AGENT_MSG.REMOVE_ALL_IDENTITIES]: "remove-all-identities",
  [AGENT_MSG.ADD_SMARTCARD_KEY]: "add-smartcard-key",
  [AGENT_MSG.REMOVE_SMARTCARD_KEY]: "remove-smartcard-key",
  [AGENT_MSG.LOCK]: "lock",
  [AGENT_MSG.UNLOCK]: "unlock",
  [AGENT_MSG.ADD_ID_CONSTRAINED]: "add-identity-constrained",
  [AGENT_MSG.ADD_SMARTCARD_KEY_CONSTRAINED]: "add-smartcard-key-constrained",
  [AGENT_MSG.EXTENSION]: "extension",
};

/** OpenSSH's own limit (AGENT_MAX_LEN); a longer frame ends the connection. */
export const MAX_AGENT_MESSAGE = 256 * 1024;

const SSH_MSG_USERAUTH_REQUEST = 50;
const USERAUTH_METHODS = new Set(["publickey", "publickey-hostbound-v00@openssh.com"]);

export function requestName(type: number | undefined): string {
  if (type === undefined) return "empty";
  return NAMES[type] ?? `type-${type}`;
}

export type AgentDecision =
  | { allow: true; request: "request-identities" }
  | { allow: true; request: "sign"; user: string; keyType: string; key: Uint8Array }
  /** `user`: the user name a refused login asked for, as sent (escape it before showing it). */
  | { allow: false; request: string; reason: string; routine?: true; user?: string };

/**
 * The SSH logins the gate's agent signs: for each user name, the keys it may
 * log in with — the identity of every ssh.hosts entry that logs in as that
 * user. A login names its user inside the signed data, and a listed host
 * may accept the same key for other accounts (root@host with the key meant
 * for deploy@host); the host itself is not in that data (plain "publickey"),
 * so user and key are what the gate can hold a login to.
 */
export type SignPolicy = ReadonlyMap<string, readonly Uint8Array[]>;

/** The policy for hosts as the gate's config lists them (`key`: `<type> <base64>` of the host's identity). */
export function signPolicy(hosts: ReadonlyArray<{ user: string; key?: string }>): SignPolicy {
  const policy = new Map<string, Uint8Array[]>();
  for (const host of hosts) {
    // A key whose public half is unknown signs nothing (no such key loads in ssh-agent either).
    if (host.key === undefined) continue;
    const keys = policy.get(host.user) ?? [];
    keys.push(keyBlob(host.key));
    policy.set(host.user, keys);
  }
  return policy;
}

/** A message body (type byte + payload, without the length prefix) → may it reach the agent? */
export function decideAgentRequest(message: Uint8Array, policy: SignPolicy): AgentDecision {
  const type = message[0];
  const request = requestName(type);
  if (type === AGENT_MSG.REQUEST_IDENTITIES) {
    if (message.length !== 1) return { allow: false, request, reason: "malformed request" };
    return { allow: true, request: "request-identities" };
  }
  if (type === AGENT_MSG.SIGN_REQUEST) {
    let login: { user: string; keyType: string; key: Uint8Array };
    try {
      login = checkSignRequest(message.subarray(1));
    } catch (error) {
      return { allow: false, request, reason: error instanceof WireError ? `malformed sign request (${error.message})` : (error as Error).message };
    }
    const keys = policy.get(login.user);
    if (!keys) return { allow: false, request, user: login.user, reason: "refused to sign: no ssh.hosts entry of this bottle logs in as this user" };
    if (!keys.some((key) => equalBytes(key, login.key)))
      return { allow: false, request, user: login.user, reason: "refused to sign: this key is not the identity of an ssh.hosts entry for this user" };
    return { allow: true, request: "sign", ...login };
  }
  const reason = "the SSH gate's agent only lists keys and signs SSH logins";
  // ssh sends session-bind@openssh.com before every login; refusing it is routine (the login goes on).
  if (type === AGENT_MSG.EXTENSION && extensionName(message) === "session-bind@openssh.com") return { allow: false, request, reason, routine: true };
  return { allow: false, request, reason };
}

function extensionName(message: Uint8Array): string | undefined {
  try {
    return new WireReader(message.subarray(1)).text();
  } catch {
    return undefined;
  }
}

/**
 * SIGN_REQUEST: string key_blob, string data, uint32 flags. The data must be
 * what an SSH client signs to log in with that very key:
 *   string session_id, byte 50, string user, string "ssh-connection",
 *   string "publickey" (or the OpenSSH host-bound variant), boolean TRUE,
 *   string algorithm, string key_blob [, string host_key (host-bound)].
 */
function checkSignRequest(payload: Uint8Array): { user: string; keyType: string; key: Uint8Array } {
  const request = new WireReader(payload);
  const key = request.string();
  const data = request.string();
  request.uint32();
  request.end();
  const auth = new WireReader(data);
  const sessionId = auth.string();
  if (sessionId.length < 16 || sessionId.length > 64) throw new Error("refused to sign: not an SSH login (session id)");
  if (auth.byte() !== SSH_MSG_USERAUTH_REQUEST) throw new Error("refused to sign: not an SSH login request");
  const user = auth.text();
  if (auth.text() !== "ssh-connection") throw new Error("refused to sign: not an SSH login (service)");
  const method = auth.text();
  if (!USERAUTH_METHODS.has(method)) throw new Error(`refused to sign: not a public-key login (${method.slice(0, 40)})`);
  if (!auth.boolean()) throw new Error("refused to sign: not a public-key signature");
  auth.text();
  if (!equalBytes(auth.string(), key)) throw new Error("refused to sign: the login names a different key");
  if (method !== "publickey") auth.string();
  auth.end();
  return { user, keyType: blobType(key), key };
}

/** Prefix a message body with its length. */
export function frameAgentMessage(body: Uint8Array): Uint8Array {
  return concat(uint32(body.length), body);
}

export const AGENT_FAILURE_FRAME = frameAgentMessage(Uint8Array.of(AGENT_MSG.FAILURE));

/** Splits a byte stream into agent messages (bodies without the length prefix). */
export class AgentFramer {
  private buffer: Uint8Array = new Uint8Array(0);

  /** Throws a WireError on an empty or oversized frame: the connection must end. */
  push(chunk: Uint8Array): Uint8Array[] {
    this.buffer = this.buffer.length ? concat(this.buffer, chunk) : Uint8Array.from(chunk);
    const messages: Uint8Array[] = [];
    while (this.buffer.length >= 4) {
      const length = readUint32(this.buffer, 0);
      if (length === 0 || length > MAX_AGENT_MESSAGE) throw new WireError(`bad agent message length ${length}`);
      if (this.buffer.length < 4 + length) break;
      messages.push(this.buffer.slice(4, 4 + length));
      this.buffer = this.buffer.subarray(4 + length);
    }
    return messages;
  }
}

export interface AgentFilterEvents {
  /** To the bottle. */
  toClient(bytes: Uint8Array): void;
  /** To the real agent. */
  toAgent(bytes: Uint8Array): void;
  /** A request and what became of it. */
  decided(decision: AgentDecision): void;
  /** The stream is broken (bad framing, unsolicited reply): close both sides. */
  fail(reason: string): void;
}

/**
 * One bottle connection to the agent, request by request: a refused request
 * is answered with FAILURE right away; an allowed one goes to the agent and
 * the next request waits for its reply, so replies keep their order.
 */
export class AgentFilter {
  private readonly fromClient = new AgentFramer();
  private readonly fromAgent = new AgentFramer();
  private readonly queue: Uint8Array[] = [];
  private waiting = false;
  private failed = false;

  /** Requests queued behind one the agent has not answered yet. */
  static readonly MAX_QUEUED = 64;

  constructor(
    private readonly events: AgentFilterEvents,
    private readonly policy: SignPolicy,
  ) {}

  /** Nothing asked and unanswered. */
  get idle(): boolean {
    return !this.waiting && this.queue.length === 0;
  }

  clientData(chunk: Uint8Array): void {
    if (this.failed) return;
    let messages: Uint8Array[];
    try {
      messages = this.fromClient.push(chunk);
    } catch (error) {
      this.fail(`from the bottle: ${(error as Error).message}`);
      return;
    }
    this.queue.push(...messages);
    if (this.queue.length > AgentFilter.MAX_QUEUED) {
      this.fail("too many requests queued");
      return;
    }
    this.pump();
  }

  agentData(chunk: Uint8Array): void {
    if (this.failed) return;
    let replies: Uint8Array[];
    try {
      replies = this.fromAgent.push(chunk);
    } catch (error) {
      this.fail(`from the agent: ${(error as Error).message}`);
      return;
    }
    for (const reply of replies) {
      if (!this.waiting) {
        this.fail("the agent sent a reply nobody asked for");
        return;
      }
      this.waiting = false;
      this.events.toClient(frameAgentMessage(reply));
      this.pump();
    }
  }

  private pump(): void {
    while (!this.waiting && !this.failed && this.queue.length) {
      const message = this.queue.shift()!;
      const decision = decideAgentRequest(message, this.policy);
      this.events.decided(decision);
      if (!decision.allow) {
        this.events.toClient(AGENT_FAILURE_FRAME);
        continue;
      }
      this.waiting = true;
      this.events.toAgent(frameAgentMessage(message));
    }
  }

  private fail(reason: string): void {
    this.failed = true;
    this.events.fail(reason);
  }
}
