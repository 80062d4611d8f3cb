import { BottleError } from "./errors.ts";
import { CommandError, stderrTail, type Exec, type RunResult, type Stdin } from "./exec.ts";
import { type Engine, engineArgs } from "./engine.ts";

/** Typed wrappers over the docker CLI; every call goes through `Exec`. */

export interface Mount {
  /** A host path (bind mount); absent for a volume. */
  source?: string;
  target: string;
  readonly?: boolean;
  /**
   * A volume: anonymous (removed with the container by `rm --volumes`), or
   * named (kept; docker creates it with these labels when it is new).
   */
  volume?: { name?: string; labels?: Record<string, string> };
}

/** One `--mount` value: a bind mount of `source`, or an anonymous labelled volume. */
export function mountArg(mount: Mount): string {
  const fields = mount.volume
    ? [
        "type=volume",
        ...(mount.volume.name ? [`source=${mount.volume.name}`] : []),
        `target=${mount.target}`,
        ...Object.entries(mount.volume.labels ?? {}).map(([key, value]) => `volume-label=${key}=${value}`),
      ]
    : ["type=bind", `source=${mount.source ?? ""}`, `target=${mount.target}`];
  if (mount.readonly) fields.push("readonly");
  return fields.map(csvField).join(",");
}

export interface ContainerSpec {
  name: string;
  image: string;
  labels?: Record<string, string>;
  /** First network; more are connected after creation. */
  network?: string;
  networkAliases?: string[];
  ip?: string;
  /** Non-secret variables only: these land in `docker inspect`. */
  env?: Record<string, string>;
  mounts?: Mount[];
  capDrop?: string[];
  capAdd?: string[];
  securityOpt?: string[];
  pidsLimit?: number;
  /** Bytes; swap is held to the same (`--memory-swap`), so the container cannot swap past it. */
  memory?: number;
  /** CPUs, like 2 or 0.5 (`--cpus`). */
  cpus?: number;
  runtime?: string;
  dns?: string[];
  /** `/etc/hosts` entries (name → address): names that then need no DNS round trip. */
  extraHosts?: Record<string, string>;
  user?: string;
  workdir?: string;
  hostname?: string;
  entrypoint?: string;
  command?: string[];
  init?: boolean;
  /** A read-only root file system (`--read-only`). */
  readOnly?: boolean;
  tmpfs?: string[];
  publish?: string[];
  sysctls?: Record<string, string>;
  /** Keep stdin open for one attach (`--interactive`): `startAttached` feeds it. */
  interactive?: boolean;
}

/** A container's port published on the host (TCP). */
export interface PublishedPort {
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

export interface ContainerSummary {
  id: string;
  name: string;
  image: string;
  state: string;
  status: string;
  createdAt: string;
  labels: Record<string, string>;
  /** Its TCP ports published on the host (a running container's). */
  ports: PublishedPort[];
}

export interface VolumeSummary {
  name: string;
  labels: Record<string, string>;
}

export interface NetworkSummary {
  id: string;
  name: string;
  labels: Record<string, string>;
}

export interface ExecInContainer {
  user?: string;
  workdir?: string;
  /** Names copied from the calling process environment (`--env NAME`), so values never hit argv. */
  envNames?: string[];
  /** Values for `envNames`, given to the docker CLI's own environment. */
  envValues?: Record<string, string>;
  stdin?: Stdin;
  check?: boolean;
  timeoutMs?: number;
  /** Binary stdout goes to this host file (see RunOptions.stdoutFile). */
  stdoutFile?: string;
}

export type DockerFailure = "cli-missing" | "daemon-down" | "permission-denied";

/** Classify why docker cannot be used; undefined when it is another error. */
export function classifyDockerFailure(text: string): DockerFailure | undefined {
  if (/executable not found|ENOENT|command not found|No such file or directory.*docker/i.test(text)) return "cli-missing";
  if (/permission denied.*docker\.sock|permission denied while trying to connect/i.test(text)) return "permission-denied";
  if (/Cannot connect to the Docker daemon|Is the docker daemon running|error during connect|docker\.sock: connect/i.test(text))
    return "daemon-down";
  return undefined;
}

export function dockerFailureError(kind: DockerFailure, details?: string): BottleError {
  const messages: Record<DockerFailure, [string, string]> = {
    "cli-missing": [
      "the docker CLI is not installed (or not on PATH)",
      "install Docker (https://docs.docker.com/engine/install/) or Docker Desktop, then run `bottle doctor`",
    ],
    "daemon-down": [
      "the Docker daemon is not running",
      "start Docker (Docker Desktop, `sudo systemctl start docker`, or `dockerd &`), then run `bottle doctor`",
    ],
    "permission-denied": [
      "permission denied on the Docker socket",
      "add yourself to the docker group (`sudo usermod -aG docker $USER`, then log in again), then run `bottle doctor`",
    ],
  };
  const [message, fix] = messages[kind];
  return new BottleError(message, { fix, details });
}

export interface ImageInfo {
  id: string;
  labels: Record<string, string>;
  size: number;
}

interface RawImage {
  Id: string;
  Size?: number;
  Config?: { Labels?: Record<string, string> | null };
}

function imageInfo(raw: RawImage): ImageInfo {
  return { id: raw.Id, labels: raw.Config?.Labels ?? {}, size: raw.Size ?? 0 };
}

function parseJsonLines<T>(text: string): T[] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => JSON.parse(line) as T);
}

