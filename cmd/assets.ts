import { defineCommand } from "citty";
import { assets, type AssetName } from "../lib/assets.ts";
import { BottleError } from "../lib/errors.ts";
import { didYouMean } from "../lib/suggest.ts";

/** Prints an embedded asset (Dockerfiles, entrypoints): what the binary will build. */
export default defineCommand({
  meta: { name: "assets", description: "List or print the embedded Dockerfiles and scripts", hidden: true },
  args: { name: { type: "positional", required: false, description: "Asset to print" } },
  run({ args }) {
    const names = Object.keys(assets) as AssetName[];
    if (!args.name) return void process.stdout.write(`${names.join("\n")}\n`);
    if (!names.includes(args.name as AssetName))
      throw new BottleError(`no embedded asset "${args.name}"${didYouMean(args.name, names)}`, { fix: "run `bottle assets` to list them" });
    process.stdout.write(assets[args.name as AssetName]);
  },
});
