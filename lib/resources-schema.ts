import * as v from "valibot";

/**
 * The shapes of `resources:` once planned: what a machine has (Capacity)
 * and the plan's limits. Apart from lib/resources.ts (which plans and
 * reports them) so that the plan and the backend seam can name them without
 * importing the code that uses both.
 */

/** Processes (threads included) a bottle may hold at once by default: a fork bomb stops there. */
export const DEFAULT_PIDS = 4096;

export const RESOURCE_FIELDS = ["cpus", "memory", "pids"] as const;
export type ResourceField = (typeof RESOURCE_FIELDS)[number];

/** Limits a machine cannot set, each with why: a bottle that sets one is an error, a default is left off and the preflight says so. */
export type Unlimitable = Partial<Record<ResourceField | "swap", string>>;

/** What the machine a backend runs bottles on has: the defaults' base and the values' ceiling. */
export interface Capacity {
  cpus: number;
  /** Bytes. */
  memory: number;
  /** How messages name it: "the Docker engine", "this machine". */
  of: string;
  cannot: Unlimitable;
  /** Set when only whole CPUs can be given: who says so ("a smolmachines VM"). */
  wholeCpus?: string;
}

const LimitSchema = v.object({ value: v.number(), from: v.string() });

/** The plan's limits, each with where it came from (a file, or how its default was reached); one the machine cannot set is absent, and a note says why. */
export const ResourcesPlanSchema = v.object({
  cpus: v.optional(LimitSchema),
  /** Bytes. */
  memory: v.optional(LimitSchema),
  pids: v.optional(LimitSchema),
  /** Swap is held to the memory limit (the bottle cannot swap past it). */
  noSwap: v.boolean(),
  notes: v.array(v.string()),
  engine: v.object({ cpus: v.number(), memory: v.number(), of: v.string() }),
  /** The gate's own, fixed limits (lib/backends/gate.ts), less what the Docker engine cannot set. */
  gate: v.object({ cpus: v.optional(v.number()), memory: v.optional(v.number()), pids: v.optional(v.number()) }),
});

export type ResourcesPlan = v.InferOutput<typeof ResourcesPlanSchema>;
