import { existsSync, statSync, statfsSync } from "node:fs";
import { listSmolmachineCache } from "./backends/smolmachines/cache.ts";
import { smolvmBinary } from "./backends/smolmachines/smolvm.ts";
import { Docker } from "./docker.ts";
import { errorMessage, isBottleError } from "./errors.ts";
import type { Exec } from "./exec.ts";
import { extraCaBundlesFromEnv } from "./ca-certs.ts";
import { configDir } from "./paths.ts";

/** `bottle doctor`: what this machine can run, each failure with its fix. */

export type CheckStatus = "ok" | "warn" | "fail" | "info";

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

export interface DoctorReport {
  checks: Check[];
  /** The docker backend can run bottles. */
  dockerReady: boolean;
}

const MIN_FREE_BYTES = 5 * 1024 ** 3;

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

export async function runDoctor(exec: Exec, env: Record<string, string | undefined> = process.env): Promise<DoctorReport> {
  const docker = new Docker(exec);
  const checks: Check[] = [];
  let dockerRootDir: string | undefined;
  let dockerReady = false;

  const cli = Bun.which(docker.binary);
  checks.push(
    cli
      ? { name: "docker CLI", status: "ok", detail: cli }
      : {
          name: "docker CLI",
          status: "fail",
          detail: "not found on PATH",
          fix: "install Docker (https://docs.docker.com/engine/install/) or Docker Desktop",
        },
  );

  if (cli) {
    try {
      const version = await docker.version();
      const info = await docker.info();
      dockerRootDir = info.dockerRootDir;
      dockerReady = true;
      checks.push({ name: "docker daemon", status: "ok", detail: `server ${version.server}, client ${version.client} (${info.operatingSystem})` });
      checks.push(
        info.runtimes.includes("runsc")
          ? { name: "gVisor (runsc)", status: "info", detail: "registered; used when a probe container starts under it" }
          : { name: "gVisor (runsc)", status: "info", detail: "not registered; bottles use runc" },
      );
    } catch (error) {
      checks.push({
        name: "docker daemon",
        status: "fail",
        detail: errorMessage(error),
        fix: isBottleError(error) ? error.fix : "start the Docker daemon",
      });
    }
  }

  const smolvm = Bun.which(smolvmBinary(env));
  let smolvmVersion = "";
  if (smolvm) smolvmVersion = (await exec.run([smolvm, "--version"], { check: false, timeoutMs: 5000 })).stdout.trim();
  checks.push(
    smolvm
      ? { name: "smolvm", status: "ok", detail: `${smolvm}${smolvmVersion ? ` (${smolvmVersion})` : ""}` }
      : { name: "smolvm", status: "info", detail: "not installed; only needed for --backend smolmachines" },
  );
  const cached = listSmolmachineCache(env);
  if (cached.length)
    checks.push({
      name: "smolmachine cache",
      status: "info",
      detail: `${cached.length} packed image${cached.length === 1 ? "" : "s"}, ${(cached.reduce((n, e) => n + e.size, 0) / 1024 ** 3).toFixed(1)} GiB`,
    });
  checks.push(
    existsSync("/dev/kvm")
      ? { name: "/dev/kvm", status: "ok", detail: "present" }
      : { name: "/dev/kvm", status: "info", detail: "absent; only needed for --backend smolmachines on Linux" },
  );

  const diskPath = dockerRootDir && existsSync(dockerRootDir) ? dockerRootDir : "/";
  try {
    const fs = statfsSync(diskPath);
    const free = fs.bavail * fs.bsize;
    checks.push(
      free >= MIN_FREE_BYTES
        ? { name: "disk space", status: "ok", detail: `${gib(free)} free at ${diskPath}` }
        : {
            name: "disk space",
            status: "warn",
            detail: `${gib(free)} free at ${diskPath}; images need about 1 GiB`,
            fix: "free space, e.g. `docker system prune`",
          },
    );
  } catch (error) {
    checks.push({ name: "disk space", status: "warn", detail: errorMessage(error) });
  }

  const config = configDir(env);
  if (!existsSync(config)) {
    checks.push({ name: "config dir", status: "info", detail: `${config} does not exist; the embedded default is used`, fix: "run `bottle init` to create it" });
  } else {
    const mode = statSync(config).mode & 0o777;
    checks.push(
      mode & 0o022
        ? {
            name: "config dir",
            status: "warn",
            detail: `${config} is writable by others (mode ${mode.toString(8)}); bottles carry credentials`,
            fix: `chmod 700 ${config}`,
          }
        : { name: "config dir", status: "ok", detail: `${config} (mode ${mode.toString(8)})` },
    );
  }

  const bundles = extraCaBundlesFromEnv(env);
  checks.push(
    bundles.length
      ? { name: "extra CA certs", status: "info", detail: `${bundles.join(", ")}; trusted in image builds and bottles` }
      : { name: "extra CA certs", status: "info", detail: "none (NODE_EXTRA_CA_CERTS / SSL_CERT_FILE unset)" },
  );

  return { checks, dockerReady };
}

export function formatDoctor(report: DoctorReport): string {
  const marks: Record<CheckStatus, string> = { ok: "ok  ", warn: "warn", fail: "FAIL", info: "info" };
  const width = Math.max(...report.checks.map((check) => check.name.length));
  const lines = report.checks.map((check) => {
    const line = `${marks[check.status]}  ${check.name.padEnd(width)}  ${check.detail}`;
    return check.fix && check.status !== "ok" ? `${line}\n      ${" ".repeat(width)}  fix: ${check.fix}` : line;
  });
  lines.push("", report.dockerReady ? "The docker backend can run bottles." : "The docker backend cannot run bottles yet (see FAIL above).");
  return lines.join("\n");
}
