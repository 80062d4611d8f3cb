import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { assets } from "../../../../lib/assets.ts";
import { BottleError } from "../../../../lib/errors.ts";
import { realExec } from "../../../../lib/exec.ts";
import {
  agentRelayCommand,
  formatSshLogLine,
  sshBottleEntries,
  sshConfigContent,
  sshGateConfig,
  sshGateEntries,
  sshKnownHosts,
  sshPlan,
  sshPublicKeys,
  SSH_AGENT_PORT,
  SSH_FIRST_PORT,
} from "../../../../lib/gates/ssh/config.ts";
import { inspectPrivateKey, readSshHosts } from "../../../../lib/gates/ssh/host.ts";
import { parseSshGateConfig } from "../../../../lib/gates/ssh/daemon/config.ts";
import { keyBlob } from "../../../../lib/gates/ssh/daemon/wire.ts";
import { parsePlan } from "../../../../lib/plan.ts";
import { provisionEntries } from "../../../../lib/provision.ts";
import { formatPreflight } from "../../../../lib/preflight.ts";
import { cleanupTempDirs, makePlan, tempDir } from "../../../helpers/unit.ts";

afterAll(cleanupTempDirs);

/** Tests that drive real host tools skip when the tool is missing (the images have them). */
const has = (...tools: string[]) => tools.every((tool) => Bun.which(tool) !== null);

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
const OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEHVmAhDjnZ5b5CJ6pBqpSC7W7gmLRr8c8GN6t9N4QOw";
const HOME = "/home/agent";

const plan = sshPlan([
  { host: "build.example.test", port: 22, user: "deploy", identityFile: "/keys/build", knownHostKey: HOST_KEY },
  { host: "10.1.2.3", port: 2222, identityFile: "/keys/lab", knownHostKey: HOST_KEY },
]);

function sh(args: string[]): string {
  const out = Bun.spawnSync(args, { stdout: "pipe", stderr: "pipe" });
  if (out.exitCode !== 0) throw new Error(`${args.join(" ")}: ${out.stderr.toString()}`);
  return out.stdout.toString();
}

/** `ssh -G HOST` under a config file: what real ssh would do, as `key value` lines. */
async function sshResolved(config: string, host: string, extra: string[] = []): Promise<Record<string, string[]>> {
  const dir = tempDir();
  writeFileSync(join(dir, "config"), config);
  const out = await realExec.run(["ssh", "-F", join(dir, "config"), ...extra, "-G", host], { env: { HOME: dir } });
  const options: Record<string, string[]> = {};
  for (const line of out.stdout.split("\n").filter(Boolean)) {
    const [key, ...rest] = line.split(" ");
    (options[key!] ??= []).push(rest.join(" "));
  }
  return options;
}

describe("the plan", () => {
  test("each host gets its own forwarder port from 2200; the agent port is 2199; no key material", () => {
    expect(plan.agentPort).toBe(SSH_AGENT_PORT);
    expect(plan.agentSocket).toBe("/run/bottle/ssh-agent.sock");
    expect(plan.hosts.map((host) => host.gatePort)).toEqual([SSH_FIRST_PORT, SSH_FIRST_PORT + 1]);
    expect(plan.hosts[0]).toEqual({ host: "build.example.test", port: 22, user: "deploy", gatePort: 2200, identityFile: "/keys/build", knownHostKey: HOST_KEY });
    expect(plan.hosts[1]).not.toHaveProperty("user");
    expect(parsePlan(makePlan({ ssh: plan }))?.ssh).toEqual(plan);
  });

  test("more hosts than forwarder ports is a clear error", () => {
    const many = Array.from({ length: 100 }, (_, i) => ({ host: `h${i}.test`, port: 22, identityFile: "/k", knownHostKey: HOST_KEY }));
    expect(() => sshPlan(many)).toThrow(BottleError);
    expect(sshPlan(many.slice(0, 99)).hosts.at(-1)?.gatePort).toBe(2298);
  });

  test("the preflight names each host and says the key stays in the gate", () => {
    const text = formatPreflight(makePlan({ ssh: plan }), []);
    expect(text).toContain("+ ssh (listed hosts, keys stay in the gate)");
    expect(text).toContain("deploy@build.example.test:22 (via ssh gate; key /keys/build stays in the gate)");
    expect(text).toContain("10.1.2.3:2222 (via ssh gate");
    expect(formatPreflight(makePlan(), [])).not.toContain("ssh");
  });
});

