import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { makeSandbox, runBottle, writeFile, type CliResult, type Sandbox } from "./cli.ts";
import { describe } from "bun:test";
import { BASE_IMAGE, describeDocker, docker, dockerOk, objectsWithLabel, uniqueId } from "./docker.ts";
import { applyMutations } from "./escape-mutate.ts";
import { containerIp, startEchoHost, waitForLogLine, type WorldHost } from "./world.ts";
import type { AuditRecord } from "../../lib/gates/egress/daemon/audit.ts";
import { DEFAULT_DENIAL_BOUNDS } from "../../lib/gates/egress/daemon/denials.ts";
import { ROTATED_SUFFIX } from "../../lib/gates/common/capped-log.ts";
import { gateLoopbackAddress } from "../../lib/backends/smolmachines/smolvm.ts";

/**
 * Shared pieces of the sandbox-escape suite (test/integration/escape/): an
 * attacker bottle with extra tools, a "world" container that logs every
 * packet-level event it sees (HTTP, TLS, raw TCP, UDP, DNS), a tcpdump
 * sniffer that can join any container's network namespace, and helpers to
 * read the gate's audit log. Everything the tests reach is local: containers
 * on networks the bottle or the test created, under made-up `*.test` names.
 */

/**
 * The backend the attackers run on: docker, or with
 * BOTTLE_ESCAPE_BACKEND=smolmachines (where smolvm and /dev/kvm exist) the
 * microVM backend. The attacks go through `bottle exec` and the gate, which
 * both backends share; suites that depend on the docker backend's own
 * network model say so with `describeEscape`.
 */
export const ESCAPE_BACKEND: "docker" | "smolmachines" = process.env.BOTTLE_ESCAPE_BACKEND === "smolmachines" ? "smolmachines" : "docker";

/** `describe` for a suite that applies to `backends` only; elsewhere it is skipped with the reason printed. */
export function describeEscape(backends: ReadonlyArray<"docker" | "smolmachines">, reason: string, name: string, body: () => void): void {
  if (backends.includes(ESCAPE_BACKEND)) {
    describeDocker(name, body);
    return;
  }
  console.warn(`skipping "${name}" on the ${ESCAPE_BACKEND} backend: ${reason}`);
  describe.skip(name, body);
}

/** Tools an attacker would bring; added on top of the agent image via `image.dockerfile`. */
export const ATTACK_DOCKERFILE =
  "USER root\n" +
  "RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends " +
  "bind9-dnsutils netcat-openbsd iputils-ping python3-minimal >/dev/null && rm -rf /var/lib/apt/lists/*\n";

/** One JSON line per gate decision: the gate's own record type. */
export type { AuditRecord } from "../../lib/gates/egress/daemon/audit.ts";

export interface Attacker {
  sandbox: Sandbox;
  agent: string;
  /** The bottle's name (bottle-…). */
  name: string;
  /** Label put on every container the test itself starts (world, sniffers). */
  label: string;
  gateImage: string;
  /** The gate's address as the bottle reaches it: on the internal network (docker), or its loopback address (smolmachines). */
  gateIp: string;
  /** The gate's address on the bottle's egress network. */
  gateEgressIp: string;
  auditPath: string;
  /** `bottle exec NAME -- sh -c SCRIPT` (as the agent user, with the bottle's env). */
  sh(script: string): Promise<CliResult>;
  /** `bottle exec NAME -- python3 -c SCRIPT ARGS…`. */
  py(script: string, ...args: string[]): Promise<CliResult>;
  audit(): AuditRecord[];
  auditText(): string;
  /** Polls the audit log (bounded) for a line; allow lines are written when the exchange ends. */
  waitAudit(predicate: (line: AuditRecord) => boolean, timeoutMs?: number): Promise<AuditRecord | undefined>;
  /**
   * Polls the audit log until the matching lines stand for `denials` denials
   * (a line's `count`, absent: 1), or a counted line's interval has surely
   * ended; the matching lines.
   */
  waitDenials(predicate: (line: AuditRecord) => boolean, denials: number): Promise<AuditRecord[]>;
}

