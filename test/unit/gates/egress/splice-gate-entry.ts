/**
 * The egress gate under Node with bottle-splice at a given path (the gate
 * image's entry point only looks in the image's own place):
 *
 *   node splice-gate.mjs CONFIG.json HELPER THRESHOLD_BYTES
 */
import { EGRESS_READY_LINE } from "../../../../lib/gates/egress/config.ts";
import { EgressGate } from "../../../../lib/gates/egress/gate.ts";

const [configPath, path, threshold] = process.argv.slice(2);
const gate = new EgressGate({ configPath, splice: { path: path ?? "", thresholdBytes: Number(threshold) } });
await gate.start();
process.on("SIGTERM", () => void gate.close().then(() => process.exit(0)));
process.stdout.write(`${EGRESS_READY_LINE}\n`);
