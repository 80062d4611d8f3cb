import type { ContainerSummary, Docker, EngineInfo, ExecInContainer } from "../docker.ts";
import type { Check } from "../doctor-check.ts";
import type { BottleError } from "../errors.ts";
import type { Exec, RunResult } from "../exec.ts";
import type { GitGateRemote } from "../gates/git/config.ts";
import type { SshGateHost } from "../gates/ssh/config.ts";
import type { ImageSpec } from "../images.ts";
import type { Plan, PortForward } from "../plan.ts";
import type { Capacity } from "../resources-schema.ts";

/**
 * The seam between a launch and where bottles run. A backend prepares a
 * planned bottle's images, launches it (its gate always runs in Docker,
 * see gate.ts) and hands back a BottleHandle, the one way anything reaches
 * inside a running bottle. Adding a backend is adding a folder here and a
 * line in index.ts; nothing outside lib/backends/ asks which one runs.
 */

export type Env = Record<string, string | undefined>;

export { BACKEND_NAMES, type BackendName } from "./names.ts";
import type { BackendName } from "./names.ts";
import type { Engine } from "../engine.ts";

/** A running bottle: its container, or its VM. */
export interface BottleHandle {
  /** The bottle's name (its container's or machine's). */
  readonly name: string;
  /** Run a command inside, capturing its output (user, workdir, stdin, env names: see ExecInContainer). */
  exec(command: string[], options?: ExecInContainer): Promise<RunResult>;
  /** Run a command inside on the user's terminal; resolves with its exit code. */
  interactive(command: string[], options?: ExecInContainer): Promise<number>;
  /** Extract a tar archive under `directory`, keeping the headers' owners and modes. */
  copyIn(directory: string, archive: Uint8Array): Promise<void>;
  /** Copy `path` from inside to `destination` on the host. */
  copyOut(path: string, destination: string): Promise<void>;
  /** The bottle's own output on the terminal. */
  logs(follow: boolean): Promise<number>;
  /** Its processes, one `COMMAND ARGS` line each (ps's comm, then its argv), read from outside where the engine can. */
  processes(): Promise<string[]>;
  /** How many of its processes the kernel has killed for lack of memory so far; undefined when it cannot tell. */
  outOfMemoryKills(): Promise<number | undefined>;
}

/** The engine as planning sees it: the runtime to name, and what bottles may use of the machine. */
export interface EnginePlan {
  runtime: Plan["runtime"];
  capacity: Capacity;
}

/** Docker objects a launch created, in creation order, so teardown can undo exactly them. */
export interface Created {
  networks: string[];
  containers: string[];
  /** Containers connected to a network after their create (the gate to its egress network). */
  joined?: { network: string; container: string }[];
  /** A VM (smolmachines), removed before the docker objects. */
  machine?: string;
  /** The bottle's name once launched: what was added to it while it ran (a port's relay, by `bottle port`) goes at teardown too. */
  name?: string;
}

/** What the gate's ready line says: where its listeners bind, its egress address, the CA of its credential routes. */
export interface GateAddresses {
  gateIp: string;
  gateEgressIp: string;
  /** PEM; only with credential routes. */
  ca?: string;
}

export interface LaunchRequest {
  version: string;
  /** Secret values the gate's DLP must refuse to let out. */
  secrets: string[];
  /** Credential custody: name → value, for the gate only. */
  custody?: Record<string, string>;
  /** The git gate's remotes with their keys (into the gate only). */
  git?: GitGateRemote[];
  /** The SSH gate's keys, in the plan's host order (into the gate only). */
  ssh?: SshGateHost[];
  /** Filled as objects are created, so a failure half-way can be undone. */
  created: Created;
  /**
   * Provisioning and the launch self-test, given the bottle and (a promise
   * of) its gate's addresses: the docker backend runs them while the gate
   * starts, a VM once it is up.
   */
  ready(bottle: BottleHandle, gate: Promise<GateAddresses>): Promise<unknown>;
}

/** The images a plan names, as planning hashed and found them. */
export interface PlannedImages {
  specs: { agent: ImageSpec; gate: ImageSpec; custom?: ImageSpec };
  /** Tags planning found missing (to build). */
  missing: string[];
}