describe("the gate's files", () => {
  const config = sshGateConfig("bottle-x", plan, { "build.example.test": OTHER_KEY }, 65536);

  test("the config lists exactly the hosts with their ports, pinned keys and the login each may sign, the log and its cap, and the agent socket", () => {
    expect(config).toEqual({
      bottle: "bottle-x",
      listen: "gate",
      agentPort: 2199,
      agentSocket: "/run/bottle-ssh/agent.sock",
      log: "/var/log/bottle/ssh.jsonl",
      maxLogBytes: 65536,
      readyFile: "/run/bottle-ssh/ready",
      hosts: [
        { host: "build.example.test", port: 22, listenPort: 2200, hostKey: HOST_KEY, user: "deploy", key: OTHER_KEY },
        // No user in the manifest: the bottle user's own name, ssh's default; no derivable key: none.
        { host: "10.1.2.3", port: 2222, listenPort: 2201, hostKey: HOST_KEY, user: "agent" },
      ],
    });
  });

  test("the file the host writes is what the daemon's schema accepts; a bad field is named", () => {
    const file = `${JSON.stringify(config, null, 2)}\n`;
    expect(parseSshGateConfig(file)).toEqual(config);
    const broken = (change: (value: Record<string, unknown>) => void): string => {
      const value = structuredClone(config) as unknown as Record<string, unknown>;
      change(value);
      try {
        parseSshGateConfig(JSON.stringify(value));
        return "valid";
      } catch (error) {
        return (error as Error).message;
      }
    };
    expect(broken((value) => void ((value.hosts as Array<Record<string, unknown>>)[1]!.listenPort = 70000))).toStartWith("hosts[1].listenPort: ");
    expect(broken((value) => void (value.extra = true))).toStartWith("extra: ");
    expect(broken((value) => void delete value.readyFile)).toStartWith("readyFile: ");
  });

  test("entries are root-only: dirs 0700, keys and config 0600, the start script 0700", () => {
    const entries = sshGateEntries(config, [
      { host: "build.example.test", identity: "KEY-ONE" },
      { host: "10.1.2.3", identity: new TextEncoder().encode("KEY-TWO") },
    ]);
    const byPath = Object.fromEntries(entries.map((entry) => [entry.path, entry]));
    expect(Object.keys(byPath).sort()).toEqual(
      ["etc/bottle/ssh", "etc/bottle/ssh/keys", "etc/bottle/ssh/keys/0", "etc/bottle/ssh/keys/1", "etc/bottle/ssh/ssh-gate.mjs", "etc/bottle/ssh/ssh.json", "etc/bottle/ssh/start"].sort(),
    );
    for (const entry of entries) {
      expect(entry.uid).toBe(0);
      expect(entry.gid).toBe(0);
      expect(entry.mode).toBe(entry.type === "dir" || entry.path.endsWith("/start") ? 0o700 : 0o600);
    }
    expect(byPath["etc/bottle/ssh/keys/0"]!.content).toBe("KEY-ONE");
    expect(JSON.parse(String(byPath["etc/bottle/ssh/ssh.json"]!.content))).toEqual(config);
    expect(byPath["etc/bottle/ssh/start"]!.content).toBe(assets.sshStart);
    expect(byPath["etc/bottle/ssh/ssh-gate.mjs"]!.content).toBe(assets.sshGate);
    // Nothing of a private key in the config (the public halves are in it).
    expect(String(byPath["etc/bottle/ssh/ssh.json"]!.content)).not.toContain("KEY-");
  });

  test("no hosts, no files; keys out of step with the hosts are a bug", () => {
    expect(sshGateEntries(sshGateConfig("b", sshPlan([]), {}, 0), [])).toEqual([]);
    expect(() => sshGateEntries(config, [{ host: "10.1.2.3", identity: "x" }, { host: "build.example.test", identity: "y" }])).toThrow();
  });

  test("the daemon bundle runs on Node (node:* imports only) and the start script is bash", () => {
    expect(assets.sshGate).toContain("ssh-gate");
    const imports = [...assets.sshGate.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]!);
    expect(imports.length).toBeGreaterThan(0);
    for (const name of imports) expect(name).toStartWith("node:");
    expect(assets.sshStart).toStartWith("#!/bin/bash\n");
  });

  test.skipIf(!has("bash"))("the start script parses", async () => {
    const out = await realExec.run(["bash", "-n", "-c", assets.sshStart], { check: false });
    expect(out.stderr).toBe("");
    expect(out.exitCode).toBe(0);
  });
});

