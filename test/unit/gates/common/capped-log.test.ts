import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { CappedLog } from "../../../../lib/gates/common/capped-log.ts";
import { sshGateConfig } from "../ssh/gate-config.ts";
import { SshGate } from "../../../../lib/gates/ssh/daemon/gate.ts";
import { cleanupTempDirs, tempDir } from "../../../helpers/unit.ts";

afterAll(cleanupTempDirs);

/** Both generations of a log: sizes and lines, oldest first. */
function generations(path: string): { bytes: number[]; lines: string[] } {
  const files = [`${path}.1`, path].filter((file) => existsSync(file));
  return {
    bytes: files.map((file) => statSync(file).size),
    lines: files.flatMap((file) => readFileSync(file, "utf8").split("\n").filter(Boolean)),
  };
}

describe("CappedLog", () => {
  test("rotates to one .1 generation at half the cap: never more than the cap on disk, the newest lines kept whole", () => {
    const path = join(tempDir(), "egress.jsonl");
    const log = new CappedLog(path, 1000);
    for (let i = 0; i < 200; i++) log.append(`${JSON.stringify({ n: i, pad: "x".repeat(i % 40) })}\n`);
    const { bytes, lines } = generations(path);
    expect(bytes).toHaveLength(2);
    expect(bytes[0]! + bytes[1]!).toBeLessThanOrEqual(1000);
    for (const size of bytes) expect(size).toBeLessThanOrEqual(500);
    expect(lines.map((line) => JSON.parse(line).n).at(-1)).toBe(199);
    // Consecutive: nothing lost between the two generations.
    const numbers = lines.map((line) => JSON.parse(line).n as number);
    expect(numbers).toEqual(numbers.map((_, i) => numbers[0]! + i));
    log.close();
  });

  test("counts what the file already holds (a restarted gate appends to it)", () => {
    const path = join(tempDir(), "ssh.jsonl");
    writeFileSync(path, `${"a".repeat(450)}\n`);
    const log = new CappedLog(path, 1000);
    log.append(`${"b".repeat(99)}\n`);
    expect(readFileSync(`${path}.1`, "utf8")).toBe(`${"a".repeat(450)}\n`);
    expect(readFileSync(path, "utf8")).toBe(`${"b".repeat(99)}\n`);
    log.close();
  });

  test("0 means no cap; a line that can never fit is refused, not cut", () => {
    const path = join(tempDir(), "x.jsonl");
    const open = new CappedLog(path, 0);
    for (let i = 0; i < 100; i++) open.append(`${"y".repeat(99)}\n`);
    expect(statSync(path).size).toBe(10_000);
    expect(existsSync(`${path}.1`)).toBe(false);
    open.close();
    const capped = new CappedLog(join(tempDir(), "y.jsonl"), 100);
    expect(() => capped.append(`${"z".repeat(60)}\n`)).toThrow("does not fit under the log's cap of 100 bytes");
    capped.close();
  });

  test("reopen follows a rotation done outside and takes a new cap", () => {
    const path = join(tempDir(), "egress.jsonl");
    const log = new CappedLog(path, 0);
    log.append("one\n");
    renameSync(path, `${path}.old`);
    log.reopen(path, 1000);
    log.append("two\n");
    expect(readFileSync(path, "utf8")).toBe("two\n");
    expect(readFileSync(`${path}.old`, "utf8")).toBe("one\n");
    log.close();
  });
});

describe("the SSH gate's log", () => {
  test("stays under maxLogBytes however often the bottle connects", async () => {
    const dir = tempDir("bottle-ssh-log-");
    const config = sshGateConfig(dir, [{ host: "rebound.test", port: 22, listenPort: 0, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl", user: "agent" }], 4096);
    // Every connection is refused (the host resolves to metadata) and logged.
    const gate = new SshGate({ config, address: "127.0.0.1", resolve: async () => ["169.254.169.254"] });
    const [, port] = await gate.start();
    try {
      for (let i = 0; i < 60; i++)
        await new Promise<void>((resolve) => {
          const socket = connect({ host: "127.0.0.1", port: port! });
          socket.on("error", () => resolve());
          socket.on("close", () => resolve());
          socket.resume();
        });
      await Bun.sleep(50);
      const { bytes, lines } = generations(config.log);
      expect(bytes.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(4096);
      expect(bytes).toHaveLength(2);
      expect(JSON.parse(lines.at(-1)!)).toMatchObject({ event: "connect", host: "rebound.test", decision: "deny" });
    } finally {
      await gate.close();
    }
  });
});