/** The denials a set of audit lines stands for (the gate counts repeats on one line, see denials.ts). */
export function deniedCount(lines: AuditRecord[]): number {
  return lines.reduce((sum, line) => sum + (line.count ?? 1), 0);
}

/** By then the gate has written a counted denial's line: its interval, and time to spare. */
export const COUNTED_LINE_MS = DEFAULT_DENIAL_BOUNDS.intervalMs + 5_000;

export interface AttackerOptions {
  /** Agent name prefix (a unique suffix is added). */
  prefix: string;
  /** Lines of the bottle manifest (YAML); `image: { dockerfile: attack.Dockerfile }` is added unless `dockerfile` is null. */
  manifest: string[];
  /** Extra variables in the sandbox (host) environment, e.g. values for `${HOST_VAR}`. */
  sandboxEnv?: Record<string, string>;
  /** Dockerfile instructions for `image.dockerfile` (default ATTACK_DOCKERFILE; null: none). */
  dockerfile?: string | null;
  /** Reuse an existing sandbox (e.g. for a second bottle). */
  sandbox?: Sandbox;
}

export function auditFile(sandbox: Sandbox, name: string): string {
  return join(sandbox.state, "bottle", "bottles", name, "logs", "egress.jsonl");
}

/** The audit log's text: its rotated generation (`.1`) first, then the file, as the host reads it. */
export function auditFileText(path: string): string {
  return [path + ROTATED_SUFFIX, path]
    .filter((file) => existsSync(file))
    .map((file) => readFileSync(file, "utf8"))
    .join("");
}

export function readAuditFile(path: string): AuditRecord[] {
  return auditFileText(path)
    .split("\n")
    .filter((line) => line.trim())
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as AuditRecord];
      } catch {
        return [];
      }
    });
}

/** Writes the bottle manifest (and its Dockerfile) and an agent using it; returns the agent's name. */
export function writeAgent(options: AttackerOptions & { sandbox: Sandbox }): string {
  const { sandbox } = options;
  const agent = uniqueId(options.prefix);
  const bottle = agent.replace(/[^a-z0-9]/g, "");
  const manifest = [...options.manifest];
  if (options.dockerfile !== null) {
    writeFile(join(sandbox.config, "bottles", `${bottle}.Dockerfile`), options.dockerfile ?? ATTACK_DOCKERFILE);
    manifest.push("image:", `  dockerfile: ${bottle}.Dockerfile`);
  }
  writeFile(join(sandbox.config, "bottles", `${bottle}.yaml`), `${manifest.join("\n")}\n`);
  writeFile(join(sandbox.config, "agents", `${agent}.md`), `---\nbottle: ${bottle}\n---\nescape test attacker\n`);
  return agent;
}

/**
 * Writes the manifest and agent, and starts `bottle up AGENT --yes --detach
 * -- sleep infinity`: the attacker works through exec, and its session runs
 * a command that makes no traffic of its own (Claude Code's would show in the
 * gates' logs the tests read).
 */
export async function upAttacker(options: AttackerOptions): Promise<Attacker> {
  const sandbox = options.sandbox ?? makeSandbox(options.sandboxEnv ?? {});
  const agent = writeAgent({ ...options, sandbox });
  const up = await runBottle(sandbox, ["up", agent, "--yes", "--detach", "--backend", ESCAPE_BACKEND, "--", "sleep", "infinity"]);
  const name = up.stdout.trim();
  if (up.exitCode !== 0 || !name) throw new Error(`bottle up ${agent} failed (${up.exitCode}):\n${up.stderr}`);
  const plan = JSON.parse(readFileSync(join(sandbox.state, "bottle", "bottles", name, "plan.json"), "utf8"));
  const path = auditFile(sandbox, name);
  // Only when checking the suite itself (see escape-mutate.ts).
  await applyMutations(plan);
  const attacker: Attacker = {
    sandbox,
    agent,
    name,
    label: `bottle.test=${agent}`,
    gateImage: plan.images.gate.tag,
    // A VM reaches its gate on the loopback address the gate is published on.
    gateIp: ESCAPE_BACKEND === "docker" ? containerIp(`${name}-gate`, `${name}-internal`) : gateLoopbackAddress(name),
    gateEgressIp: containerIp(`${name}-gate`, `${name}-egress`),
    auditPath: path,
    sh: (script) => runBottle(sandbox, ["exec", name, "--", "sh", "-c", script]),
    py: (script, ...args) => runBottle(sandbox, ["exec", name, "--", "python3", "-c", script, ...args]),
    audit: () => readAuditFile(path),
    auditText: () => auditFileText(path),
    async waitAudit(predicate, timeoutMs = 3_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = readAuditFile(path).find(predicate);
        if (line || Date.now() >= deadline) return line;
        await Bun.sleep(100);
      }
    },
    async waitDenials(predicate, denials) {
      const deadline = Date.now() + COUNTED_LINE_MS;
      for (;;) {
        const lines = readAuditFile(path).filter(predicate);
        if (deniedCount(lines) >= denials || Date.now() >= deadline) return lines;
        await Bun.sleep(200);
      }
    },
  };
  return attacker;
}

