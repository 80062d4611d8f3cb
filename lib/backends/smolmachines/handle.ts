import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Docker, type ExecInContainer } from "../../docker.ts";
import { BottleError } from "../../errors.ts";
import type { Exec, RunResult } from "../../exec.ts";
import { machineCopyInArgv, machineCopyOutArgv, machineExecArgv, type MachineExecOptions } from "./smolvm.ts";

/**
 * Docker for a smolmachines bottle. The launch steps both backends share
 * (provisioning, the gate's CA, the SSH agent relay, the egress self-test,
 * attach, saving a copied workspace) address the bottle as
 * `plan.containers.bottle`; here that name is the smolvm machine, so exec, cp
 * and interactive exec on it become `smolvm machine …` and everything else
 * (the gate container) stays docker.
 */
export class MachineDocker extends Docker {
  constructor(
    exec: Exec,
    readonly machine: string,
    readonly smolvm: string,
    dockerBinary?: string,
  ) {
    super(exec, dockerBinary);
  }

  /** Secret variables travel by name (`--secret-env`); their values go to smolvm's own environment, never argv. */
  private execArgv(command: string[], options: ExecInContainer, flags: Pick<MachineExecOptions, "interactive" | "tty">): string[] {
    return machineExecArgv(
      {
        name: this.machine,
        command,
        ...flags,
        ...(options.workdir ? { workdir: options.workdir } : {}),
        ...(options.user ? { user: parseUser(options.user) } : {}),
        ...(options.envNames?.length ? { secretEnv: options.envNames } : {}),
      },
      this.smolvm,
    );
  }

  override async execIn(container: string, command: string[], options: ExecInContainer = {}): Promise<RunResult> {
    if (container !== this.machine) return super.execIn(container, command, options);
    return this.exec.run(this.execArgv(command, options, { interactive: options.stdin !== undefined }), {
      stdin: options.stdin,
      env: options.envValues,
      check: options.check,
      timeoutMs: options.timeoutMs,
      ...(options.stdoutFile ? { stdoutFile: options.stdoutFile } : {}),
    });
  }

  override async execInteractive(container: string, command: string[], options: ExecInContainer = {}): Promise<number> {
    if (container !== this.machine) return super.execInteractive(container, command, options);
    return this.exec.interactive(this.execArgv(command, options, { interactive: true, tty: this.exec.isTerminal() }), { env: options.envValues });
  }

  /**
   * `machine cp` takes files, not a stream: the archive goes through a
   * private temp file (0600 in a 0700 dir, removed at once) and is unpacked
   * with the headers' owners and modes by one `machine exec`, which also
   * deletes it in the VM (it may hold the env file's values).
   */
  override async copyArchiveIn(container: string, directory: string, archive: Uint8Array): Promise<void> {
    if (container !== this.machine) return super.copyArchiveIn(container, directory, archive);
    const dir = mkdtempSync(join(tmpdir(), "bottle-archive-"));
    const inMachine = `/tmp/bottle-archive-${randomBytes(6).toString("hex")}.tar`;
    try {
      const file = join(dir, "archive.tar");
      writeFileSync(file, archive, { mode: 0o600 });
      await this.exec.run(machineCopyInArgv(this.machine, file, inMachine, this.smolvm));
      await this.exec.run(
        machineExecArgv(
          { name: this.machine, command: ["sh", "-c", UNPACK_SCRIPT, "unpack", inMachine, directory] },
          this.smolvm,
        ),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  override async cp(source: string, destination: string): Promise<void> {
    const prefix = `${this.machine}:`;
    if (source.startsWith(prefix)) await this.exec.run(machineCopyOutArgv(this.machine, source.slice(prefix.length), destination, this.smolvm));
    else if (destination.startsWith(prefix)) await this.exec.run(machineCopyInArgv(this.machine, source, destination.slice(prefix.length), this.smolvm));
    else await super.cp(source, destination);
  }

  override async logs(container: string, follow = false): Promise<number> {
    if (container !== this.machine) return super.logs(container, follow);
    throw new BottleError(`${container} is a smolmachines bottle: it has no container log`, {
      fix: `see what its gates decided: bottle logs ${container} --gate egress (or --gate git, --gate ssh)`,
    });
  }
}

/** $1 = the archive in the VM, $2 = where to unpack; the archive is removed whatever tar says. */
const UNPACK_SCRIPT = 'tar -x -p --same-owner --numeric-owner -f "$1" -C "$2"; status=$?; rm -f "$1"; exit $status';

/** `uid:gid` (what docker exec --user takes) → numbers for setpriv. */
export function parseUser(user: string): { uid: number; gid: number } {
  const match = /^(\d+):(\d+)$/.exec(user);
  if (!match) throw new BottleError(`a smolmachines bottle runs commands as a numeric uid:gid, not "${user}"`);
  return { uid: Number(match[1]), gid: Number(match[2]) };
}
