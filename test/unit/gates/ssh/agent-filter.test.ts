import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createPublicKey, verify } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import {
  AGENT_FAILURE_FRAME,
  AGENT_MSG,
  AgentFilter,
  AgentFramer,
  decideAgentRequest,
  frameAgentMessage,
  MAX_AGENT_MESSAGE,
  signPolicy,
} from "../../../../lib/gates/ssh/daemon/agent-filter.ts";
import type { SshGateConfig } from "../../../../lib/gates/ssh/daemon/config.ts";
import { MAX_LOGGED_TEXT, SshGate, printable } from "../../../../lib/gates/ssh/daemon/gate.ts";
import { WireReader, concat, keyBlob, sshString, uint32 } from "../../../../lib/gates/ssh/daemon/wire.ts";
import { cleanupTempDirs, tempDir } from "../../../helpers/unit.ts";

/**
 * The agent-protocol filter: the bottle may list keys and have them sign SSH
 * logins, nothing else. Crafted messages first, then the real ssh-agent and
 * ssh-add on the host behind the real gate code (skipped without them).
 */

afterAll(cleanupTempDirs);

const KEY_TEXT = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
const OTHER_KEY_TEXT = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEHVmAhDjnZ5b5CJ6pBqpSC7W7gmLRr8c8GN6t9N4QOw";
const KEY = keyBlob(KEY_TEXT);
const OTHER_KEY = keyBlob(OTHER_KEY_TEXT);
/** The bottle lists deploy@ with KEY (as the crafted logins below use by default) and agent@ with OTHER_KEY. */
const POLICY = signPolicy([
  { user: "deploy", key: KEY_TEXT },
  { user: "agent", key: OTHER_KEY_TEXT },
]);

interface Login {
  sessionId?: Uint8Array;
  messageType?: number;
  user?: string;
  service?: string;
  method?: string;
  hasSignature?: boolean;
  algorithm?: string;
  key?: Uint8Array;
  hostKey?: Uint8Array;
}

/** The data an SSH client signs to log in (RFC 4252 §7), with parts replaceable. */
function loginData(login: Login = {}): Uint8Array {
  const method = login.method ?? "publickey";
  return concat(
    sshString(login.sessionId ?? new Uint8Array(32).fill(7)),
    Uint8Array.of(login.messageType ?? 50),
    sshString(login.user ?? "deploy"),
    sshString(login.service ?? "ssh-connection"),
    sshString(method),
    Uint8Array.of(login.hasSignature === false ? 0 : 1),
    sshString(login.algorithm ?? "ssh-ed25519"),
    sshString(login.key ?? KEY),
    ...(login.hostKey ? [sshString(login.hostKey)] : []),
  );
}

function signRequest(data: Uint8Array, key = KEY, flags = 0): Uint8Array {
  return concat(Uint8Array.of(AGENT_MSG.SIGN_REQUEST), sshString(key), sshString(data), uint32(flags));
}