/**
 * `bottle down` the bottles, then remove whatever is left with the agent's or
 * the test's label, and the sandbox once no bottle of it remains.
 */
export async function tearDown(sandbox: Sandbox | undefined, names: string[], agents: string[]): Promise<void> {
  if (sandbox && names.length) await runBottle(sandbox, ["down", ...names]);
  for (const agent of agents) {
    for (const label of [`bottle.agent=${agent}`, `bottle.test=${agent}`]) {
      const left = objectsWithLabel(label);
      if (left.containers.length) dockerOk("rm", "-f", ...left.containers);
      if (left.networks.length) dockerOk("network", "rm", ...left.networks);
    }
  }
  const states = sandbox ? join(sandbox.state, "bottle", "bottles") : "";
  if (sandbox && (!existsSync(states) || readdirSync(states).length === 0)) rmSync(sandbox.home, { recursive: true, force: true });
}

// ---------------------------------------------------------------- the world

/**
 * The outside world in one container (Node.js on the gate image, as root so
 * it can bind low ports). Every event is one `EV {json}` line on stdout:
 * HTTP on 80, HTTPS on 443 (when TLS_CERT/TLS_KEY are set; logs the SNI of
 * each handshake; both serve bulk data at /bulk), raw TCP on 22 and 8080, a UDP echo on 9999, and a DNS
 * canary on 53/udp and 53/tcp that logs the name of every query and never
 * answers.
 */
