import { existsSync, statSync } from "node:fs";
import { BACKENDS } from "./backends/index.ts";
import type { BackendName } from "./backends/types.ts";
import type { Check, CheckStatus } from "./doctor-check.ts";
import { claudeCredentialCheck } from "./doctor-credential.ts";
import type { Exec } from "./exec.ts";
import { resolveEngine } from "./engine.ts";
import { extraCaBundlesFromEnv } from "./ca-certs.ts";
import { configDir } from "./paths.ts";

/** `bottle doctor`: what this machine can run, each failure with its fix. Each backend tells its own rows. */

export type { Check, CheckStatus };

export interface DoctorReport {
  checks: Check[];
  /** Which backends can run bottles here. */
  ready: Record<BackendName, boolean>;
  /** The docker backend can run bottles (the default's readiness). */
  dockerReady: boolean;
}

/**
 * `context`: check that docker context's engine (else the one the Docker CLI's rules choose).
 * `projectDir`: where an agent of the repository may choose the bottle whose credential is checked.
 */
export async function runDoctor(
  exec: Exec,
  env: Record<string, string | undefined> = process.env,
  context?: string,
  projectDir = process.cwd(),
): Promise<DoctorReport> {
  const engine = await resolveEngine(exec, context, env);
  const backends = Object.values(BACKENDS).filter((backend) => !engine.remote || backend.remoteEngines);
  const [rows, credential] = await Promise.all([Promise.all(backends.map((backend) => backend.doctor(exec, env, engine))), claudeCredentialCheck(env, projectDir)]);
  const checks: Check[] = rows.flat();
  // A backend is ready when none of its rows failed and it does not say this machine lacks what it needs.
  const ready = Object.fromEntries(backends.map((backend, i) => [backend.name, !rows[i]!.some((row) => row.status === "fail") && !backend.unavailable(env)])) as Record<BackendName, boolean>;

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

  checks.push(credential);

  const bundles = extraCaBundlesFromEnv(env);
  checks.push(
    bundles.length
      ? { name: "extra CA certs", status: "info", detail: `${bundles.join(", ")}; trusted in image builds and bottles` }
      : { name: "extra CA certs", status: "info", detail: "none (NODE_EXTRA_CA_CERTS / SSL_CERT_FILE unset)" },
  );

  return { checks, ready, dockerReady: ready.docker };
}

export function formatDoctor(report: DoctorReport): string {
  const marks: Record<CheckStatus, string> = { ok: "ok  ", warn: "warn", fail: "FAIL", info: "info" };
  const width = Math.max(...report.checks.map((check) => check.name.length));
  const lines = report.checks.map((check) => {
    const line = `${marks[check.status]}  ${check.name.padEnd(width)}  ${check.detail}`;
    return check.fix && check.status !== "ok" ? `${line}\n      ${" ".repeat(width)}  fix: ${check.fix}` : line;
  });
  lines.push("");
  for (const backend of Object.values(BACKENDS))
    lines.push(`${backend.name}: ${report.ready[backend.name] ? "can run bottles" : "cannot run bottles here (see above)"} — ${backend.summary}`);
  return lines.join("\n");
}
