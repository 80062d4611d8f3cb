import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeSandbox, runBottle, writeFile, type Sandbox } from "../helpers/cli.ts";
import { BASE_IMAGE, describeDocker, docker, dockerOk, objectsWithLabel, testImage, uniqueId, removeLabelled } from "../helpers/docker.ts";
import { containerIp, sshKeygen, startSshd, waitForLogLine } from "../helpers/world.ts";

/**
 * The SSH gate end to end: real OpenSSH in the bottle, a real ssh-agent and
 * forwarder in the gate, a real sshd. The "outside" host is a container this
 * test starts (openssh-server on the base image) on the bottle's egress
 * network under made-up names; its host key and the user's key pair are
 * generated here, so the test knows what to pin.
 */

const LISTED = "listed.ssh.test";
/** The same sshd, listed with a host key it does not have. */
const WRONG_KEY = "wrongkey.ssh.test";
/** The same sshd again, not listed at all. */
const OTHER = "other.ssh.test";
/** The same sshd, listed without a user: ssh logs in as the bottle's own user. */
const NO_USER = "nouser.ssh.test";

const SSHD_DOCKERFILE = `ARG BASE_IMAGE
FROM \${BASE_IMAGE}
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server rsync >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --shell /bin/bash deploy && usermod -p '*' deploy && mkdir -p /run/sshd && rm -f /etc/ssh/ssh_host_*
`;


function sshdImage(): string {
  return testImage("bottle-test-sshd", SSHD_DOCKERFILE);
}