export const WORLD_SERVER = `
const http = require("node:http"), https = require("node:https"), net = require("node:net"), dgram = require("node:dgram");
const ev = (o) => console.log("EV " + JSON.stringify(o));
let pending = 0;
const ready = () => { if (--pending === 0) console.log("listening"); };
const listen = (server, port) => { pending++; server.listen(port, "0.0.0.0", ready); };
// /bulk?mb=N[&stall=MS]: N MB where every 4-byte word is its index (bulkPattern), pausing MS before the last MB.
const bulk = (req, res) => {
  const q = new URL(req.url, "http://x").searchParams;
  const mb = Number(q.get("mb") || "1"), stall = Number(q.get("stall") || "0");
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(mb * 1048576) });
  let k = 0, stalled = false;
  const next = () => { const b = Buffer.alloc(1048576); for (let i = 0; i < 262144; i++) b.writeUInt32BE(k * 262144 + i, i * 4); k++; return b; };
  const pump = () => {
    while (k < mb) {
      if (k === mb - 1 && stall > 0 && !stalled) { stalled = true; return setTimeout(pump, stall); }
      if (!res.write(next())) return res.once("drain", pump);
    }
    res.end();
  };
  pump();
};
const handler = (scheme) => (req, res) => {
  if (req.url.startsWith("/bulk")) return bulk(req, res);
  let body = "";
  req.setEncoding("latin1");
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    ev({ ev: scheme, method: req.method, host: req.headers.host, url: req.url, headers: req.headers, body, from: req.socket.remoteAddress });
    res.writeHead(200, { "content-type": "text/plain" });
    res.end((scheme === "https" ? "secure hello from " : "hello from ") + req.headers.host + " " + req.url + "\\n");
  });
};
listen(http.createServer(handler("http")), 80);
if (process.env.TLS_CERT) {
  const tls = https.createServer({ cert: process.env.TLS_CERT, key: process.env.TLS_KEY }, handler("https"));
  tls.on("connection", (s) => ev({ ev: "tls-connection", from: s.remoteAddress }));
  tls.on("secureConnection", (s) => ev({ ev: "tls-handshake", sni: s.servername || null, from: s.remoteAddress }));
  listen(tls, 443);
}
for (const port of [22, 8080]) listen(net.createServer((s) => { ev({ ev: "tcp", port, from: s.remoteAddress }); s.on("error", () => {}); s.end("tcp hello\\n"); }), port);
function qname(buf, off) {
  const labels = [];
  while (off < buf.length && buf[off] > 0 && labels.length < 128) { labels.push(buf.subarray(off + 1, off + 1 + buf[off]).toString("latin1")); off += buf[off] + 1; }
  return labels.join(".");
}
const udp = dgram.createSocket("udp4");
udp.on("message", (m, r) => { ev({ ev: "udp", port: 9999, from: r.address, data: m.toString("latin1") }); udp.send("udp hello", r.port, r.address); });
pending++; udp.bind(9999, "0.0.0.0", ready);
const dnsUdp = dgram.createSocket("udp4");
dnsUdp.on("message", (m, r) => ev({ ev: "dns-udp", from: r.address, name: qname(m, 12), raw: m.toString("latin1") }));
pending++; dnsUdp.bind(53, "0.0.0.0", ready);
listen(net.createServer((s) => {
  ev({ ev: "dns-tcp-connection", from: s.remoteAddress });
  s.on("error", () => {});
  s.on("data", (b) => ev({ ev: "dns-tcp", from: s.remoteAddress, name: qname(b, 14), raw: b.toString("latin1") }));
}), 53);
`;

/** What the world's /bulk?mb=N sends: N MB where every 4-byte word is its own index. */
export function bulkPattern(mb: number): Buffer {
  const buf = Buffer.alloc(mb * 1048576);
  for (let i = 0; i < buf.length / 4; i++) buf.writeUInt32BE(i, i * 4);
  return buf;
}

export interface WorldEvent {
  ev: string;
  method?: string;
  host?: string;
  url?: string;
  headers?: Record<string, string>;
  body?: string;
  from?: string;
  sni?: string | null;
  port?: number;
  name?: string;
  data?: string;
  raw?: string;
}

export interface World extends WorldHost {
  ip: string;
  /** Everything the container printed (events and errors). */
  logs(): string;
  events(): WorldEvent[];
}

export function startWorld(attacker: Attacker, aliases: string[], tls?: { cert: string; key: string }): World {
  const network = `${attacker.name}-egress`;
  const host = startEchoHost(attacker.gateImage, network, aliases, attacker.label, {
    script: WORLD_SERVER,
    ...(tls ? { env: { TLS_CERT: tls.cert, TLS_KEY: tls.key } } : {}),
  });
  const logs = () => {
    const out = Bun.spawnSync(["docker", "logs", host.container], { stdout: "pipe", stderr: "pipe" });
    return out.stdout.toString() + out.stderr.toString();
  };
  return {
    ...host,
    ip: containerIp(host.container, network),
    logs,
    events: () =>
      logs()
        .split("\n")
        .filter((line) => line.startsWith("EV "))
        .map((line) => JSON.parse(line.slice(3)) as WorldEvent),
  };
}

// ---------------------------------------------------------------- tools outside the bottle

const TOOLS_DOCKERFILE = (base: string) =>
  `FROM ${base}\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tcpdump iproute2 >/dev/null && rm -rf /var/lib/apt/lists/*\n`;

/**
 * An image with tcpdump and iproute2 for the test's own observers (never run
 * inside a bottle). Content-addressed on the base image id, built once.
 */
