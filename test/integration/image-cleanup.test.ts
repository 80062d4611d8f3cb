import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { realExec } from "../../lib/exec.ts";
import { findStaleImages, removeStaleImages, type StaleImage } from "../../lib/image-cleanup.ts";
import { FROM_LABEL, HASH_LABEL } from "../../lib/images.ts";
import { makeSandbox, runBottle, type Sandbox } from "../helpers/cli.ts";
import { BASE_IMAGE, describeDocker, docker, dockerOk, uniqueId } from "../helpers/docker.ts";

/**
 * `bottle cleanup --images` on the real engine, with small images labelled as
 * bottle labels its own: the unused ones are found and removed; one a
 * container uses, the agent image a kept custom image was built FROM, and an
 * image someone built FROM ours (it inherits our labels, not our tag) stay.
 */

/** Builds a tiny image on the base with these labels; distinct content per call, so distinct ids. */
function build(tag: string, labels: Record<string, string>, from = BASE_IMAGE): void {
  const lines = [`FROM ${from}`, ...Object.entries(labels).map(([key, value]) => `LABEL ${key}="${value}"`), `LABEL test.nonce="${randomBytes(8).toString("hex")}"`];
  const out = Bun.spawnSync(["docker", "build", "--quiet", "--tag", tag, "-"], { stdin: new Blob([lines.join("\n")]), stdout: "pipe", stderr: "pipe" });
  if (out.exitCode !== 0) throw new Error(`building ${tag}: ${out.stderr.toString()}`);
}

const hash = () => randomBytes(32).toString("hex");
const own = (kind: string, h: string) => `bottle-${kind}:${h.slice(0, 16)}`;

describeDocker("bottle cleanup --images", () => {
  let sandbox: Sandbox;
  const id = uniqueId("imgclean");
  const [unusedHash, usedHash, baseHash, oldGateHash] = [hash(), hash(), hash(), hash()];
  const unused = own("custom", unusedHash);
  const used = own("custom", usedHash);
  const baseOfUsed = own("agent", baseHash);
  const oldGate = own("gate", oldGateHash);
  const child = `${id}-child:latest`;
  const container = `${id}-user`;
  const ours = [unused, used, baseOfUsed, oldGate];

  beforeAll(() => {
    sandbox = makeSandbox();
    build(baseOfUsed, { [HASH_LABEL]: baseHash, "bottle.image": "agent" });
    build(unused, { [HASH_LABEL]: unusedHash, "bottle.image": "custom", [FROM_LABEL]: baseOfUsed });
    build(used, { [HASH_LABEL]: usedHash, "bottle.image": "custom", [FROM_LABEL]: baseOfUsed });
    build(oldGate, { [HASH_LABEL]: oldGateHash, "bottle.image": "gate" });
    build(child, {}, oldGate);
    docker("create", "--name", container, used, "true");
  }, 120_000);

  afterAll(() => {
    Bun.spawnSync(["docker", "rm", "-f", container], { stdout: "pipe", stderr: "pipe" });
    Bun.spawnSync(["docker", "image", "rm", "-f", child, ...ours], { stdout: "pipe", stderr: "pipe" });
  });

  const mine = (images: StaleImage[]) => images.filter((image) => ours.includes(image.tag)).map((image) => image.tag);

  test("--json lists the unused images and changes nothing; a used one, its FROM and an image built on ours are not listed", async () => {
    const out = await runBottle(sandbox, ["cleanup", "--images", "--json"]);
    expect(out.exitCode).toBe(0);
    const listed = JSON.parse(out.stdout) as { orphans: unknown[]; images: StaleImage[] };
    expect(mine(listed.images).sort()).toEqual([oldGate, unused].sort());
    expect(listed.images.map((image) => image.tag)).not.toContain(child);
    const gate = listed.images.find((image) => image.tag === oldGate);
    expect(gate).toMatchObject({ kind: "gate", id: docker("image", "inspect", "--format", "{{.Id}}", oldGate) });
    expect(gate?.size).toBeGreaterThan(0);
    for (const tag of [...ours, child]) expect(dockerOk("image", "inspect", tag)).toBe(true);
  });

  test("without --images, the JSON is the list of orphans it always was", async () => {
    const out = await runBottle(sandbox, ["cleanup", "--json"]);
    expect(out.exitCode).toBe(0);
    expect(Array.isArray(JSON.parse(out.stdout))).toBe(true);
  });

  test("removal takes the unused ones; an image a container uses stays even when asked to go", async () => {
    const stale = (await findStaleImages(realExec, process.env)).filter((image) => ours.includes(image.tag));
    expect(stale.map((image) => image.tag).sort()).toEqual([oldGate, unused].sort());
    const usedImage: StaleImage = { tag: used, id: docker("image", "inspect", "--format", "{{.Id}}", used), kind: "custom", size: 1, engine: "local" };
    const removed = await removeStaleImages(realExec, [...stale, usedImage]);
    expect(removed.map((image) => image.tag).sort()).toEqual([oldGate, unused].sort());
    expect(dockerOk("image", "inspect", unused)).toBe(false);
    expect(dockerOk("image", "inspect", oldGate)).toBe(false);
    expect(dockerOk("image", "inspect", used)).toBe(true);
    expect(dockerOk("image", "inspect", baseOfUsed)).toBe(true);
    // The image built on the gate image keeps its layers.
    expect(dockerOk("image", "inspect", child)).toBe(true);
  }, 60_000);
});