describe("which requests reach the agent", () => {
  test("listing identities and signing an SSH login are allowed", () => {
    expect(decideAgentRequest(Uint8Array.of(AGENT_MSG.REQUEST_IDENTITIES), POLICY)).toEqual({ allow: true, request: "request-identities" });
    const sign = decideAgentRequest(signRequest(loginData(), KEY, 4), POLICY);
    expect(sign).toMatchObject({ allow: true, request: "sign", user: "deploy", keyType: "ssh-ed25519" });
    // OpenSSH's host-bound login (it adds the server's host key).
    expect(decideAgentRequest(signRequest(loginData({ method: "publickey-hostbound-v00@openssh.com", hostKey: OTHER_KEY })), POLICY)).toMatchObject({ allow: true });
  });

  test.each([
    ["add-identity", AGENT_MSG.ADD_IDENTITY],
    ["add-identity-constrained", AGENT_MSG.ADD_ID_CONSTRAINED],
    ["remove-identity", AGENT_MSG.REMOVE_IDENTITY],
    ["remove-all-identities", AGENT_MSG.REMOVE_ALL_IDENTITIES],
    ["add-smartcard-key", AGENT_MSG.ADD_SMARTCARD_KEY],
    ["add-smartcard-key-constrained", AGENT_MSG.ADD_SMARTCARD_KEY_CONSTRAINED],
    ["remove-smartcard-key", AGENT_MSG.REMOVE_SMARTCARD_KEY],
    ["lock", AGENT_MSG.LOCK],
    ["unlock", AGENT_MSG.UNLOCK],
    ["extension", AGENT_MSG.EXTENSION],
    ["rsa1-request-identities", 1],
    ["rsa1-remove-all-identities", 9],
    ["type-200", 200],
  ])("%s is refused", (name, type) => {
    const decision = decideAgentRequest(concat(Uint8Array.of(type), sshString("payload"), sshString(KEY)), POLICY);
    expect(decision).toMatchObject({ allow: false, request: name });
  });

  test("a lock or session-bind extension with a plausible payload is refused all the same", () => {
    expect(decideAgentRequest(concat(Uint8Array.of(AGENT_MSG.LOCK), sshString("passphrase")), POLICY).allow).toBe(false);
    expect(decideAgentRequest(concat(Uint8Array.of(AGENT_MSG.EXTENSION), sshString("session-bind@openssh.com"), sshString(KEY)), POLICY)).toMatchObject({ allow: false, routine: true });
    expect(decideAgentRequest(concat(Uint8Array.of(AGENT_MSG.EXTENSION), sshString("query")), POLICY).allow).toBe(false);
  });

  test.each([
    ["arbitrary data", new TextEncoder().encode("sign me, I am a git commit")],
    ["an SSHSIG blob (ssh-keygen -Y sign, git commit signing)", concat(new TextEncoder().encode("SSHSIG"), sshString("git"), sshString(""), sshString("sha512"), sshString(new Uint8Array(64)))],
    ["a login for another key than the signing one", loginData({ key: OTHER_KEY })],
    ["another message type", loginData({ messageType: 51 })],
    ["another service", loginData({ service: "ssh-userauth" })],
    ["another method", loginData({ method: "hostbased" })],
    ["a public-key query without signature flag", loginData({ hasSignature: false })],
    ["a short session id", loginData({ sessionId: new Uint8Array(8) })],
    ["a huge session id", loginData({ sessionId: new Uint8Array(200) })],
    ["trailing bytes", concat(loginData(), Uint8Array.of(0))],
    ["a truncated login", loginData().subarray(0, 60)],
    ["empty data", new Uint8Array(0)],
  ])("signing %s is refused", (_, data) => {
    expect(decideAgentRequest(signRequest(data), POLICY)).toMatchObject({ allow: false, request: "sign" });
  });

  test("malformed requests are refused: a payload on REQUEST_IDENTITIES, truncated or padded sign requests", () => {
    expect(decideAgentRequest(Uint8Array.of(AGENT_MSG.REQUEST_IDENTITIES, 0), POLICY).allow).toBe(false);
    expect(decideAgentRequest(signRequest(loginData()).subarray(0, 20), POLICY).allow).toBe(false);
    expect(decideAgentRequest(concat(signRequest(loginData()), Uint8Array.of(1)), POLICY).allow).toBe(false);
    expect(decideAgentRequest(new Uint8Array(0), POLICY)).toMatchObject({ allow: false, request: "empty" });
  });
});

describe("signing only the logins the bottle lists: user and key", () => {
  test("a login as a listed user with that user's key is signed; the same login as another user is refused, naming the user", () => {
    expect(decideAgentRequest(signRequest(loginData({ user: "deploy" })), POLICY)).toMatchObject({ allow: true, request: "sign", user: "deploy" });
    expect(decideAgentRequest(signRequest(loginData({ user: "agent", key: OTHER_KEY }), OTHER_KEY), POLICY)).toMatchObject({ allow: true, user: "agent" });
    for (const user of ["root", "admin", "", "Deploy", "deploy ", "deploy\0", "deploy@other.test"]) {
      const decision = decideAgentRequest(signRequest(loginData({ user })), POLICY);
      expect(decision).toMatchObject({ allow: false, request: "sign", user, reason: "refused to sign: no ssh.hosts entry of this bottle logs in as this user" });
    }
    // OpenSSH's host-bound login is held to the same rule.
    const hostBound = loginData({ user: "root", method: "publickey-hostbound-v00@openssh.com", hostKey: OTHER_KEY });
    expect(decideAgentRequest(signRequest(hostBound), POLICY)).toMatchObject({ allow: false, user: "root" });
  });

  test("a listed user with a key listed only for another user is refused", () => {
    // deploy's key for agent@, agent's key for deploy@.
    for (const [user, key] of [["agent", KEY], ["deploy", OTHER_KEY]] as const)
      expect(decideAgentRequest(signRequest(loginData({ user, key }), key), POLICY)).toMatchObject({
        allow: false,
        user,
        reason: "refused to sign: this key is not the identity of an ssh.hosts entry for this user",
      });
  });

  test("the policy: each user with the keys of every host listing it; a host whose key is unknown signs nothing", () => {
    const policy = signPolicy([
      { user: "deploy", key: KEY_TEXT },
      { user: "deploy", key: OTHER_KEY_TEXT },
      { user: "ops", key: KEY_TEXT },
      { user: "nokey" },
    ]);
    expect([...policy.keys()].sort()).toEqual(["deploy", "ops"]);
    expect(policy.get("deploy")).toEqual([KEY, OTHER_KEY]);
    expect(decideAgentRequest(signRequest(loginData({ user: "deploy", key: OTHER_KEY }), OTHER_KEY), policy).allow).toBe(true);
    expect(decideAgentRequest(signRequest(loginData({ user: "nokey" })), policy).allow).toBe(false);
    // No hosts, no signatures.
    expect(decideAgentRequest(signRequest(loginData()), signPolicy([])).allow).toBe(false);
  });

  test("a user name from the bottle is logged printable: control bytes, backslashes and non-ASCII escaped, length capped", () => {
    expect(printable("deploy")).toBe("deploy");
    expect(printable("r\u001b[2Joot\\x\u0085\u00e9\u2028")).toBe("r\\x1b[2Joot\\x5cx\\x85\\xe9\\u{2028}");
    const long = printable("\u0007".repeat(1000));
    expect(long.length).toBe(MAX_LOGGED_TEXT + 1);
    expect(long.endsWith("…")).toBe(true);
  });
});