export function ensureToolsImage(): string {
  const baseId = docker("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE);
  const text = TOOLS_DOCKERFILE(BASE_IMAGE);
  const tag = `bottle-test-escape-tools:${createHash("sha256").update(baseId).update(text).digest("hex").slice(0, 16)}`;
  if (dockerOk("image", "inspect", tag)) return tag;
  const out = Bun.spawnSync(["docker", "build", "-q", "-t", tag, "-"], { stdin: Buffer.from(text), stdout: "pipe", stderr: "pipe" });
  if (out.exitCode !== 0) throw new Error(`building ${tag} failed: ${out.stderr.toString()}`);
  return tag;
}

export interface Sniffer {
  container: string;
  /** Stops the capture and returns what tcpdump printed (headers and ASCII payloads). */
  stop(): string;
}

/**
 * tcpdump in the network namespace of `target` (a container), printing every
 * matching packet with its payload as ASCII. The sniffer has its own
 * capabilities; the target's are unchanged.
 */
export function startSniffer(tools: string, target: string, label: string, filter: string[]): Sniffer {
  return sniff(tools, [`container:${target}`, "any"], label, filter);
}

/** tcpdump on the host's side of a docker network: its bridge `device`, as every packet crossing it is seen. */
export function startBridgeSniffer(tools: string, device: string, label: string, filter: string[]): Sniffer {
  return sniff(tools, ["host", device], label, filter);
}

function sniff(tools: string, [network, device]: [string, string], label: string, filter: string[]): Sniffer {
  const container = uniqueId("sniff");
  docker("run", "-d", "--name", container, "--label", label, "--network", network, tools, "tcpdump", "-i", device, "-n", "-l", "-U", "-p", "-A", "-Z", "root", ...filter);
  waitForLogLine(container, "listening on");
  return {
    container,
    stop() {
      // Let the last packets be printed before SIGTERM.
      Bun.sleepSync(300);
      dockerOk("stop", "-t", "2", container);
      const out = Bun.spawnSync(["docker", "logs", container], { stdout: "pipe", stderr: "pipe" });
      dockerOk("rm", "-f", container);
      return out.stdout.toString() + out.stderr.toString();
    },
  };
}

/** Runs `argv` in a throwaway tools container sharing `target`'s network namespace. */
export function runInNetns(tools: string, target: string, label: string, capAdd: string[], argv: string[]): CliResult {
  const args = ["run", "--rm", "--label", label, "--network", `container:${target}`];
  for (const cap of capAdd) args.push("--cap-add", cap);
  const out = Bun.spawnSync(["docker", ...args, tools, ...argv], { stdout: "pipe", stderr: "pipe" });
  return { exitCode: out.exitCode ?? -1, stdout: out.stdout.toString(), stderr: out.stderr.toString() };
}

/**
 * Makes the gate's own resolver answer `name` with `ip` by appending to the
 * gate container's /etc/hosts (getaddrinfo reads it before DNS). This is how
 * the suite gets DNS answers that Docker's DNS cannot produce (127.0.0.1,
 * 169.254.169.254, the Docker host's addresses): the gate code under test is
 * unchanged and resolves through the system resolver exactly as in production.
 */
export function gateResolves(attacker: Attacker, entries: Record<string, string>): void {
  const lines = Object.entries(entries).map(([name, ip]) => `${ip} ${name}\n`).join("");
  const out = Bun.spawnSync(["docker", "exec", "-i", `${attacker.name}-gate`, "sh", "-c", "cat >> /etc/hosts"], {
    stdin: Buffer.from(lines),
    stdout: "pipe",
    stderr: "pipe",
  });
  if (out.exitCode !== 0) throw new Error(`editing the gate's /etc/hosts failed: ${out.stderr.toString()}`);
}

/** IPv4 addresses of this machine (the Docker host): `hostname -I`. */
export function hostIpv4s(): string[] {
  return Bun.spawnSync(["hostname", "-I"])
    .stdout.toString()
    .trim()
    .split(/\s+/)
    .filter((ip) => /^\d+\.\d+\.\d+\.\d+$/.test(ip));
}

/** The Linux bridge behind a docker network (docker0 for `bridge`, br-<id> otherwise). */
export function bridgeDevice(network: string): string {
  const name = docker("network", "inspect", "--format", '{{index .Options "com.docker.network.bridge.name"}}', network);
  if (name && !name.includes("no value")) return name;
  return `br-${docker("network", "inspect", "--format", "{{.Id}}", network).slice(0, 12)}`;
}

/** The host's own IPv4 address on a docker network's bridge (none for an internal network). */
export function bridgeIpv4(network: string): string | undefined {
  const out = Bun.spawnSync(["ip", "-4", "-o", "addr", "show", "dev", bridgeDevice(network)], { stdout: "pipe", stderr: "pipe" });
  return /inet (\d+\.\d+\.\d+\.\d+)\//.exec(out.stdout.toString())?.[1];
}

export function networkGateways(network: string): string[] {
  return docker("network", "inspect", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}", network)
    .split(/\s+/)
    .filter(Boolean);
}

// ---------------------------------------------------------------- probes from inside the bottle

/**
 * A Python probe run inside the bottle: connects (TCP) or sends a datagram and
 * waits for a reply (UDP) to many targets at once, in batches, with one
 * deadline per batch. argv[1] is a JSON list of probes
 * `{id, proto: "tcp"|"udp", host, port}` or ranges `{id, proto, host, from, to}`
 * (ids `id:port`); argv[2] the timeout in seconds. Prints a JSON object
 * id → "open" | "timeout" | "error:ECONN…". For more than 200 probes only the
 * results other than "error:ECONNREFUSED" are printed.
 */
export const PROBE_PY = `
import errno, json, selectors, socket, sys, time
spec = json.loads(sys.argv[1]); timeout = float(sys.argv[2])
probes = []
for p in spec:
    if "from" in p:
        probes += [dict(p, id="%s:%d" % (p["id"], port), port=port) for port in range(p["from"], p["to"] + 1)]
    else:
        probes.append(p)
def name(code): return "error:" + errno.errorcode.get(code, str(code))
res = {}
for start in range(0, len(probes), 4000):
    sel = selectors.DefaultSelector()
    for p in probes[start:start + 4000]:
        try:
            info = socket.getaddrinfo(p["host"], p["port"], 0, socket.SOCK_STREAM if p["proto"] == "tcp" else socket.SOCK_DGRAM)[0]
            s = socket.socket(info[0], info[1])
            s.setblocking(False)
            if p["proto"] == "tcp":
                rc = s.connect_ex(info[4])
                if rc not in (0, errno.EINPROGRESS):
                    res[p["id"]] = name(rc); s.close(); continue
                sel.register(s, selectors.EVENT_WRITE, p)
            else:
                s.connect(info[4]); s.send(p.get("payload", "escape-probe").encode("latin1"))
                sel.register(s, selectors.EVENT_READ, p)
        except OSError as e:
            res[p["id"]] = name(e.errno) if e.errno else "error:" + str(e)
    deadline = time.time() + timeout
    while sel.get_map() and time.time() < deadline:
        for key, _ in sel.select(max(0.0, deadline - time.time())):
            s, p = key.fileobj, key.data
            if p["proto"] == "tcp":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                res[p["id"]] = "open" if err == 0 else name(err)
            else:
                try:
                    s.recv(4096); res[p["id"]] = "open"
                except OSError as e:
                    res[p["id"]] = name(e.errno)
            sel.unregister(s); s.close()
    for key in list(sel.get_map().values()):
        res[key.data["id"]] = "timeout"; key.fileobj.close()
    sel.close()
if len(probes) > 200:
    res = {k: v for k, v in res.items() if v != "error:ECONNREFUSED"}
print(json.dumps(res))
`;

export interface Probe {
  id: string;
  proto: "tcp" | "udp";
  host: string;
  port?: number;
  from?: number;
  to?: number;
  payload?: string;
}

export async function probe(attacker: Attacker, probes: Probe[], timeoutS = 2): Promise<Record<string, string>> {
  const out = await attacker.py(PROBE_PY, JSON.stringify(probes), String(timeoutS));
  const line = out.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as Record<string, string>;
  } catch {
    throw new Error(`probe failed (${out.exitCode}): ${out.stdout}\n${out.stderr}`);
  }
}

