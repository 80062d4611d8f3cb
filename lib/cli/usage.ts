import { type CommandDef, renderUsage } from "citty";

/**
 * `--help` text. citty colours it whatever stdout is; colour belongs only on
 * a terminal (and never with NO_COLOR), so piped help is plain text.
 */

const ANSI = /\x1b\[[0-9;]*m/g;

export function wantsColor(stream: { isTTY?: boolean } = process.stdout, env: Record<string, string | undefined> = process.env): boolean {
  return Boolean(stream.isTTY) && env.NO_COLOR === undefined;
}

export async function usageText(command: CommandDef, parent: CommandDef | undefined, color = wantsColor()): Promise<string> {
  const text = await renderUsage(command, parent);
  return `${color ? text : text.replace(ANSI, "")}\n`;
}
