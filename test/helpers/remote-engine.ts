import { describe } from "bun:test";
import { BASE_IMAGE } from "./docker.ts";

/**
 * The stand-in remote engine that `.ci/remote-engine` starts: a second dockerd
 * on this machine in its own network and mount namespaces, answering only
 * over TCP with TLS (context `bottle-remote`) and over ssh (context
 * `bottle-remote-ssh`, when sshd could be installed). Tests on it skip with a
 * reason when it is not up — unless BOTTLE_REQUIRE_DOCKER=1 (CI), where a
 * missing remote engine fails.
 *
 * The values come from the script's exports (`eval "$(.ci/remote-engine)"`);
 * without them, from the contexts it creates.
 */

export interface DockerRun {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** Wall time, milliseconds. */
  ms: number;
  /** Killed at the deadline before it exited. */
  timedOut: boolean;
}

export interface RemoteEngine {
  /** Docker context reaching it over TCP with TLS. */
  context: string;
  /** `tcp://ADDR:2376`, for DOCKER_HOST. */
  host: string;
  /** A DOCKER_CERT_PATH directory: ca.pem, cert.pem, key.pem. */
  certPath: string;
  /** DOCKER_HOST + DOCKER_CERT_PATH + DOCKER_TLS_VERIFY: the same engine without a context. */
  env: Record<string, string>;
  /** The ssh:// context to the same engine, when sshd runs beside it. */
  ssh?: { context: string; host: string };
  /** An address nothing holds (on the engine's own link): connecting fails with "no route to host". */
  unreachableHost: string;
  /** The engine's address on a port whose packets are dropped: connecting hangs until a deadline. */
  filteredHost: string;
  /** docker through the context; trimmed stdout, or an error naming the command with its stderr. */
  docker(...args: string[]): string;
  dockerOk(...args: string[]): boolean;
}

const env = process.env;
const CONTEXT = env.BOTTLE_REMOTE_CONTEXT || "bottle-remote";
const SSH_CONTEXT = env.BOTTLE_REMOTE_SSH_CONTEXT || "bottle-remote-ssh";
// The script's reserved addresses (see NET in .ci/remote-engine).
const UNREACHABLE_HOST = env.BOTTLE_REMOTE_UNREACHABLE_HOST || "tcp://10.254.254.6:2376";
const FILTERED_HOST = env.BOTTLE_REMOTE_FILTERED_HOST || "tcp://10.254.254.2:2377";
const PROBE_MS = 15_000;

/** Runs the docker CLI with a deadline (it is killed there), never throwing. */
export function runDocker(args: string[], options: { env?: Record<string, string>; timeoutMs?: number; stdin?: Blob } = {}): DockerRun {
  const started = performance.now();
  const out = Bun.spawnSync(["docker", ...args], {
    env: { ...process.env, ...options.env },
    stdin: options.stdin,
    stdout: "pipe",
    stderr: "pipe",
    timeout: options.timeoutMs ?? 600_000,
  });
  return {
    exitCode: out.exitCode,
    stdout: out.stdout.toString().trim(),
    stderr: out.stderr.toString().trim(),
    ms: performance.now() - started,
    timedOut: out.exitedDueToTimeout === true,
  };
}

function lastLine(text: string): string {
  return text.split("\n").filter(Boolean).pop() ?? "";
}

function contextHost(name: string): string | undefined {
  const out = runDocker(["context", "inspect", "--format", "{{.Endpoints.docker.Host}}", name], { timeoutMs: PROBE_MS });
  return out.exitCode === 0 && out.stdout ? out.stdout : undefined;
}

function engineFor(context: string, host: string, certPath: string, ssh: RemoteEngine["ssh"]): RemoteEngine {
  const run = (args: string[]) => runDocker(["--context", context, ...args]);
  return {
    context,
    host,
    certPath,
    env: { DOCKER_HOST: host, DOCKER_CERT_PATH: certPath, DOCKER_TLS_VERIFY: "1" },
    ssh,
    unreachableHost: UNREACHABLE_HOST,
    filteredHost: FILTERED_HOST,
    docker(...args) {
      const out = run(args);
      if (out.exitCode !== 0) throw new Error(`docker --context ${context} ${args.join(" ")} failed: ${out.stderr}`);
      return out.stdout;
    },
    dockerOk: (...args) => run(args).exitCode === 0,
  };
}

function probeRemote(): RemoteEngine | { skip: string } {
  const start = "start it with `bash .ci/remote-engine` (as root)";
  let host: string | undefined;
  try {
    host = contextHost(CONTEXT);
  } catch {
    return { skip: "docker CLI not installed" };
  }
  if (!host) return { skip: `docker context ${CONTEXT} missing: ${start}` };
  const version = runDocker(["--context", CONTEXT, "version", "--format", "{{.Server.Version}}"], { timeoutMs: PROBE_MS });
  if (version.exitCode !== 0) {
    const why = version.timedOut ? `no answer in ${PROBE_MS / 1000} s` : lastLine(version.stderr);
    return { skip: `remote engine at ${host} (context ${CONTEXT}) not answering: ${why}; ${start}` };
  }
  const base = runDocker(["--context", CONTEXT, "image", "inspect", "--format", "{{.Id}}", BASE_IMAGE], { timeoutMs: PROBE_MS });
  if (base.exitCode !== 0) return { skip: `base image ${BASE_IMAGE} missing on the remote engine: ${start} (it loads it)` };

  let certPath = env.BOTTLE_REMOTE_CERT_PATH;
  if (!certPath) {
    const tls = runDocker(["context", "inspect", "--format", "{{.Storage.TLSPath}}", CONTEXT], { timeoutMs: PROBE_MS });
    certPath = `${tls.stdout}/docker`;
  }
  const sshHost = contextHost(SSH_CONTEXT);
  return engineFor(CONTEXT, env.BOTTLE_REMOTE_DOCKER_HOST || host, certPath, sshHost ? { context: SSH_CONTEXT, host: sshHost } : undefined);
}

let probed: RemoteEngine | { skip: string } | undefined;

/** The remote engine when it is up, else the reason tests on it skip. Probed once per process. */
export function remoteEngine(): RemoteEngine | { skip: string } {
  probed ??= probeRemote();
  return probed;
}

/**
 * `describe` that runs only with the remote engine up, and hands it to the
 * suite. Skipped, `fn` still runs to collect the tests: it gets an engine
 * whose commands throw.
 */
export function describeRemote(name: string, fn: (engine: RemoteEngine) => void): void {
  const found = remoteEngine();
  if ("skip" in found) {
    if (env.BOTTLE_REQUIRE_DOCKER === "1") throw new Error(`BOTTLE_REQUIRE_DOCKER=1 but ${found.skip}`);
    console.warn(`skipping remote-engine tests: ${found.skip}`);
    const down = (): never => {
      throw new Error(found.skip);
    };
    describe.skip(name, () => fn({ ...engineFor(CONTEXT, "", "", undefined), docker: down, dockerOk: down }));
    return;
  }
  describe(name, () => fn(found));
}
