/**
 * Just enough of ELF and Mach-O headers to check a release binary: its
 * format, its CPU, and (Mach-O) whether it carries a code signature. Apple
 * silicon refuses to run an arm64 binary with none; an ad-hoc one will do.
 */

export interface BinaryInfo {
  format: "elf" | "macho" | "unknown";
  arch: "x64" | "arm64" | "other";
  /** Mach-O only: an LC_CODE_SIGNATURE load command is present. */
  signed?: boolean;
}

const MH_MAGIC_64 = 0xfeedfacf;
const CPU_TYPE_X86_64 = 0x01000007;
const CPU_TYPE_ARM64 = 0x0100000c;
const LC_CODE_SIGNATURE = 0x1d;
const ELF_X86_64 = 0x3e;
const ELF_AARCH64 = 0xb7;

export function binaryInfo(bytes: Uint8Array): BinaryInfo {
  if (bytes.length < 32) return { format: "unknown", arch: "other" };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46) {
    const little = bytes[5] === 1;
    const machine = view.getUint16(18, little);
    return { format: "elf", arch: machine === ELF_X86_64 ? "x64" : machine === ELF_AARCH64 ? "arm64" : "other" };
  }
  if (view.getUint32(0, true) === MH_MAGIC_64) {
    const cpu = view.getUint32(4, true);
    const ncmds = view.getUint32(16, true);
    let offset = 32;
    let signed = false;
    for (let i = 0; i < ncmds && offset + 8 <= bytes.length; i++) {
      const cmd = view.getUint32(offset, true);
      const size = view.getUint32(offset + 4, true);
      if (cmd === LC_CODE_SIGNATURE) signed = true;
      if (size < 8) break;
      offset += size;
    }
    return { format: "macho", arch: cpu === CPU_TYPE_X86_64 ? "x64" : cpu === CPU_TYPE_ARM64 ? "arm64" : "other", signed };
  }
  return { format: "unknown", arch: "other" };
}

/** What a release target's binary must look like. */
export function expectedBinary(target: string): { format: "elf" | "macho"; arch: "x64" | "arm64" } {
  return {
    format: target.startsWith("darwin-") ? "macho" : "elf",
    arch: target.includes("arm64") ? "arm64" : "x64",
  };
}
