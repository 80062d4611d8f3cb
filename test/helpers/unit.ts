import { afterEach, beforeEach } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePlan, type Plan } from "../../lib/plan.ts";

/** Shared helpers for unit tests: temp dirs and a minimal valid Plan. */

const made: string[] = [];

/** A fresh temp dir, removed by `cleanupTempDirs()`. */
export function tempDir(prefix = "bottle-unit-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export function cleanupTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

/**
 * A minimal Plan that passes `parsePlan`; nested objects in `overrides` are
 * merged one level deep (e.g. `{ agent: { model: "x" } }`). Throws when the
 * result does not validate, so a schema change shows up here first.
 */
export function makePlan(overrides: DeepPartial<Plan> = {}): Plan {
  const name = overrides.name ?? "bottle-test";
  const base: Plan = {
    version: 1,
    name,
    backend: "docker",
    agent: { name: "default", source: "builtin", skills: [], hasPrompt: false },
    bottle: { name: "default", sources: [] },
    images: {
      agent: { kind: "agent", tag: "bottle-agent:0123456789abcdef", hash: "0123456789abcdef".repeat(4) },
      gate: { kind: "gate", tag: "bottle-gate:fedcba9876543210", hash: "fedcba9876543210".repeat(4) },
    },
    bottleImage: "bottle-agent:0123456789abcdef",
    networks: { internal: `${name}-internal`, egress: `${name}-egress` },
    containers: { bottle: name, gate: `${name}-gate` },
    egress: {
      allow: ["api.anthropic.com"],
      defaults: ["api.anthropic.com"],
      allowPrivate: [],
      proxyPort: 3128,
      dnsPort: 53,
      limits: { requestsPerMinute: 1200, bytesOut: 2 * 1024 ** 3, idleTimeoutMs: 600_000, maxTunnelMs: 21_600_000, maxLogBytes: 64 * 1024 ** 2 },
    },
    env: [],
    workspace: { mode: "mount", hostPath: "/home/user/project", containerPath: "/workspace", user: { uid: 1000, gid: 1000 } },
    command: [],
    interactive: true,
    detach: false,
    runtime: "runc",
    resources: {
      cpus: { value: 2, from: "default: all of the Docker engine's" },
      memory: { value: 4 * 1024 ** 3, from: "default: half of the Docker engine's 8 GiB" },
      pids: { value: 4096, from: "default" },
      noSwap: true,
      notes: [],
      engine: { cpus: 2, memory: 8 * 1024 ** 3, of: "the Docker engine" },
      gate: { cpus: 1, memory: 1024 ** 3, pids: 512 },
    },
    labels: {},
    createdAt: "2024-01-01T00:00:00.000Z",
  };
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    const current = merged[key];
    merged[key] =
      value && typeof value === "object" && !Array.isArray(value) && current && typeof current === "object" && !Array.isArray(current)
        ? { ...current, ...value }
        : value;
  }
  const plan = parsePlan(merged);
  if (!plan) throw new Error(`makePlan built an invalid plan: ${JSON.stringify(merged)}`);
  return plan;
}

/**
 * Each test of the file gets a fresh XDG_STATE_HOME (bottle's state dir
 * under it); the caller's is put back after. Call at the top of a test file.
 */
export function freshStateDirEachTest(): void {
  const saved = process.env.XDG_STATE_HOME;
  beforeEach(() => {
    process.env.XDG_STATE_HOME = tempDir();
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.XDG_STATE_HOME;
    else process.env.XDG_STATE_HOME = saved;
  });
}

/** What `promise` rejects with (failing the test when it resolves). */
export async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the promise to reject");
}