// ---------------------------------------------------------------- probes from outside the bottle

/**
 * The same kind of probe for places without Python: runs under Node (a
 * container of the gate image) and under Bun (this test process's binary,
 * on the host). PROBES (env) is a JSON list of `{id, proto, host, port,
 * payload?}`; prints one JSON object id → "open" | "timeout" | "error:CODE".
 * A UDP probe is open only when a reply arrives.
 */
export const NODE_PROBE = `
const net = require("node:net"), dgram = require("node:dgram");
const one = (p) => new Promise((resolve) => {
  let socket;
  const done = (result) => { clearTimeout(timer); try { p.proto === "tcp" ? socket.destroy() : socket.close(); } catch {} resolve([p.id, result]); };
  const timer = setTimeout(() => done("timeout"), 2000);
  if (p.proto === "tcp") {
    socket = net.connect({ host: p.host, port: p.port });
    socket.on("connect", () => done("open"));
  } else {
    socket = dgram.createSocket("udp4");
    socket.on("message", () => done("open"));
    socket.connect(p.port, p.host, () => socket.send(Buffer.from(p.payload || "escape-probe", "latin1")));
  }
  socket.on("error", (e) => done("error:" + (e.code || e.message)));
});
Promise.all(JSON.parse(process.env.PROBES).map(one)).then((results) => { console.log(JSON.stringify(Object.fromEntries(results))); process.exit(0); });
`;

