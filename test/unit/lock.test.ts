import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, rmSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { withLock } from "../../lib/lock.ts";
import { cleanupTempDirs, tempDir } from "../helpers/unit.ts";

afterAll(cleanupTempDirs);

describe("withLock", () => {
  test("returns the work's value and releases the lock", async () => {
    const lock = join(tempDir(), "locks", "a.lock");
    expect(await withLock(lock, async () => 42)).toBe(42);
    expect(existsSync(lock)).toBe(false);
    expect(existsSync(join(lock, ".."))).toBe(true); // parent dirs are created
  });

  test("holds the lock while the work runs", async () => {
    const lock = join(tempDir(), "b.lock");
    await withLock(lock, async () => {
      expect(existsSync(lock)).toBe(true);
    });
  });

  test("serialises concurrent work on the same lock", async () => {
    const lock = join(tempDir(), "c.lock");
    const events: string[] = [];
    let inside = 0;
    let maxInside = 0;
    const job = (id: number) =>
      withLock(lock, async () => {
        inside++;
        maxInside = Math.max(maxInside, inside);
        events.push(`start ${id}`);
        await Bun.sleep(60);
        events.push(`end ${id}`);
        inside--;
        return id;
      });
    const results = await Promise.all([job(1), job(2), job(3)]);
    expect(results).toEqual([1, 2, 3]);
    expect(maxInside).toBe(1);
    // Every start is directly followed by its own end.
    for (let i = 0; i < events.length; i += 2) {
      const id = events[i]!.split(" ")[1];
      expect([events[i], events[i + 1]]).toEqual([`start ${id}`, `end ${id}`]);
    }
    expect(existsSync(lock)).toBe(false);
  }, 20_000);

  test("different locks do not wait for each other", async () => {
    const dir = tempDir();
    let inside = 0;
    let maxInside = 0;
    const job = (name: string) =>
      withLock(join(dir, name), async () => {
        inside++;
        maxInside = Math.max(maxInside, inside);
        await Bun.sleep(100);
        inside--;
      });
    await Promise.all([job("x.lock"), job("y.lock")]);
    expect(maxInside).toBe(2);
  });

  test("releases the lock when the work throws", async () => {
    const lock = join(tempDir(), "d.lock");
    await expect(withLock(lock, async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(existsSync(lock)).toBe(false);
    expect(await withLock(lock, async () => "after")).toBe("after");
  });

  test("waits for a lock held by someone else until it is released", async () => {
    const lock = join(tempDir(), "e.lock");
    mkdirSync(lock); // held by "another process"
    let ran = false;
    const waiting = withLock(lock, async () => {
      ran = true;
    });
    await Bun.sleep(400);
    expect(ran).toBe(false);
    // The other holder releases it.
    rmSync(lock, { recursive: true });
    await waiting;
    expect(ran).toBe(true);
  });

  test("a stale lock (older than 20 minutes) is broken", async () => {
    const lock = join(tempDir(), "f.lock");
    mkdirSync(lock);
    const old = new Date(Date.now() - 21 * 60 * 1000);
    utimesSync(lock, old, old);
    const started = performance.now();
    expect(await withLock(lock, async () => "took over")).toBe("took over");
    expect(performance.now() - started).toBeLessThan(5000);
    expect(existsSync(lock)).toBe(false);
  });
});
