import type { BottleFileManifest } from "./schema.ts";
import type { EgressLimitOverrides } from "./types.ts";

/**
 * The egress gate's limits: their defaults, and how each `egress.limits`
 * field of a manifest maps to the gate's own (seconds there, milliseconds in
 * the gate). The merge and `bottle info` both read this table.
 */

type ManifestLimits = NonNullable<NonNullable<BottleFileManifest["egress"]>["limits"]>;

export interface LimitField {
  /** The manifest's field under `egress.limits`. */
  manifest: keyof ManifestLimits;
  /** The gate's field. */
  gate: keyof EgressLimitOverrides;
  /** gate value = manifest value × scale. */
  scale: number;
  /** How `bottle info` shows a value: a count, bytes or seconds. */
  unit: "count" | "bytes" | "seconds";
}

export const LIMIT_FIELDS: readonly LimitField[] = Object.freeze([
  { manifest: "requests_per_minute", gate: "requestsPerMinute", scale: 1, unit: "count" },
  { manifest: "bytes_out", gate: "bytesOut", scale: 1, unit: "bytes" },
  { manifest: "idle_timeout_seconds", gate: "idleTimeoutMs", scale: 1000, unit: "seconds" },
  { manifest: "max_tunnel_seconds", gate: "maxTunnelMs", scale: 1000, unit: "seconds" },
  { manifest: "max_log_bytes", gate: "maxLogBytes", scale: 1, unit: "bytes" },
]);

/** The limits of a bottle that sets none. */
export const DEFAULT_EGRESS_LIMITS: Readonly<Required<EgressLimitOverrides>> = Object.freeze({
  requestsPerMinute: 1200,
  bytesOut: 2 * 1024 ** 3,
  idleTimeoutMs: 10 * 60 * 1000,
  maxTunnelMs: 6 * 60 * 60 * 1000,
  // Each gate log with its one rotated generation; a flood of denials cannot fill the host's disk.
  maxLogBytes: 64 * 1024 ** 2,
});
