/**
 * The gate daemons: code that runs inside the gate container, bundled for
 * Node by scripts/gen-assets.ts from `<folder>/main.ts` and embedded as an
 * asset (lib/assets.ts). A daemon imports only node:*, its own folder, the
 * common folder and the packages listed here, so that its bundle stands
 * alone; test/unit/gates/daemon-imports.test.ts holds every file to that.
 * Paths are relative to lib/gates/.
 */
export const GATE_DAEMONS = [
  { folder: "egress/daemon", bundle: "egress-gate.bundle" },
  { folder: "ssh/daemon", bundle: "ssh-gate.bundle" },
  { folder: "ports/daemon", bundle: "port-relay.bundle" },
] as const;

/** Code that more than one daemon bundles; it imports only node:* and its own files. */
export const DAEMON_COMMON_FOLDER = "common";

/** Packages a daemon may bundle in (schemas of the gate's config files). */
export const DAEMON_PACKAGES: readonly string[] = ["valibot"];