describe("framing", () => {
  test("messages split over chunks and several in one chunk come out whole", () => {
    const framer = new AgentFramer();
    const a = frameAgentMessage(Uint8Array.of(11));
    const b = frameAgentMessage(signRequest(loginData()));
    const stream = concat(a, b, a);
    const out: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i += 3) out.push(...framer.push(stream.subarray(i, i + 3)));
    expect(out.map((message) => message[0])).toEqual([11, 13, 11]);
    expect(out[1]).toEqual(signRequest(loginData()));
  });

  test("a zero or oversized length ends the connection", () => {
    expect(() => new AgentFramer().push(uint32(0))).toThrow();
    expect(() => new AgentFramer().push(uint32(MAX_AGENT_MESSAGE + 1))).toThrow();
    expect(new AgentFramer().push(uint32(MAX_AGENT_MESSAGE))).toEqual([]);
  });
});

describe("one connection through the filter", () => {
  function harness() {
    const toClient: Uint8Array[] = [];
    const toAgent: Uint8Array[] = [];
    const failures: string[] = [];
    const decisions: string[] = [];
    const filter = new AgentFilter(
      {
        toClient: (bytes) => toClient.push(bytes),
        toAgent: (bytes) => toAgent.push(bytes),
        decided: (decision) => decisions.push(`${decision.allow ? "allow" : "deny"} ${decision.request}`),
        fail: (reason) => failures.push(reason),
      },
      POLICY,
    );
    return { filter, toClient, toAgent, failures, decisions };
  }

  test("refused requests never reach the agent and are answered with FAILURE", () => {
    const h = harness();
    h.filter.clientData(concat(frameAgentMessage(Uint8Array.of(AGENT_MSG.REMOVE_ALL_IDENTITIES)), frameAgentMessage(concat(Uint8Array.of(AGENT_MSG.LOCK), sshString("pw")))));
    expect(h.toAgent).toEqual([]);
    expect(h.toClient).toEqual([AGENT_FAILURE_FRAME, AGENT_FAILURE_FRAME]);
    expect(h.decisions).toEqual(["deny remove-all-identities", "deny lock"]);
  });

  test("replies keep request order: a refusal queued behind a forwarded request waits for its reply", () => {
    const h = harness();
    h.filter.clientData(concat(frameAgentMessage(Uint8Array.of(AGENT_MSG.REQUEST_IDENTITIES)), frameAgentMessage(Uint8Array.of(AGENT_MSG.REMOVE_ALL_IDENTITIES))));
    expect(h.toAgent).toEqual([frameAgentMessage(Uint8Array.of(AGENT_MSG.REQUEST_IDENTITIES))]);
    expect(h.toClient).toEqual([]);
    const answer = frameAgentMessage(concat(Uint8Array.of(AGENT_MSG.IDENTITIES_ANSWER), uint32(0)));
    h.filter.agentData(answer.subarray(0, 3));
    expect(h.toClient).toEqual([]);
    h.filter.agentData(answer.subarray(3));
    expect(h.toClient).toEqual([answer, AGENT_FAILURE_FRAME]);
  });

  test("bad framing from the bottle, an unsolicited agent reply or a flood of requests ends the connection", () => {
    const bad = harness();
    bad.filter.clientData(uint32(MAX_AGENT_MESSAGE + 1));
    expect(bad.failures.length).toBe(1);
    const unsolicited = harness();
    unsolicited.filter.agentData(frameAgentMessage(Uint8Array.of(AGENT_MSG.SUCCESS)));
    expect(unsolicited.failures).toEqual(["the agent sent a reply nobody asked for"]);
    const flood = harness();
    const one = frameAgentMessage(Uint8Array.of(AGENT_MSG.REQUEST_IDENTITIES));
    flood.filter.clientData(concat(...Array.from({ length: AgentFilter.MAX_QUEUED + 2 }, () => one)));
    expect(flood.failures).toEqual(["too many requests queued"]);
  });
});