describe("the bottle's ssh config", () => {
  const publicKeys = { "build.example.test": HOST_KEY };
  const text = sshConfigContent(plan, HOME, publicKeys);

  test.skipIf(!has("ssh"))("real ssh sends each listed host to its forwarder on the gate, pinned, through the agent socket", async () => {
    const build = await sshResolved(text, "build.example.test");
    expect(build.hostname).toEqual(["gate"]);
    expect(build.port).toEqual(["2200"]);
    expect(build.user).toEqual(["deploy"]);
    expect(build.hostkeyalias).toEqual(["build.example.test"]);
    expect(build.stricthostkeychecking).toEqual(["true"]);
    expect(build.userknownhostsfile).toEqual([`${HOME}/.ssh/known_hosts`]);
    expect(build.globalknownhostsfile).toEqual(["/dev/null"]);
    expect(build.identityagent).toEqual(["/run/bottle/ssh-agent.sock"]);
    expect(build.identityfile).toEqual([`${HOME}/.ssh/bottle-gate/build.example.test.pub`]);
    expect(build.identitiesonly).toEqual(["yes"]);
    expect(build.forwardagent).toEqual(["no"]);
    const lab = await sshResolved(text, "10.1.2.3");
    expect(lab.hostname).toEqual(["gate"]);
    expect(lab.port).toEqual(["2201"]);
    expect(lab.hostkeyalias).toEqual(["10.1.2.3"]);
    // No public key known: ssh may try every key in the agent (the gate's agent has only this bottle's).
    expect(lab.identitiesonly).toEqual(["no"]);
    // A port on the command line goes to that port of the gate (where nothing listens).
    expect((await sshResolved(text, "build.example.test", ["-p", "2222"])).port).toEqual(["2222"]);
    // An unlisted host is left alone (and has no route out of the bottle).
    const other = await sshResolved(text, "other.example.test");
    expect(other.hostname).toEqual(["other.example.test"]);
  });

  test.skipIf(!has("ssh-keygen"))("known_hosts holds each pinned key under the host's name (its HostKeyAlias)", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "known_hosts"), sshKnownHosts(plan.hosts));
    for (const host of ["build.example.test", "10.1.2.3"]) {
      const out = await realExec.run(["ssh-keygen", "-F", host, "-f", join(dir, "known_hosts")], { check: false });
      expect(out.exitCode).toBe(0);
      expect(out.stdout).toContain(`${host} ${HOST_KEY}`);
    }
    expect((await realExec.run(["ssh-keygen", "-F", "other.test", "-f", join(dir, "known_hosts")], { check: false })).exitCode).not.toBe(0);
  });

  test("provisioning writes ~/.ssh for the bottle user: config 0600, known_hosts, public keys only", () => {
    const entries = sshBottleEntries(plan, publicKeys, HOME, 1234, 1235);
    expect(entries.map((entry) => [entry.path, entry.mode.toString(8)])).toEqual([
      [`${HOME}/.ssh`, "700"],
      [`${HOME}/.ssh/config`, "600"],
      [`${HOME}/.ssh/known_hosts`, "644"],
      [`${HOME}/.ssh/bottle-gate`, "700"],
      [`${HOME}/.ssh/bottle-gate/build.example.test.pub`, "644"],
    ]);
    for (const entry of entries) expect([entry.uid, entry.gid]).toEqual([1234, 1235]);
    expect(String(entries[4]!.content)).toStartWith(`${HOST_KEY} `);
    const withPlan = provisionEntries({ plan: makePlan({ ssh: plan }), envValues: {}, prompt: "", skillDirs: {}, sshPublicKeys: publicKeys });
    expect(withPlan.map((entry) => entry.path)).toContain(`${HOME}/.ssh/config`);
    expect(provisionEntries({ plan: makePlan(), envValues: {}, prompt: "", skillDirs: {} }).some((entry) => entry.path.includes(".ssh"))).toBe(false);
  });

  test("the relay listens on the plan's socket and connects to the gate's agent port", () => {
    const argv = agentRelayCommand(plan);
    expect(argv.slice(0, 2)).toEqual(["sh", "-c"]);
    expect(argv[2]).toContain("socat UNIX-LISTEN:/run/bottle/ssh-agent.sock,fork,unlink-early,mode=600 TCP:gate:2199");
    expect(argv[2]).toContain("</dev/null >/dev/null 2>&1 &");
  });
});

