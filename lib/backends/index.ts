import { usageError } from "../cli/args.ts";
import type { ResolvedBottle } from "../manifest/types.ts";
import { log } from "../log.ts";
import { didYouMean } from "../suggest.ts";
import { dockerBackend } from "./docker/index.ts";
import { smolmachinesBackend } from "./smolmachines/index.ts";
import { BACKEND_NAMES, type Backend, type BackendName, type Env } from "./types.ts";

/**
 * The registry of backends: the one list `--backend`, `bottle doctor`,
 * completions and a bottle's `backend:` field are checked against.
 */

export const BACKENDS: Readonly<Record<BackendName, Backend>> = { docker: dockerBackend, smolmachines: smolmachinesBackend };

export function isBackendName(name: string): name is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(name);
}

/** The backend a bottle or container names (an unknown or missing name: docker, the only one before there were two). */
export function backendOf(name: string | undefined): Backend {
  return name && isBackendName(name) ? BACKENDS[name] : dockerBackend;
}

/**
 * --backend, else BOTTLE_BACKEND, else the bottle's `backend:`, else docker.
 * A backend this machine cannot run is an error; planning alone (--dry-run)
 * only warns.
 */
export function selectBackend(
  option: string | undefined,
  bottle: Pick<ResolvedBottle, "backend">,
  env: Env,
  options: { dryRun?: boolean; backends?: Readonly<Record<BackendName, Backend>> } = {},
): Backend {
  const chosen = option ?? env.BOTTLE_BACKEND ?? bottle.backend ?? "docker";
  if (!isBackendName(chosen)) throw usageError(`unknown backend "${chosen}"${didYouMean(chosen, [...BACKEND_NAMES])}`, `use ${BACKEND_NAMES.map((name) => `--backend ${name}`).join(" or ")}`);
  const backend = (options.backends ?? BACKENDS)[chosen];
  const unavailable = backend.unavailable(env);
  if (unavailable && !options.dryRun) throw unavailable;
  if (unavailable) log.warn(`${unavailable.message} (fix: ${unavailable.fix})`);
  return backend;
}

export { BACKEND_NAMES, type Backend, type BackendName };