// ---- the real ssh-agent and ssh-add, behind the real gate code ----

const hasOpenSsh = ["ssh-agent", "ssh-add", "ssh-keygen"].every((tool) => Bun.which(tool) !== null);

describe.skipIf(!hasOpenSsh)("the real ssh-agent behind the gate's agent port", () => {
  let dir = "";
  let agent: ReturnType<typeof Bun.spawn> | undefined;
  let gate: SshGate | undefined;
  let relay: Server | undefined;
  let agentSocket = "";
  let bottleSocket = "";
  let publicKey = "";
  const log: Array<Record<string, unknown>> = [];

  const run = (args: string[], socket = bottleSocket, stdin = "") => {
    const out = Bun.spawnSync(args, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, SSH_AUTH_SOCK: socket, SSH_ASKPASS_REQUIRE: "never" }, stdin: new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
    return { exitCode: out.exitCode, stdout: out.stdout.toString(), stderr: out.stderr.toString() };
  };

  beforeAll(async () => {
    dir = tempDir("bottle-ssh-agent-");
    agentSocket = join(dir, "agent.sock");
    bottleSocket = join(dir, "bottle.sock");
    for (const name of ["id", "new"]) Bun.spawnSync(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", `gate-${name}`, "-f", join(dir, name)]);
    publicKey = readFileSync(join(dir, "id.pub"), "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
    agent = Bun.spawn(["ssh-agent", "-D", "-a", agentSocket], { stdout: "ignore", stderr: "ignore" });
    for (let i = 0; i < 100 && run(["ssh-add", "-l"], agentSocket).exitCode === 2; i++) await Bun.sleep(20);
    expect(run(["ssh-add", "-q", join(dir, "id")], agentSocket).exitCode).toBe(0);
    // One listed host, deploy@ with the agent's key (its forwarder is not used here).
    const config: SshGateConfig = {
      bottle: "bottle-unit",
      listen: "127.0.0.1",
      agentPort: 0,
      agentSocket,
      log: join(dir, "ssh.jsonl"),
      maxLogBytes: 0,
      readyFile: join(dir, "ready"),
      hosts: [{ host: "listed.test", port: 22, listenPort: 0, hostKey: publicKey, user: "deploy", key: publicKey }],
    };
    gate = new SshGate({ config, address: "127.0.0.1", log: (entry) => log.push(entry) });
    const [port] = await gate.start();
    // The bottle's side: a unix socket relayed to the gate's TCP port (socat in the real bottle).
    relay = createServer({ allowHalfOpen: true }, (client: Socket) => {
      const upstream = connect({ host: "127.0.0.1", port: port!, allowHalfOpen: true });
      client.pipe(upstream).pipe(client);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
    });
    await new Promise<void>((resolve) => relay!.listen(bottleSocket, resolve));
  });

  afterAll(async () => {
    relay?.close();
    await gate?.close();
    agent?.kill();
  });

  /** Run a Bun.spawnSync-like command without blocking the event loop the gate runs on. */
  async function runAsync(args: string[], stdin = "", socket = bottleSocket) {
    const proc = Bun.spawn(args, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, SSH_AUTH_SOCK: socket, SSH_ASKPASS_REQUIRE: "never", DISPLAY: "" }, stdin: new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { exitCode, stdout, stderr };
  }

  test("ssh-add -L through the gate shows the public key only", async () => {
    const out = await runAsync(["ssh-add", "-L"]);
    expect(out.exitCode).toBe(0);
    expect(out.stdout.trim().split("\n")).toEqual([`${publicKey} gate-id`]);
    expect(out.stdout).not.toContain("PRIVATE");
  });

  test("ssh-add -D, adding a key, removing a key, locking and unlocking are refused; the agent is unchanged", async () => {
    const attempts = [
      await runAsync(["ssh-add", "-D"]),
      await runAsync(["ssh-add", join(dir, "new")]),
      await runAsync(["ssh-add", "-d", join(dir, "id.pub")]),
      await runAsync(["ssh-add", "-x"], "lock-pass\nlock-pass\n"),
      await runAsync(["ssh-add", "-X"], "lock-pass\n"),
    ];
    for (const attempt of attempts) expect(attempt.exitCode).not.toBe(0);
    // Straight at the agent (as only the gate can): still one key, not locked.
    const direct = run(["ssh-add", "-L"], agentSocket);
    expect(direct.exitCode).toBe(0);
    expect(direct.stdout.trim().split("\n")).toEqual([`${publicKey} gate-id`]);
    const denied = log.filter((entry) => entry.decision === "deny").map((entry) => entry.request);
    for (const request of ["remove-all-identities", "add-identity", "remove-identity", "lock", "unlock"]) expect(denied).toContain(request);
  });

  test("signing anything but an SSH login (ssh-keygen -Y sign, as git commit signing does) is refused", async () => {
    writeFileSync(join(dir, "commit.txt"), "tree 0000\n\nsigned commit\n");
    const out = await runAsync(["ssh-keygen", "-Y", "sign", "-n", "git", "-f", join(dir, "id.pub"), join(dir, "commit.txt")]);
    expect(out.exitCode).not.toBe(0);
    expect(log.some((entry) => entry.request === "sign" && entry.decision === "deny")).toBe(true);
  });

  test("a client that half-closes right after asking still gets its answer", async () => {
    const socket = connect({ path: bottleSocket, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    await new Promise<void>((resolve) => socket.on("connect", () => resolve()));
    socket.end(concat(frameAgentMessage(Uint8Array.of(AGENT_MSG.REQUEST_IDENTITIES)), frameAgentMessage(Uint8Array.of(AGENT_MSG.REMOVE_ALL_IDENTITIES))));
    await new Promise<void>((resolve) => socket.on("close", () => resolve()));
    const replies = new AgentFramer().push(Buffer.concat(chunks));
    expect(replies.map((reply) => reply[0])).toEqual([AGENT_MSG.IDENTITIES_ANSWER, AGENT_MSG.FAILURE]);
  });

  /** One request through the bottle's socket; the reply's body. */
  async function ask(message: Uint8Array): Promise<Uint8Array> {
    const socket = connect({ path: bottleSocket });
    const reply = await new Promise<Uint8Array>((resolve, reject) => {
      const framer = new AgentFramer();
      socket.on("data", (chunk: Buffer) => {
        const [body] = framer.push(chunk);
        if (body) resolve(body);
      });
      socket.on("error", reject);
      socket.write(frameAgentMessage(message));
    });
    socket.destroy();
    return reply;
  }

  test("an SSH login is signed by the real agent, with a signature that verifies", async () => {
    const data = loginData({ key: keyBlob(publicKey) });
    const reply = await ask(signRequest(data, keyBlob(publicKey)));
    expect(reply[0]).toBe(AGENT_MSG.SIGN_RESPONSE);
    const signature = new WireReader(new WireReader(reply.subarray(1)).string());
    expect(signature.text()).toBe("ssh-ed25519");
    const raw = signature.string();
    const x = Buffer.from(new WireReader(keyBlob(publicKey).subarray(15)).string()).toString("base64url");
    expect(verify(null, data, createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" }), raw)).toBe(true);
    expect(log.some((entry) => entry.request === "sign" && entry.decision === "allow" && entry.user === "deploy")).toBe(true);
  });

  test("the same login as root is refused by the gate, never reaches the agent, and is logged with its reason and the user escaped", async () => {
    for (const user of ["root", "r\u001b[31moot"]) {
      const reply = await ask(signRequest(loginData({ user, key: keyBlob(publicKey) }), keyBlob(publicKey)));
      expect(reply).toEqual(Uint8Array.of(AGENT_MSG.FAILURE));
    }
    const refused = log.filter((entry) => entry.request === "sign" && entry.decision === "deny" && typeof entry.user === "string");
    expect(refused.map((entry) => entry.user)).toEqual(["root", "r\\x1b[31moot"]);
    for (const entry of refused) expect(entry).toMatchObject({ event: "agent", detail: "refused to sign: no ssh.hosts entry of this bottle logs in as this user" });
    // A reason that quotes the request (the login's method) is escaped the same way.
    await ask(signRequest(loginData({ method: "x\u001b]0;pwned\u0007" })));
    expect(log.at(-1)).toMatchObject({ decision: "deny", request: "sign", detail: "refused to sign: not a public-key login (x\\x1b]0;pwned\\x07)" });
  });
});