function parseLabels(text: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of (text ?? "").split(",")) {
    const at = pair.indexOf("=");
    if (at > 0) labels[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return labels;
}

/** `docker ps`'s Ports column: `127.0.0.1:3000->3000/tcp, :::8080->80/tcp, 9000/tcp` (only the published TCP ones are kept). */
export function parsePublishedPorts(text: string | undefined): PublishedPort[] {
  return (text ?? "")
    .split(",")
    .map((item) => /^(.*):(\d+)->(\d+)\/tcp$/.exec(item.trim()))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => ({ hostIp: match[1]!.replace(/^\[(.*)\]$/, "$1"), hostPort: Number(match[2]), containerPort: Number(match[3]) }));
}

function labelArgs(flag: string, labels: Record<string, string> | undefined): string[] {
  return Object.entries(labels ?? {}).flatMap(([key, value]) => [flag, `${key}=${value}`]);
}

/** `--mount` takes one CSV line: quote a field holding a comma or a quote. */
function csvField(field: string): string {
  return /[",]/.test(field) ? `"${field.replace(/"/g, '""')}"` : field;
}

export function containerArgs(spec: ContainerSpec): string[] {
  const args = ["--name", spec.name, ...labelArgs("--label", spec.labels)];
  if (spec.network) args.push("--network", spec.network);
  for (const alias of spec.networkAliases ?? []) args.push("--network-alias", alias);
  if (spec.ip) args.push("--ip", spec.ip);
  for (const [key, value] of Object.entries(spec.env ?? {})) args.push("--env", `${key}=${value}`);
  for (const mount of spec.mounts ?? []) args.push("--mount", mountArg(mount));
  for (const cap of spec.capDrop ?? []) args.push("--cap-drop", cap);
  for (const cap of spec.capAdd ?? []) args.push("--cap-add", cap);
  for (const opt of spec.securityOpt ?? []) args.push("--security-opt", opt);
  if (spec.pidsLimit) args.push("--pids-limit", String(spec.pidsLimit));
  if (spec.memory) args.push("--memory", String(spec.memory), "--memory-swap", String(spec.memory));
  if (spec.cpus) args.push("--cpus", String(spec.cpus));
  if (spec.runtime) args.push("--runtime", spec.runtime);
  for (const dns of spec.dns ?? []) args.push("--dns", dns);
  for (const [host, address] of Object.entries(spec.extraHosts ?? {})) args.push("--add-host", `${host}:${address}`);
  if (spec.user) args.push("--user", spec.user);
  if (spec.workdir) args.push("--workdir", spec.workdir);
  if (spec.hostname) args.push("--hostname", spec.hostname);
  if (spec.entrypoint !== undefined) args.push("--entrypoint", spec.entrypoint);
  if (spec.init) args.push("--init");
  if (spec.readOnly) args.push("--read-only");
  for (const tmpfs of spec.tmpfs ?? []) args.push("--tmpfs", tmpfs);
  for (const publish of spec.publish ?? []) args.push("--publish", publish);
  for (const [key, value] of Object.entries(spec.sysctls ?? {})) args.push("--sysctl", `${key}=${value}`);
  if (spec.interactive) args.push("--interactive");
  args.push(spec.image, ...(spec.command ?? []));
  return args;
}

/** A container that never printed its ready line: what it printed last is in the message, where it is seen. */
function notReady(container: string, output: string, timedOutMs?: number): BottleError {
  const tail = stderrTail(output, 8);
  const what = timedOutMs === undefined ? `${container} stopped before it was ready` : `${container} did not become ready within ${timedOutMs / 1000}s`;
  return new BottleError(tail ? `${what}; its last output:\n${tail.replace(/^/gm, "    ")}` : what, {
    fix: "run `bottle doctor`; `--verbose` shows the docker commands",
    details: output,
  });
}

/** The Docker client for `engine` (a bottle's recorded one, or the local default). */
export function dockerFor(exec: Exec, engine: Engine | undefined): Docker {
  return new Docker(exec, undefined, engineArgs(engine));
}

export class Docker {
  constructor(
    readonly exec: Exec,
    readonly binary: string = process.env.BOTTLE_DOCKER || "docker",
    /** The CLI's global flags that choose the engine (lib/engine.ts); none for the local default. */
    readonly engineArgs: readonly string[] = [],
  ) {}

  /** The CLI's argv for `args`, on this engine. */
  private argv(args: string[]): string[] {
    return [this.binary, ...this.engineArgs, ...args];
  }

  /** Run a docker subcommand, turning "no docker" failures into one clear error. */
  async run(args: string[], options: Parameters<Exec["run"]>[1] = {}): Promise<RunResult> {
    try {
      return await this.exec.run(this.argv(args), options);
    } catch (error) {
      // A spawn failure means no CLI; a failed command may mean no daemon —
      // except `docker exec`, whose stderr belongs to the program inside.
      if (!(error instanceof CommandError)) {
        const text = String(error);
        throw classifyDockerFailure(text) === "cli-missing" ? dockerFailureError("cli-missing", text) : error;
      }
      const kind = args[0] === "exec" ? undefined : classifyDockerFailure(error.result.stderr);
      if (kind && kind !== "cli-missing") throw dockerFailureError(kind, error.result.stderr);
      throw error;
    }
  }

  async version(): Promise<{ client: string; server: string }> {
    const out = await this.run(["version", "--format", "{{json .}}"]);
    const parsed = JSON.parse(out.stdout) as { Client?: { Version?: string }; Server?: { Version?: string } };
    return { client: parsed.Client?.Version ?? "unknown", server: parsed.Server?.Version ?? "unknown" };
  }

  async info(): Promise<EngineInfo> {
    const out = await this.run(["info", "--format", "{{json .}}"]);
    const parsed = JSON.parse(out.stdout) as {
      Runtimes?: Record<string, unknown>;
      ServerVersion?: string;
      DockerRootDir?: string;
      OperatingSystem?: string;
      NCPU?: number;
      MemTotal?: number;
      CpuCfsQuota?: boolean;
      MemoryLimit?: boolean;
      SwapLimit?: boolean;
      PidsLimit?: boolean;
    };
    return {
      runtimes: Object.keys(parsed.Runtimes ?? {}),
      serverVersion: parsed.ServerVersion ?? "unknown",
      dockerRootDir: parsed.DockerRootDir ?? "/var/lib/docker",
      operatingSystem: parsed.OperatingSystem ?? "unknown",
      ncpu: parsed.NCPU ?? 0,
      memTotal: parsed.MemTotal ?? 0,
      // An engine that does not say is taken to limit (docker says, from 1.x on).
      limits: { cpus: parsed.CpuCfsQuota ?? true, memory: parsed.MemoryLimit ?? true, swap: parsed.SwapLimit ?? true, pids: parsed.PidsLimit ?? true },
    };
  }

  // ---- images ----

  async imageInspect(ref: string): Promise<ImageInfo | undefined> {
    const out = await this.run(["image", "inspect", "--format", "{{json .}}", ref], { check: false });
    if (out.exitCode !== 0) return undefined;
    return imageInfo(JSON.parse(out.stdout) as RawImage);
  }

  /**
   * Several images in one call, in the order asked. When one is missing the
   * CLI skips it in its output, so then each is asked on its own.
   */
  async imagesInspect(refs: string[]): Promise<(ImageInfo | undefined)[]> {
    const out = await this.run(["image", "inspect", "--format", "{{json .}}", ...refs], { check: false });
    const found = out.exitCode === 0 ? parseJsonLines<RawImage>(out.stdout) : [];
    if (found.length === refs.length) return found.map(imageInfo);
    return Promise.all(refs.map((ref) => this.imageInspect(ref)));
  }

  /** Local images matching `filters`, one entry per image id with all its `repo:tag` refs (none when dangling). */
  async imageLs(filters: string[] = []): Promise<{ id: string; refs: string[] }[]> {
    const out = await this.run(["image", "ls", "--no-trunc", "--format", "{{json .}}", ...filters.flatMap((f) => ["--filter", f])]);
    const byId = new Map<string, string[]>();
    for (const row of parseJsonLines<Record<string, string>>(out.stdout)) {
      const id = row.ID ?? "";
      if (!id) continue;
      const refs = byId.get(id) ?? [];
      if (row.Repository && row.Repository !== "<none>" && row.Tag && row.Tag !== "<none>") refs.push(`${row.Repository}:${row.Tag}`);
      byId.set(id, refs);
    }
    return [...byId].map(([id, refs]) => ({ id, refs }));
  }

  /** `force: false` keeps an image that is still tagged elsewhere or used by a container. */
  async imageRm(refs: string[], force = true): Promise<void> {
    if (refs.length) await this.run(["image", "rm", ...(force ? ["--force"] : []), ...refs], { check: false });
  }

  async build(options: {
    context: string;
    dockerfile: string;
    tag: string;
    labels?: Record<string, string>;
    buildArgs?: Record<string, string>;
  }): Promise<string> {
    const args = ["build", "--quiet", "--file", options.dockerfile, "--tag", options.tag];
    args.push(...labelArgs("--label", options.labels));
    for (const [key, value] of Object.entries(options.buildArgs ?? {})) args.push("--build-arg", `${key}=${value}`);
    args.push(options.context);
    const out = await this.run(args);
    return out.stdout.trim().split("\n").pop() ?? "";
  }

  async save(image: string, outputPath: string): Promise<void> {
    await this.run(["save", "--output", outputPath, image]);
  }

  // ---- containers ----

  /** `docker run -d`; returns the container id. */
  async runDetached(spec: ContainerSpec): Promise<string> {
    const out = await this.run(["run", "--detach", ...containerArgs(spec)]);
    return out.stdout.trim();
  }

  async create(spec: ContainerSpec): Promise<string> {
    const out = await this.run(["create", ...containerArgs(spec)]);
    return out.stdout.trim();
  }

  async containerInspect(container: string): Promise<ContainerInspect | undefined> {
    const out = await this.run(["container", "inspect", "--format", "{{json .}}", container], { check: false });
    if (out.exitCode !== 0) return undefined;
    return JSON.parse(out.stdout) as ContainerInspect;
  }

  async kill(container: string, signal: string): Promise<void> {
    await this.run(["kill", "--signal", signal, container]);
  }

  async containerRm(containers: string[]): Promise<void> {
    if (containers.length) await this.run(["rm", "--force", "--volumes", ...containers], { check: false });
  }

  async ps(filters: string[] = [], all = true): Promise<ContainerSummary[]> {
    const args = ["ps", "--no-trunc", "--format", "{{json .}}"];
    if (all) args.push("--all");
    for (const filter of filters) args.push("--filter", filter);
    const out = await this.run(args);
    return parseJsonLines<Record<string, string>>(out.stdout).map((row) => ({
      id: row.ID ?? "",
      name: row.Names ?? "",
      image: row.Image ?? "",
      state: row.State ?? "",
      status: row.Status ?? "",
      createdAt: row.CreatedAt ?? "",
      labels: parseLabels(row.Labels),
      ports: parsePublishedPorts(row.Ports),
    }));
  }

  /** `docker exec` capturing output. Secret env travels by name only. */
  async execIn(container: string, command: string[], options: ExecInContainer = {}): Promise<RunResult> {
    const args = ["exec"];
    if (options.stdin !== undefined) args.push("--interactive");
    args.push(...this.execFlags(options));
    return this.run([...args, container, ...command], {
      stdin: options.stdin,
      env: options.envValues,
      check: options.check,
      timeoutMs: options.timeoutMs,
      ...(options.stdoutFile ? { stdoutFile: options.stdoutFile } : {}),
    });
  }

  /** `docker exec` on the user's terminal; `-t` only when both ends are terminals. */
  async execInteractive(container: string, command: string[], options: ExecInContainer = {}): Promise<number> {
    const args = ["exec", "--interactive"];
    if (this.exec.isTerminal()) args.push("--tty");
    args.push(...this.execFlags(options));
    return this.exec.interactive(this.argv([...args, container, ...command]), { env: options.envValues });
  }

  private execFlags(options: ExecInContainer): string[] {
    const args: string[] = [];
    if (options.user) args.push("--user", options.user);
    if (options.workdir) args.push("--workdir", options.workdir);
    for (const name of options.envNames ?? []) args.push("--env", name);
    return args;
  }

  /**
   * Extract a tar archive into the container, keeping the headers' owners and
   * modes. Not `--archive`: that chowns everything to the container's user
   * (and fails on a numeric `uid:gid` user on older engines).
   */
  async copyArchiveIn(container: string, directory: string, archive: Uint8Array): Promise<void> {
    await this.run(["cp", "-", `${container}:${directory}`], { stdin: archive });
  }

  /** Resolve once the container's output shows `pattern` (no polling); throws on exit or timeout. */
  async waitForLog(container: string, pattern: string, timeoutMs: number): Promise<void> {
    const { line } = await this.exec.waitForOutput(this.argv(["logs", "--follow", container]), pattern, timeoutMs);
    if (line === undefined) {
      const logs = await this.run(["logs", "--tail", "20", container], { check: false });
      throw notReady(container, `${logs.stdout}${logs.stderr}`, timeoutMs);
    }
  }

  /**
   * Start a container created with `interactive`, attached: `stdin` is its
   * input (then closed), and the first line of its output holding `pattern`
   * is returned, when the attached CLI is stopped (the container runs on).
   * One docker call where a copy, a start and a log follow would be three.
   * Throws, with what it printed, when it exits first or times out.
   */
  async startAttached(container: string, options: { stdin: Stdin; pattern: string; timeoutMs: number }): Promise<string> {
    const argv = this.argv(["start", "--attach", "--interactive", container]);
    const { line, output, timedOut } = await this.exec.waitForOutput(argv, options.pattern, options.timeoutMs, { stdin: options.stdin });
    if (line === undefined) {
      const kind = classifyDockerFailure(output);
      if (kind) throw dockerFailureError(kind, output);
      throw notReady(container, output, timedOut ? options.timeoutMs : undefined);
    }
    return line;
  }

  /** `docker cp`; either side may be `container:path`. */
  async cp(source: string, destination: string): Promise<void> {
    await this.run(["cp", source, destination]);
  }

  /** `docker top`: the container's processes as the host's ps sees them (no exec inside), without the header line. */
  async top(container: string, psOptions: string[]): Promise<string[]> {
    const out = await this.run(["top", container, ...psOptions]);
    return out.stdout.split("\n").slice(1).filter((line) => line.trim());
  }

  async logs(container: string, follow = false): Promise<number> {
    const args = ["logs", ...(follow ? ["--follow"] : []), container];
    return this.exec.interactive(this.argv(args));
  }

  // ---- networks ----

  async networkCreate(
    name: string,
    options: { internal?: boolean; labels?: Record<string, string>; subnet?: string; driverOptions?: Record<string, string> } = {},
  ): Promise<string> {
    const args = ["network", "create", "--driver", "bridge"];
    if (options.internal) args.push("--internal");
    for (const [key, value] of Object.entries(options.driverOptions ?? {})) args.push("--opt", `${key}=${value}`);
    if (options.subnet) args.push("--subnet", options.subnet);
    args.push(...labelArgs("--label", options.labels), name);
    const out = await this.run(args);
    return out.stdout.trim();
  }

  async networkConnect(network: string, container: string, options: { aliases?: string[]; ip?: string } = {}): Promise<void> {
    const args = ["network", "connect"];
    for (const alias of options.aliases ?? []) args.push("--alias", alias);
    if (options.ip) args.push("--ip", options.ip);
    await this.run([...args, network, container]);
  }

  async networkInspect(network: string): Promise<NetworkInspect | undefined> {
    const out = await this.run(["network", "inspect", "--format", "{{json .}}", network], { check: false });
    if (out.exitCode !== 0) return undefined;
    return JSON.parse(out.stdout) as NetworkInspect;
  }

  /** Inspect several networks in one call (one JSON document per line). */
  async networksInspect(networks: string[]): Promise<NetworkInspect[]> {
    if (networks.length === 0) return [];
    const out = await this.run(["network", "inspect", "--format", "{{json .}}", ...networks], { check: false });
    return parseJsonLines<NetworkInspect>(out.stdout);
  }

  async networkLs(filters: string[] = []): Promise<NetworkSummary[]> {
    const args = ["network", "ls", "--no-trunc", "--format", "{{json .}}"];
    for (const filter of filters) args.push("--filter", filter);
    const out = await this.run(args);
    return parseJsonLines<Record<string, string>>(out.stdout).map((row) => ({
      id: row.ID ?? "",
      name: row.Name ?? "",
      labels: parseLabels(row.Labels),
    }));
  }

  /** `--force`: also when the container is not running (teardown). */
  async networkDisconnect(network: string, container: string): Promise<void> {
    await this.run(["network", "disconnect", "--force", network, container]);
  }

  // ---- volumes ----

  /** Volumes matching `filters`, with their labels. */
  async volumeLs(filters: string[] = []): Promise<VolumeSummary[]> {
    const args = ["volume", "ls", "--format", "{{json .}}"];
    for (const filter of filters) args.push("--filter", filter);
    const out = await this.run(args);
    return parseJsonLines<Record<string, string>>(out.stdout).map((row) => ({ name: row.Name ?? "", labels: parseLabels(row.Labels) }));
  }

  async volumeRm(volumes: string[]): Promise<void> {
    if (volumes.length) await this.run(["volume", "rm", ...volumes], { check: false });
  }

  /** Whether docker removed them all; a refusal says why in `stderr`. */
  async networkRm(networks: string[]): Promise<{ removed: boolean; stderr: string }> {
    if (!networks.length) return { removed: true, stderr: "" };
    const out = await this.run(["network", "rm", ...networks], { check: false });
    return { removed: out.exitCode === 0, stderr: out.stderr };
  }

  /** Events between two times (unix seconds), e.g. to count builds. */
  async events(options: { since: number; until: number; filters?: string[] }): Promise<Array<Record<string, unknown>>> {
    const args = ["events", "--since", String(options.since), "--until", String(options.until), "--format", "{{json .}}"];
    for (const filter of options.filters ?? []) args.push("--filter", filter);
    const out = await this.run(args);
    return parseJsonLines<Record<string, unknown>>(out.stdout);
  }
}

/** What `docker info` tells bottle. */
export interface EngineInfo {
  runtimes: string[];
  serverVersion: string;
  dockerRootDir: string;
  operatingSystem: string;
  /** CPUs and memory (bytes) the engine has; 0 when it does not say. */
  ncpu: number;
  memTotal: number;
  /** Which limits it can set (CpuCfsQuota, MemoryLimit, SwapLimit, PidsLimit): rootless Docker without its cgroup controllers delegated cannot. */
  limits: { cpus: boolean; memory: boolean; swap: boolean; pids: boolean };
}

export interface ContainerInspect {
  Id: string;
  Name: string;
  /** OOMKilled: the container's own process was killed for lack of memory (not a child of an exec: see lib/resources.ts). */
  State: { Status: string; Running: boolean; ExitCode: number; OOMKilled?: boolean };
  Config: { Env?: string[]; Labels?: Record<string, string>; Image: string; Cmd?: string[] | null };
  HostConfig: Record<string, unknown>;
  NetworkSettings: {
    Networks: Record<string, { IPAddress: string; Aliases?: string[] | null }>;
    /** `3000/tcp` → where the host publishes it (null: exposed, not published). */
    Ports?: Record<string, Array<{ HostIp: string; HostPort: string }> | null>;
  };
  Mounts?: Array<{ Source: string; Destination: string; RW: boolean }>;
}

export interface NetworkInspect {
  Id: string;
  Name: string;
  Internal: boolean;
  Labels?: Record<string, string>;
  IPAM: { Config?: Array<{ Subnet?: string; Gateway?: string }> };
  Containers?: Record<string, { Name: string; IPv4Address: string }>;
}
