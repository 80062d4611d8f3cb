/**
 * The egress gate under Node with bottle-splice at a given path (the gate
 * image's entry point only looks in the image's own place):
 *
 *   node splice-gate.mjs CONFIG.json HELPER THRESHOLD_BYTES MAX_RUNNING
 */
import { EGRESS_READY_LINE } from "../../../../lib/gates/egress/daemon/ready-line.ts";
import { EgressGate } from "../../../../lib/gates/egress/daemon/gate.ts";
import { Splicer } from "../../../../lib/gates/egress/daemon/splice.ts";

const [configPath, path, threshold, maxRunning] = process.argv.slice(2);
const gate = new EgressGate({ configPath, splice: new Splicer(path ?? "", Number(threshold), Number(maxRunning)) });
await gate.start();
process.on("SIGTERM", () => void gate.close().then(() => process.exit(0)));
process.stdout.write(`${EGRESS_READY_LINE}\n`);