const pub = (path: string) => readFileSync(path, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");

describeDocker("the SSH gate", () => {
  let sandbox: Sandbox;
  const agent = uniqueId("sshgate");
  const label = `bottle.test=${agent}`;
  let name = "";
  let keys = "";
  let sshd = "";
  let userPub = "";
  let privateKeyBody = "";

  const inBottle = (script: string, stdin?: string) => runBottle(sandbox, ["exec", name, "--", "bash", "-c", script], stdin === undefined ? {} : { stdin });
  const SSH = "ssh -o ConnectTimeout=10";

  beforeAll(async () => {
    keys = mkdtempSync(join(tmpdir(), "bottle-ssh-keys-"));
    sshKeygen(keys, "id_ed25519", "bottle-test-user");
    sshKeygen(keys, "host_key", "bottle-test-host");
    sshKeygen(keys, "impostor_key", "not-the-host");
    userPub = pub(join(keys, "id_ed25519.pub"));
    // A line of the private part (the first ones hold the public key).
    privateKeyBody = readFileSync(join(keys, "id_ed25519"), "utf8").split("\n")[3]!;

    // The outside host: sshd on 22 and 2222, the user's key authorized for deploy.
    sshd = startSshd({ prefix: "sshd", image: sshdImage(), keys, label, user: "deploy", home: "/home/deploy", ports: [22, 2222] });

    sandbox = makeSandbox();
    writeFile(
      join(sandbox.config, "bottles", "sshgate.yaml"),
      [
        "workspace: none",
        "ssh:",
        "  hosts:",
        `    - host: ${LISTED}`,
        "      user: deploy",
        `      identity_file: ${join(keys, "id_ed25519")}`,
        `      known_host_key: "${pub(join(keys, "host_key.pub"))}"`,
        `    - host: ${WRONG_KEY}`,
        "      user: deploy",
        `      identity_file: ${join(keys, "id_ed25519")}`,
        `      known_host_key: "${pub(join(keys, "impostor_key.pub"))}"`,
        `    - host: ${NO_USER}`,
        `      identity_file: ${join(keys, "id_ed25519")}`,
        `      known_host_key: "${pub(join(keys, "host_key.pub"))}"`,
        "",
      ].join("\n"),
    );
    writeFile(join(sandbox.config, "agents", `${agent}.md`), "---\nbottle: sshgate\n---\nssh gate test agent\n");
    const up = await runBottle(sandbox, ["up", agent, "--yes", "--detach"]);
    expect(up.stderr.includes("bottle: ") ? up.stderr : "").toBe("");
    expect(up.stderr).toContain(`deploy@${LISTED}:22 (via ssh gate`);
    name = up.stdout.trim();
    expect(name).toStartWith("bottle-");
    docker("network", "connect", "--alias", LISTED, "--alias", WRONG_KEY, "--alias", OTHER, "--alias", NO_USER, `${name}-egress`, sshd);
    waitForLogLine(sshd, "Server listening");
  }, 600_000);

  afterAll(async () => {
    if (name) await runBottle(sandbox, ["down", name]);
    removeLabelled(label, `bottle.agent=${agent}`);
    if (keys) rmSync(keys, { recursive: true, force: true });
  });

  test("`ssh <listed host>` just works: as the listed user, through the gate's forwarder; scp and rsync -e ssh too", async () => {
    const out = await inBottle(`${SSH} ${LISTED} 'echo "user=$(whoami)"; echo "peer=$SSH_CONNECTION"'`);
    expect(out.stderr).toBe("");
    expect(out.exitCode).toBe(0);
    expect(out.stdout).toContain("user=deploy");
    // sshd sees the gate (its egress address), not the bottle.
    const gateEgress = containerIp(`${name}-gate`, `${name}-egress`);
    expect(out.stdout).toContain(`peer=${gateEgress} `);
    const copy = await inBottle(
      `set -e; head -c 200000 /dev/urandom > /tmp/blob; scp -q -o ConnectTimeout=10 /tmp/blob ${LISTED}:/tmp/blob; scp -q -o ConnectTimeout=10 ${LISTED}:/tmp/blob /tmp/back; cmp /tmp/blob /tmp/back && echo same`,
    );
    expect(copy.stdout.trim()).toBe("same");
    const synced = await inBottle(
      `set -e; mkdir -p /tmp/tree/sub; echo one > /tmp/tree/a; echo two > /tmp/tree/sub/b; rsync -a -e ssh /tmp/tree/ ${LISTED}:/tmp/tree/; ${SSH} ${LISTED} 'cat /tmp/tree/a /tmp/tree/sub/b'`,
    );
    expect(synced.stdout.trim().split("\n")).toEqual(["one", "two"]);
    expect((await inBottle(`${SSH} ${LISTED} true`)).exitCode).toBe(0);
  });

  test("an unlisted host, another port of the listed host, and the host's address have no route", async () => {
    const ip = containerIp(sshd, `${name}-egress`);
    const out = await inBottle(
      [
        `${SSH} ${OTHER} true 2>&1 && echo LEAK-other`,
        `${SSH} -o StrictHostKeyChecking=no deploy@${OTHER} true 2>&1 && echo LEAK-other-user`,
        `${SSH} ${LISTED} -p 2222 true 2>&1 && echo LEAK-port`,
        `${SSH} -F /dev/null -o StrictHostKeyChecking=no -p 2222 deploy@${LISTED} true 2>&1 && echo LEAK-port-direct`,
        `${SSH} -F /dev/null -o StrictHostKeyChecking=no deploy@${ip} true 2>&1 && echo LEAK-ip`,
        // The egress proxy does not carry port 22 (only 80/443 unless host:port is allowed).
        `curl -sS --max-time 5 -p -x http://gate:3128 http://${LISTED}:22/ 2>&1 && echo LEAK-proxy`,
        `curl -sS --max-time 5 -p -x http://gate:3128 http://${ip}:22/ 2>&1 && echo LEAK-proxy-ip`,
        "exit 0",
      ].join("; "),
    );
    expect(out.stdout).not.toContain("LEAK");
    expect(out.stdout).toMatch(/Could not resolve hostname other\.ssh\.test/);
    expect(out.stdout).toMatch(/port 2222: Connection refused/);
    expect(out.stdout).toMatch(/403|CONNECT tunnel failed/);
    // Port 22 of a host the egress allowlist does have is refused too (plain entries mean 80 and 443).
    const allowed = await inBottle(`curl -sS --max-time 5 -p -x http://gate:3128 http://api.anthropic.com:22/ 2>&1; echo "exit=$?"`);
    expect(allowed.stdout).not.toContain("exit=0");
    expect(allowed.stdout).toMatch(/CONNECT tunnel failed, response 403/);
  });

  test("a wrong known_host_key fails the connection, also when the client would trust anything", async () => {
    const strict = await inBottle(`${SSH} ${WRONG_KEY} true 2>&1; echo "exit=$?"`);
    expect(strict.stdout).not.toContain("exit=0");
    const lax = await inBottle(`${SSH} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null ${WRONG_KEY} true 2>&1; echo "exit=$?"`);
    expect(lax.stdout).not.toContain("exit=0");
    expect(lax.stdout).not.toContain("Permanently added");
    // The gate tells the bottle's ssh why, before the key exchange ends.
    for (const out of [strict, lax]) expect(out.stdout).toContain(`bottle ssh gate: host key mismatch: the server presented ssh-ed25519 `);
    const logs = await runBottle(sandbox, ["logs", name, "--gate", "ssh", "--json"]);
    const lines = logs.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line));
    const denied = lines.filter((line) => line.event === "connect" && line.host === WRONG_KEY);
    expect(denied.length).toBeGreaterThanOrEqual(2);
    for (const line of denied) {
      expect(line.decision).toBe("deny");
      expect(line.detail).toContain("host key mismatch");
    }
  });

  test("the private key is not readable in the bottle: no file, env or /proc holds it; ssh-add -L shows the public key only", async () => {
    // The key's text comes in on stdin, so no command line in the bottle holds it.
    const out = await inBottle(
      [
        "read -r key",
        // Any text file holding a private key (binaries merely name the PEM markers).
        "find / -xdev -type f 2>/dev/null | xargs -r grep -lI -- '-----BEGIN .*PRIVATE KEY-----' 2>/dev/null; echo find-done",
        "env > /tmp/env-dump; cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline > /tmp/proc-dump 2>/dev/null",
        `printf '%s\\n' "$key" | grep -cF -f - /tmp/env-dump /tmp/proc-dump`,
        `rm /tmp/env-dump /tmp/proc-dump; printf '%s\\n' "$key" | grep -rlsF -f - /home /tmp /workspace /run /etc /opt /usr/local /var 2>/dev/null; echo grep-done`,
      ].join("; "),
      `${privateKeyBody}\n`,
    );
    expect(out.stdout.trim().split("\n")).toEqual(["find-done", "/tmp/env-dump:0", "/tmp/proc-dump:0", "grep-done"]);
    const listed = await inBottle(`echo "sock=$SSH_AUTH_SOCK"; ssh-add -L`);
    expect(listed.exitCode).toBe(0);
    const lines = listed.stdout.trim().split("\n");
    expect(lines[0]).toBe("sock=/run/bottle/ssh-agent.sock");
    expect(lines.slice(1).map((line) => line.split(" ").slice(0, 2).join(" "))).toEqual([userPub]);
    expect(listed.stdout).not.toContain("PRIVATE");
    // The bottle has the public half only, for IdentitiesOnly.
    const files = await inBottle("ls ~/.ssh ~/.ssh/bottle-gate; cat ~/.ssh/known_hosts");
    expect(files.stdout).toContain(`${LISTED}.pub`);
    expect(files.stdout).toContain(`${LISTED} ${pub(join(keys, "host_key.pub"))}`);
    // In the gate, only root can read the keys; nothing of them in docker's view or the state dir.
    expect(docker("exec", `${name}-gate`, "stat", "-c", "%a %U", "/etc/bottle/ssh/keys/0", "/etc/bottle/ssh/keys", "/etc/bottle/ssh", "/run/bottle-ssh")).toBe(
      "600 root\n700 root\n700 root\n700 root",
    );
    expect(docker("inspect", `${name}-gate`, name)).not.toContain(privateKeyBody);
    const stateDir = join(sandbox.state, "bottle", "bottles", name);
    for (const file of readdirSync(stateDir, { recursive: true, withFileTypes: true }))
      if (file.isFile()) expect(readFileSync(join(file.parentPath, file.name), "utf8")).not.toContain(privateKeyBody);
  });

  test("the agent only lists and signs: ssh-add -D, adding a key, -d and -x are refused and change nothing", async () => {
    const out = await inBottle(
      [
        "ssh-keygen -q -t ed25519 -N '' -f /tmp/mine",
        "ssh-add -D 2>&1; echo \"D=$?\"",
        "ssh-add /tmp/mine 2>&1; echo \"add=$?\"",
        "ssh-add -d ~/.ssh/bottle-gate/*.pub 2>&1; echo \"d=$?\"",
        "printf 'pw\\npw\\n' | SSH_ASKPASS_REQUIRE=never ssh-add -x 2>&1; echo \"x=$?\"",
        "ssh-keygen -Y sign -n git -f ~/.ssh/bottle-gate/*.pub /etc/hostname 2>&1; echo \"sshsig=$?\"",
        "ssh-add -l | wc -l",
        `${SSH} ${LISTED} true; echo "ssh=$?"`,
      ].join("; "),
    );
    for (const step of ["D", "add", "d", "x", "sshsig"]) {
      expect(out.stdout).toMatch(new RegExp(`^${step}=[1-9]`, "m"));
    }
    expect(out.stdout).toContain("ssh=0");
    expect(out.stdout).toMatch(/^1$/m);
    // The gate says no to each (bottle logs --gate ssh).
    const logs = await runBottle(sandbox, ["logs", name, "--gate", "ssh", "--json"]);
    const denied = logs.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line)).filter((line) => line.event === "agent" && line.decision === "deny").map((line) => line.request);
    for (const request of ["remove-all-identities", "add-identity", "remove-identity", "lock", "sign"]) expect(denied).toContain(request);
  });

  test("the agent signs logins only as the listed user: ssh root@<listed host> and -l root fail in the gate, the listed logins still work", async () => {
    // The host would let root (and the bottle's own user name) in with this very key: only the gate can say no.
    docker(
      "exec", sshd, "sh", "-c",
      [
        "install -d -m 700 /root/.ssh && install -m 600 /keys/id_ed25519.pub /root/.ssh/authorized_keys",
        "useradd --create-home --shell /bin/bash agent && usermod -p '*' agent",
        "install -d -o agent -g agent -m 700 /home/agent/.ssh && install -o agent -g agent -m 600 /keys/id_ed25519.pub /home/agent/.ssh/authorized_keys",
      ].join(" && "),
    );
    const direct = docker("exec", sshd, "ssh", "-i", "/keys/id_ed25519", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "root@127.0.0.1", "id -un");
    expect(direct.split("\n").pop()).toBe("root");
    const out = await inBottle(
      [
        `${SSH} root@${LISTED} 'echo "in-as=$(id -un)"' 2>&1; echo "root-at=$?"`,
        `${SSH} -l root ${LISTED} 'echo "in-as=$(id -un)"' 2>&1; echo "dash-l=$?"`,
        `${SSH} root@${NO_USER} 'echo "in-as=$(id -un)"' 2>&1; echo "root-at-nouser=$?"`,
        `${SSH} ${LISTED} 'echo "listed-as=$(id -un)"'; echo "listed=$?"`,
        `${SSH} ${NO_USER} 'echo "nouser-as=$(id -un)"'; echo "nouser=$?"`,
      ].join("; "),
    );
    expect(out.stdout).not.toContain("in-as=");
    for (const step of ["root-at", "dash-l", "root-at-nouser"]) expect(out.stdout).toMatch(new RegExp(`^${step}=255$`, "m"));
    expect(out.stdout).toContain("agent refused operation");
    expect(out.stdout).toContain("listed-as=deploy\nlisted=0");
    expect(out.stdout).toContain("nouser-as=agent\nnouser=0");
    // Each refusal is in the gate's log with its reason and the user asked for.
    const logs = await runBottle(sandbox, ["logs", name, "--gate", "ssh", "--json"]);
    const refused = logs.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line)).filter((line) => line.event === "agent" && line.request === "sign" && line.decision === "deny" && line.user === "root");
    expect(refused.length).toBeGreaterThanOrEqual(3);
    for (const line of refused) expect(line.detail).toBe("refused to sign: no ssh.hosts entry of this bottle logs in as this user");
    const text = await runBottle(sandbox, ["logs", name, "--gate", "ssh"]);
    expect(text.stdout).toMatch(/deny {3}agent {4}sign {2}user root {2}\(refused to sign: no ssh\.hosts entry/);
  });

  test("the gate listens on the bottle network only; the egress side cannot reach its forwarders or agent port", () => {
    const gateInternal = containerIp(`${name}-gate`, `${name}-internal`);
    const gateEgress = containerIp(`${name}-gate`, `${name}-egress`);
    const hex = gateInternal.split(".").reverse().map((part) => Number(part).toString(16).padStart(2, "0")).join("").toUpperCase();
    // 2199 (agent) = 0897, 2200/2201/2202 (forwarders) = 0898/0899/089A.
    const listening = docker("exec", `${name}-gate`, "awk", '$4 == "0A" && $2 ~ /:089[789A]$/ { print $2 }', "/proc/net/tcp").split("\n").sort();
    expect(listening).toEqual([`${hex}:0897`, `${hex}:0898`, `${hex}:0899`, `${hex}:089A`]);
    for (const port of [2199, 2200]) {
      const out = Bun.spawnSync(["docker", "exec", sshd, "timeout", "5", "bash", "-c", `exec 3<>/dev/tcp/${gateEgress}/${port}`], { stdout: "pipe", stderr: "pipe" });
      expect(out.exitCode).not.toBe(0);
    }
  });

  test("bottle logs --gate ssh shows each connection with host, bytes and duration; bottle info lists the hosts", async () => {
    const json = await runBottle(sandbox, ["logs", name, "--gate", "ssh", "--json"]);
    expect(json.exitCode).toBe(0);
    const lines = json.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line));
    const allowed = lines.filter((line) => line.event === "connect" && line.host === LISTED && line.decision === "allow");
    expect(allowed.length).toBeGreaterThanOrEqual(3);
    expect(allowed.some((line) => line.bytesUp > 200_000 && line.port === 22 && line.durationMs >= 0 && line.bottle === name)).toBe(true);
    expect(lines.some((line) => line.event === "agent" && line.decision === "allow" && line.request === "sign" && line.user === "deploy")).toBe(true);
    const raw = readFileSync(join(sandbox.state, "bottle", "bottles", name, "logs", "ssh.jsonl"), "utf8");
    expect(raw).not.toContain(privateKeyBody);
    const text = await runBottle(sandbox, ["logs", name, "--gate", "ssh"]);
    expect(text.stdout).toMatch(new RegExp(`allow  connect  ${LISTED.replace(/\./g, "\\.")}:22 .*↑.*↓.*\\ds`));
    const info = await runBottle(sandbox, ["info", agent]);
    expect(info.stdout).toContain(`deploy@${LISTED}:22`);
    expect(info.stdout).toContain("(via ssh gate)");
  });

  test("removing the bottle removes the gate with its agent socket and keys", async () => {
    const gate = `${name}-gate`;
    expect(docker("exec", gate, "sh", "-c", "ls /run/bottle-ssh /etc/bottle/ssh/keys | sort | tr '\\n' ' '")).toContain("agent.sock");
    docker("network", "disconnect", `${name}-egress`, sshd);
    const down = await runBottle(sandbox, ["down", name]);
    expect(down.exitCode).toBe(0);
    expect(dockerOk("container", "inspect", gate)).toBe(false);
    expect(dockerOk("container", "inspect", name)).toBe(false);
    expect(objectsWithLabel(`bottle.name=${name}`)).toEqual({ containers: [], networks: [] });
    name = "";
  });
});
