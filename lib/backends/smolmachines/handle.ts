import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExecInContainer } from "../../docker.ts";
import { BottleError } from "../../errors.ts";
import type { Exec } from "../../exec.ts";
import { oomKillCount } from "../../resources.ts";
import type { BottleHandle } from "../types.ts";
import { machineCopyInArgv, machineCopyOutArgv, machineExecArgv, type MachineExecOptions } from "./smolvm.ts";

/**
 * A smolmachines bottle: its VM, reached through `smolvm machine …`. Secret
 * variables travel by name (`--secret-env`), their values in smolvm's own
 * environment, never argv. `machine cp` takes files, not a stream: an
 * archive goes through a private temp file (0600 in a 0700 dir, removed at
 * once) and is unpacked with the headers' owners and modes by one `machine
 * exec`, which also deletes it in the VM (it may hold the env file's values).
 */
export function machineHandle(exec: Exec, machine: string, smolvm: string): BottleHandle {
  const argv = (command: string[], options: ExecInContainer, flags: Pick<MachineExecOptions, "interactive" | "tty">): string[] =>
    machineExecArgv(
      {
        name: machine,
        command,
        ...flags,
        ...(options.workdir ? { workdir: options.workdir } : {}),
        ...(options.user ? { user: parseUser(options.user) } : {}),
        ...(options.envNames?.length ? { secretEnv: options.envNames } : {}),
      },
      smolvm,
    );
  return {
    name: machine,
    exec: (command, options = {}) =>
      exec.run(argv(command, options, { interactive: options.stdin !== undefined }), {
        stdin: options.stdin,
        env: options.envValues,
        check: options.check,
        timeoutMs: options.timeoutMs,
        ...(options.stdoutFile ? { stdoutFile: options.stdoutFile } : {}),
      }),
    interactive: (command, options = {}) => exec.interactive(argv(command, options, { interactive: true, tty: exec.isTerminal() }), { env: options.envValues }),
    async copyIn(directory, archive) {
      const dir = mkdtempSync(join(tmpdir(), "bottle-archive-"));
      const inMachine = `/tmp/bottle-archive-${randomBytes(6).toString("hex")}.tar`;
      try {
        const file = join(dir, "archive.tar");
        writeFileSync(file, archive, { mode: 0o600 });
        await exec.run(machineCopyInArgv(machine, file, inMachine, smolvm));
        await exec.run(machineExecArgv({ name: machine, command: ["sh", "-c", UNPACK_SCRIPT, "unpack", inMachine, directory] }, smolvm));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    copyOut: async (path, destination) => {
      await exec.run(machineCopyOutArgv(machine, path, destination, smolvm));
    },
    processes: async () => {
      const out = await exec.run(machineExecArgv({ name: machine, command: ["ps", "-eo", "comm,args", "--no-headers"] }, smolvm), { check: false });
      return out.stdout.split("\n").filter((line) => line.trim());
    },
    // The VM's kernel is the bottle's alone: its count of OOM kills is the bottle's.
    outOfMemoryKills: async () => {
      const out = await exec.run(machineExecArgv({ name: machine, command: ["cat", "/proc/vmstat"] }, smolvm), { check: false, timeoutMs: 10_000 });
      return out.exitCode === 0 ? oomKillCount(out.stdout) : undefined;
    },
    logs: async () => {
      throw new BottleError(`${machine} is a smolmachines bottle: it has no container log`, {
        fix: `see what its gates decided: bottle logs ${machine} --gate egress (or --gate git, --gate ssh)`,
      });
    },
  };
}

/** $1 = the archive in the VM, $2 = where to unpack; the archive is removed whatever tar says. */
const UNPACK_SCRIPT = 'tar -x -p --same-owner --numeric-owner -f "$1" -C "$2"; status=$?; rm -f "$1"; exit $status';

/** `uid:gid` (what docker exec --user takes) → numbers for setpriv. */
export function parseUser(user: string): { uid: number; gid: number } {
  const match = /^(\d+):(\d+)$/.exec(user);
  if (!match) throw new BottleError(`a smolmachines bottle runs commands as a numeric uid:gid, not "${user}"`);
  return { uid: Number(match[1]), gid: Number(match[2]) };
}
