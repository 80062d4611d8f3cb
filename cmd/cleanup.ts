import { defineCommand } from "citty";
import { formatBytes } from "../lib/bytes.ts";
import { BottleError } from "../lib/errors.ts";
import { realExec } from "../lib/exec.ts";
import type { StaleImage } from "../lib/image-cleanup.ts";
import { findOrphans, listHomes, removeOrphans, removeStaleImagesEverywhere, removeUnusedHomes, staleImagesEverywhere } from "../lib/lifecycle.ts";
import { log } from "../lib/log.ts";
import { jsonArgs, printJson, yesArgs } from "./_shared.ts";

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

export default defineCommand({
  meta: { name: "cleanup", description: "Remove what killed launches left behind (containers, networks, state dirs); --images: bottle's unused images too" },
  args: {
    images: { type: "boolean", description: "Also remove bottle's images no container uses (but the default bottle's agent and gate images)" },
    homes: { type: "boolean", description: "Also remove kept homes (Claude's conversations per workspace) no running bottle uses" },
    ...yesArgs,
    ...jsonArgs,
  },
  async run({ args }) {
    const orphans = await findOrphans(realExec);
    const images = args.images ? await staleImagesEverywhere(realExec, process.env, orphans.flatMap((o) => o.containers)) : [];
    // Homes used by an orphan about to be removed count as unused.
    const orphaned = new Set(orphans.map((orphan) => orphan.name));
    const homes = args.homes ? (await listHomes(realExec)).filter((home) => home.usedBy.every((name) => orphaned.has(name))) : [];
    // Without --images or --homes the JSON stays the list of orphans it always was.
    const json = (removedImages: StaleImage[], removedHomes: string[]) =>
      printJson(args.images || args.homes ? { orphans, ...(args.images ? { images: removedImages } : {}), ...(args.homes ? { homes: removedHomes } : {}) } : orphans);
    if (args.json && !args.yes) return json(images, homes.map((home) => home.volume));
    if (orphans.length === 0 && images.length === 0 && homes.length === 0) {
      log.info("nothing to clean up");
      if (!args.images) {
        const unused = await staleImagesEverywhere(realExec, process.env);
        if (unused.length) log.info(`${plural(unused.length, "unused bottle image")}: \`bottle cleanup --images\` removes them`);
      }
      if (args.json) json([], []);
      return;
    }
    for (const orphan of orphans)
      process.stderr.write(`  ${orphan.name}: ${orphan.containers.length} containers, ${orphan.networks.length} networks${orphan.stateDir ? ", state dir" : ""}\n`);
    // An image's size counts layers it shares with others (a custom image holds its agent image's): what is freed is less.
    for (const image of images) process.stderr.write(`  ${image.tag}: unused image, ${formatBytes(image.size)}${image.engine === "local" ? "" : ` on ${image.engine}`}\n`);
    for (const home of homes) process.stderr.write(`  ${home.volume}: kept home of ${home.agent} for ${home.workspace} (last used ${home.lastUsed ?? "?"})\n`);
    if (!args.yes) {
      if (!process.stdin.isTTY) throw new BottleError("no terminal to confirm the cleanup", { fix: "pass --yes to remove the above" });
      const { confirm } = await import("../lib/prompt.ts");
      if (!(await confirm("remove these?"))) return;
    }
    await removeOrphans(realExec, orphans);
    const removed = await removeStaleImagesEverywhere(realExec, images);
    const removedHomes = await removeUnusedHomes(realExec, homes);
    if (args.json) json(removed, removedHomes);
    if (orphans.length) log.success(`removed ${plural(orphans.length, "orphaned bottle")}`);
    if (images.length) {
      log.success(`removed ${plural(removed.length, "unused image")}`);
      const kept = images.length - removed.length;
      if (kept) log.warn(`${plural(kept, "image")} stayed: a container started using them meanwhile`);
    }
    if (homes.length) log.success(`removed ${plural(removedHomes.length, "kept home")}`);
  },
});