describe("keys on the host", () => {
  const keygen = (dir: string, name: string, ...args: string[]) => {
    sh(["ssh-keygen", "-q", "-N", "", "-C", `test-${name}`, "-f", join(dir, name), ...args]);
    return { file: join(dir, name), pub: readFileSync(join(dir, `${name}.pub`), "utf8").trim().split(/\s+/).slice(0, 2).join(" ") };
  };

  test.skipIf(!has("ssh-keygen"))("the public half is derived from OpenSSH, PEM and PKCS#8 keys as ssh-keygen sees it", () => {
    const dir = tempDir();
    const cases = [
      keygen(dir, "ed", "-t", "ed25519"),
      keygen(dir, "rsa-pem", "-t", "rsa", "-b", "2048", "-m", "PEM"),
      keygen(dir, "ecdsa-pkcs8", "-t", "ecdsa", "-b", "384", "-m", "PKCS8"),
      keygen(dir, "ecdsa-521", "-t", "ecdsa", "-b", "521"),
    ];
    for (const { file, pub } of cases) expect(inspectPrivateKey(readFileSync(file))).toEqual({ kind: "key", publicKey: pub });
    // The derived key is a valid blob of its own type.
    expect(keyBlob(cases[0]!.pub).length).toBe(51);
  });

  test.skipIf(!has("ssh-keygen"))("passphrase-protected keys and non-keys are recognised", () => {
    const dir = tempDir();
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret-pass", "-f", join(dir, "locked")]);
    sh(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "secret-pass", "-f", join(dir, "locked-pem")]);
    expect(inspectPrivateKey(readFileSync(join(dir, "locked")))).toEqual({ kind: "encrypted" });
    expect(inspectPrivateKey(readFileSync(join(dir, "locked-pem")))).toEqual({ kind: "encrypted" });
    expect(inspectPrivateKey(readFileSync(join(dir, "locked.pub")))).toEqual({ kind: "not-a-key" });
    expect(inspectPrivateKey("hello")).toEqual({ kind: "not-a-key" });
  });

  test.skipIf(!has("ssh-keygen"))("readSshHosts reads keys at launch; missing, locked and non-key files are clear errors naming the host", () => {
    const dir = tempDir();
    const good = keygen(dir, "good", "-t", "ed25519");
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pw-123456", "-f", join(dir, "locked")]);
    const host = (identityFile: string) => ({ bottle: { ssh: { hosts: [{ host: "h.test", port: 22, identityFile, knownHostKey: HOST_KEY }] } } }) as never;
    const [read] = readSshHosts(host(good.file));
    expect(read!.host).toBe("h.test");
    expect(Buffer.from(read!.identity).toString()).toBe(readFileSync(good.file, "utf8"));
    expect(read!.publicKey).toBe(good.pub);
    expect(sshPublicKeys([read!])).toEqual({ "h.test": good.pub });
    for (const [file, message] of [
      [join(dir, "missing"), "cannot read the identity_file of ssh host h.test"],
      [join(dir, "locked"), "protected by a passphrase"],
      [`${good.file}.pub`, "is not a private SSH key"],
    ] as const) {
      expect(() => readSshHosts(host(file))).toThrow(BottleError);
      expect(() => readSshHosts(host(file))).toThrow(message);
    }
  });
});

describe("the ssh log", () => {
  test("connections show host:port, address, bytes each way and duration; agent lines show the request", () => {
    const connect = formatSshLogLine({
      time: "2024-01-01T00:00:00.000Z",
      event: "connect",
      host: "build.example.test",
      port: 22,
      address: "10.0.0.5",
      decision: "allow",
      bytesUp: 3000,
      bytesDown: 2 * 1024 * 1024,
      durationMs: 1500,
    });
    expect(connect).toBe("2024-01-01T00:00:00.000Z  allow  connect  build.example.test:22  (10.0.0.5)  ↑2.9 KiB ↓2.0 MiB  1.5s");
    const denied = formatSshLogLine({ event: "connect", host: "h.test", port: 22, decision: "deny", bytesUp: 10, bytesDown: 20, durationMs: 5, detail: "host key mismatch" });
    expect(denied).toContain("deny ");
    expect(denied).toContain("(host key mismatch)");
    expect(formatSshLogLine({ event: "agent", decision: "deny", request: "remove-all-identities", detail: "no" })).toContain("agent    remove-all-identities  (no)");
    expect(formatSshLogLine({ event: "agent", decision: "allow", request: "sign", user: "deploy", key: "ssh-ed25519 SHA256:x" })).toContain("sign  user deploy  ssh-ed25519 SHA256:x");
  });
});
