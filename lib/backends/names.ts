/** The backends there are (lib/backends/index.ts maps each to its implementation). */
export const BACKEND_NAMES = ["docker", "smolmachines"] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
