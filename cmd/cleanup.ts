import { defineCommand } from "citty";
import { BottleError } from "../lib/errors.ts";
import { realExec } from "../lib/exec.ts";
import { findOrphans, removeOrphans } from "../lib/lifecycle.ts";
import { log } from "../lib/log.ts";
import { jsonArgs, printJson, yesArgs } from "./_shared.ts";

export default defineCommand({
  meta: { name: "cleanup", description: "Remove what killed launches left behind (containers, networks, state dirs)" },
  args: { ...yesArgs, ...jsonArgs },
  async run({ args }) {
    const orphans = await findOrphans(realExec);
    if (args.json && !args.yes) return printJson(orphans);
    if (orphans.length === 0) {
      log.info("nothing to clean up");
      if (args.json) printJson([]);
      return;
    }
    for (const orphan of orphans)
      process.stderr.write(`  ${orphan.name}: ${orphan.containers.length} containers, ${orphan.networks.length} networks${orphan.stateDir ? ", state dir" : ""}\n`);
    if (!args.yes) {
      if (!process.stdin.isTTY) throw new BottleError("no terminal to confirm the cleanup", { fix: "pass --yes to remove the above" });
      const { confirm } = await import("../lib/prompt.ts");
      if (!(await confirm("remove these?"))) return;
    }
    await removeOrphans(realExec, orphans);
    if (args.json) printJson(orphans);
    log.success(`removed ${orphans.length} orphaned bottle${orphans.length === 1 ? "" : "s"}`);
  },
});
