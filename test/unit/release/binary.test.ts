import { describe, expect, test } from "bun:test";
import { binaryInfo, expectedBinary } from "../../../lib/release/binary.ts";

function elf(machine: number): Uint8Array {
  const bytes = new Uint8Array(64);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  new DataView(bytes.buffer).setUint16(18, machine, true);
  return bytes;
}

function macho(cpu: number, commands: number[]): Uint8Array {
  const bytes = new Uint8Array(32 + commands.length * 16);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 0xfeedfacf, true);
  view.setUint32(4, cpu, true);
  view.setUint32(16, commands.length, true);
  view.setUint32(20, commands.length * 16, true);
  commands.forEach((cmd, i) => {
    view.setUint32(32 + i * 16, cmd, true);
    view.setUint32(32 + i * 16 + 4, 16, true);
  });
  return bytes;
}

describe("binaryInfo", () => {
  test("ELF x86-64 and aarch64", () => {
    expect(binaryInfo(elf(0x3e))).toEqual({ format: "elf", arch: "x64" });
    expect(binaryInfo(elf(0xb7))).toEqual({ format: "elf", arch: "arm64" });
    expect(binaryInfo(elf(0x28)).arch).toBe("other");
  });

  test("Mach-O x86_64 and arm64, with and without a code signature", () => {
    expect(binaryInfo(macho(0x01000007, [0x19, 0x1d]))).toEqual({ format: "macho", arch: "x64", signed: true });
    expect(binaryInfo(macho(0x0100000c, [0x19, 0x2]))).toEqual({ format: "macho", arch: "arm64", signed: false });
  });

  test("anything else", () => {
    expect(binaryInfo(new TextEncoder().encode("#!/bin/sh\necho hello there, this is not a binary\n")).format).toBe("unknown");
    expect(binaryInfo(new Uint8Array(4)).format).toBe("unknown");
  });

  test("what each target must be", () => {
    expect(expectedBinary("darwin-arm64")).toEqual({ format: "macho", arch: "arm64" });
    expect(expectedBinary("linux-x64-baseline")).toEqual({ format: "elf", arch: "x64" });
  });
});
