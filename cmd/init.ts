import { existsSync } from "node:fs";
import { defineCommand } from "citty";
import { flagValues } from "../lib/cli/args.ts";
import { BottleError } from "../lib/errors.ts";
import { log } from "../lib/log.ts";
import { NAME_PATTERN, bottleFile, displayPath, initConfig } from "../lib/manifest/index.ts";
import { checkPresets } from "../lib/manifest/init.ts";
import { PRESETS, presetNames } from "../lib/manifest/presets.ts";
import { pickMany } from "../lib/picker.ts";
import { yesArgs } from "./_shared.ts";

async function askName(what: string, initial: string): Promise<string> {
  for (;;) {
    const answer = await log.prompt(`Name of the ${what}`, { type: "text", default: initial, placeholder: initial, cancel: "symbol" });
    if (typeof answer === "symbol") throw new BottleError("cancelled", { exitCode: 130 });
    const name = answer.trim() || initial;
    if (NAME_PATTERN.test(name)) return name;
    log.warn(`"${name}" is not a valid ${what} name — use lower-case letters, digits and -, starting with a letter`);
  }
}

async function askPresets(): Promise<string[]> {
  const names = presetNames();
  const picked = await pickMany(
    "Which egress presets should the bottle start with?",
    names.map((name) => ({ label: name, hint: PRESETS[name]!.description })),
  );
  return picked.map((index) => names[index]!);
}

export default defineCommand({
  meta: { name: "init", description: "Write a commented starter bottle and agent into your config dir" },
  args: {
    agent: { type: "string", description: "Agent name (default: default)" },
    bottle: { type: "string", description: "Bottle name (default: default)" },
    preset: { type: "string", description: `Egress presets the bottle starts with: ${presetNames().join(", ")} (repeat, or a comma list)` },
    force: { type: "boolean", description: "Overwrite existing files" },
    ...yesArgs,
  },
  async run({ args, rawArgs }) {
    // consola.prompt hangs without a terminal: only ask on a TTY and without --yes.
    const interactive = !args.yes && Boolean(process.stdin.isTTY) && Boolean(process.stderr.isTTY);
    let agent = args.agent ? String(args.agent) : "default";
    let bottle = args.bottle ? String(args.bottle) : "default";
    let presets = checkPresets(flagValues(rawArgs, "preset"));
    if (interactive) {
      if (!args.agent) agent = await askName("agent", agent);
      if (!args.bottle) bottle = await askName("bottle", bottle);
      // Only a bottle about to be written gets presets.
      if (presets.length === 0 && (args.force || !existsSync(bottleFile(bottle)))) presets = await askPresets();
    }
    const result = initConfig({ agent, bottle, presets, force: Boolean(args.force), env: process.env });
    if (result.keptBottle) log.info(`kept ${displayPath(result.keptBottle)} as it is; the new agent uses it`);
    for (const file of result.written) process.stdout.write(`${file}\n`);
    const next = agent === "default" ? "bottle info" : `bottle info ${agent}`;
    log.success(`wrote a starter agent "${agent}" using bottle "${bottle}"${presets.length ? ` with presets ${presets.join(", ")}` : ""} — edit them, then check with \`${next}\``);
  },
});