function probeResults(out: { exitCode: number | null; stdout: Buffer; stderr: Buffer }, where: string): Record<string, string> {
  const line = out.stdout.toString().trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as Record<string, string>;
  } catch {
    throw new Error(`probe from ${where} failed (${out.exitCode}): ${out.stdout.toString()}\n${out.stderr.toString()}`);
  }
}

/** Probes from a throwaway container on `network` (Node from the gate image), as anything else attached there would. */
export function probeFromNetwork(attacker: Attacker, network: string, probes: Probe[]): Record<string, string> {
  const out = Bun.spawnSync(
    ["docker", "run", "--rm", "--label", attacker.label, "--network", network, "--env", "PROBES", "--entrypoint", "node", attacker.gateImage, "-e", NODE_PROBE],
    { env: { ...process.env, PROBES: JSON.stringify(probes) }, stdout: "pipe", stderr: "pipe" },
  );
  return probeResults(out, `a container on ${network}`);
}

/** Probes from the Docker host itself, as an unprivileged user (nobody, when the test runs as root). */
export function probeFromHost(probes: Probe[]): Record<string, string> {
  const unprivileged = process.getuid?.() === 0 ? ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] : [];
  const out = Bun.spawnSync([...unprivileged, process.execPath, "-e", NODE_PROBE], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", PROBES: JSON.stringify(probes) },
    stdout: "pipe",
    stderr: "pipe",
  });
  return probeResults(out, "the host");
}

// ---------------------------------------------------------------- encodings of a secret

/** The forms a secret can be smuggled in that the gate's DLP claims to see through. */
export function encodings(secret: string): Record<string, string> {
  const bytes = Buffer.from(secret, "utf8");
  const base64 = bytes.toString("base64");
  return {
    plain: secret,
    base64,
    "base64 unpadded": base64.replace(/=+$/, ""),
    base64url: bytes.toString("base64url"),
    hex: bytes.toString("hex"),
    "HEX upper": bytes.toString("hex").toUpperCase(),
    "percent-encoded": [...bytes].map((b) => `%${b.toString(16).padStart(2, "0")}`).join(""),
    "double percent-encoded": [...bytes].map((b) => `%25${b.toString(16).padStart(2, "0")}`).join(""),
    "base64 of user:secret": Buffer.from(`user:${secret}`).toString("base64"),
  };
}

/** A DNS query (A, recursion desired) as a latin1 string, for UDP probes of port 53. */
export function dnsQuery(name: string, id = 0x4242): string {
  const labels = name.split(".").map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label, "latin1")]));
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]).toString("latin1");
}

/** Hooks build images and start containers; tests run several attacks each. */
export const SETUP_TIMEOUT_MS = 240_000;
export const TEST_TIMEOUT_MS = 60_000;