/** A bottle whose images are ready: its plan (images resolved) and how to launch it. */
export interface PreparedBottle {
  plan: Plan;
  launch(docker: Docker, plan: Plan, request: LaunchRequest): Promise<BottleHandle>;
}

/** A bottle as `bottle ls` shows it. */
export interface BottleRow {
  name: string;
  agent: string;
  backend: string;
  status: string;
  /** Its Claude Code session: attached, detached, exited, or "-" (a command of its own; not running). */
  session: string;
  createdAt: string;
  age: string;
  workspace: string;
  /** The docker engine it runs on ("local", or a context's name / DOCKER_HOST). */
  engine?: string;
  /** Its forwarded ports, `127.0.0.1:3000->3000` each (bottle ls). */
  ports: string[];
}

/** What a killed launch of this backend left outside any bottle (e.g. a smolmachines pack session). */
export interface Leftovers {
  describe: string;
  containers: string[];
  networks: string[];
  remove(): Promise<void>;
}

/** A forwarded port as it runs: the bottle's port and where on the host it answers. */
export interface OpenPort {
  port: number;
  hostIp: string;
  hostPort: number;
}

/**
 * Forwarding host ports into a bottle (`ports:`, `bottle up -p`, `bottle
 * port`): only the listed port, only from the host to the bottle. A
 * backend's launch forwards its plan's ports itself; these reach a running one.
 */
export interface PortForwarding {
  /** Ports one bottle can forward at once. */
  readonly max: number;
  /** Forward one more port of a running bottle. */
  open(docker: Docker, plan: Plan, forward: PortForward, version: string): Promise<OpenPort>;
  /** Stop forwarding a port; false when it was not forwarded. */
  close(docker: Docker, plan: Plan, port: number): Promise<boolean>;
}

export interface Backend {
  readonly name: BackendName;
  /** One line for `--backend` help and `bottle doctor`. */
  readonly summary: string;
  /** Whether Claude's home survives `down` on it (a docker volume; see lib/homes.ts). */
  readonly keepsHomes: boolean;
  /** Whether it can run on a remote Docker engine (lib/engine.ts); a VM runs on this machine. */
  readonly remoteEngines: boolean;
  /** How it forwards host ports into its bottles; undefined: it cannot (`ports` are then an error naming it). */
  readonly ports: PortForwarding | undefined;
  /** Why this machine cannot run it (one error with the fix), or undefined. */
  unavailable(env: Env): BottleError | undefined;
  /** Its rows in `bottle doctor`. */
  doctor(exec: Exec, env: Env, engine?: Engine): Promise<Check[]>;
  /**
   * From planning's one `docker info`: the runtime it names (gVisor when the
   * engine has it registered) and the machine bottles run on, which their
   * limits are checked against (the Docker engine, or this machine for a VM).
   */
  planEngine(info: EngineInfo): EnginePlan;
  /** Build or reuse the images (a VM: also pack them). */
  prepare(docker: Docker, plan: Plan, images: PlannedImages, env: Env): Promise<PreparedBottle>;
  /** Remove what a launch created; never throws. */
  teardown(docker: Docker, created: Created, env: Env): Promise<void>;
  /** Does this container stand for one of its bottles in `bottle ls`? */
  standsFor(container: ContainerSummary): boolean;
  /** `bottle ls` rows for the containers that stand for its bottles. */
  rows(exec: Exec, containers: ContainerSummary[], env: Env): Promise<BottleRow[]>;
  /** The handle of a bottle by its plan, without asking whether it runs. */
  handle(docker: Docker, plan: Plan, env: Env): BottleHandle;
  /** The handle of a running bottle, or undefined when it does not run. */
  open(docker: Docker, plan: Plan | undefined, name: string, env: Env): Promise<BottleHandle | undefined>;
  /** Remove a bottle: what only this backend knows of (a VM), then every docker object and the state dir. */
  remove(docker: Docker, name: string, plan: Plan | undefined, env: Env): Promise<void>;
  /** What killed launches left outside any bottle. */
  leftovers(docker: Docker): Promise<Leftovers | undefined>;
}
