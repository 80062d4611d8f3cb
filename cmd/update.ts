import { defineCommand } from "citty";
import { basename } from "node:path";
import { BottleError } from "../lib/errors.ts";
import { realExec } from "../lib/exec.ts";
import { log } from "../lib/log.ts";
import { selfUpdate } from "../lib/release/self-update.ts";
import { buildInfo } from "../lib/version.ts";
import { jsonArgs, printJson } from "./_shared.ts";

export default defineCommand({
  meta: {
    name: "update",
    description: "Replace this bottle binary with the latest release (BOTTLE_VERSION picks one), verified against SHA256SUMS",
  },
  args: {
    target: { type: "string", description: "Binary to replace (default: the running one)" },
    force: { type: "boolean", description: "Replace even when the release is the same build" },
    ...jsonArgs,
  },
  async run({ args }) {
    const fromSource = buildInfo.commit === "source" || /^bun(\.exe)?$/.test(basename(process.execPath));
    if (!args.target && fromSource)
      throw new BottleError("this bottle runs from source, not from an installed binary", {
        fix: "update the checkout with git, or pass --target PATH to update an installed binary",
      });
    const result = await selfUpdate({
      target: args.target ? String(args.target) : process.execPath,
      env: process.env,
      exec: realExec,
      force: Boolean(args.force),
    });
    if (args.json) printJson(result);
    else if (result.status === "up-to-date") log.success(`${result.to || "bottle"} is up to date (${result.target})`);
    else log.success(`updated ${result.target}: ${result.from || "unknown version"} -> ${result.to}`);
  },
});
