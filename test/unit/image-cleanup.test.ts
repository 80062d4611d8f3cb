import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { recordingExec } from "../helpers/exec.ts";
import { defaultImageTags, findStaleImages, removeStaleImages } from "../../lib/image-cleanup.ts";
import { FROM_LABEL, HASH_LABEL } from "../../lib/images.ts";

const env = { BOTTLE_BASE_IMAGE: "bottle-local/debian:trixie-slim" };
const [currentAgent = "", currentGate = ""] = defaultImageTags(env);

interface FakeImage {
  id: string;
  refs: string[];
  labels: Record<string, string>;
  size: number;
}

/** An image as bottle builds it: its tag's hash confirmed by its label. */
function own(tag: string, size: number, labels: Record<string, string> = {}): FakeImage {
  const hash = tag.split(":")[1] ?? "";
  return { id: `sha256:${createHash("sha256").update(tag).digest("hex")}`, refs: [tag], labels: { [HASH_LABEL]: `${hash}${"f".repeat(48)}`, ...labels }, size };
}

/** A docker that knows these images and containers (`image` as `docker ps` shows it); `image rm` removes what no container uses. */
function fakeDocker(images: FakeImage[], containers: { name: string; image: string }[]) {
  let present = [...images];
  return recordingExec((argv) => {
    const [command, sub] = argv.slice(1);
    if (command === "image" && sub === "ls")
      return {
        stdout: present
          .flatMap((image) =>
            (image.refs.length ? image.refs : ["<none>:<none>"]).map((ref) => {
              const [Repository, Tag] = ref.split(":");
              return JSON.stringify({ ID: image.id, Repository, Tag });
            }),
          )
          .join("\n"),
      };
    if (command === "image" && sub === "inspect")
      return {
        stdout: argv
          .slice(5)
          .map((id) => present.find((image) => image.id === id))
          .filter((image) => image !== undefined)
          .map((image) => JSON.stringify({ Id: image.id, Size: image.size, Config: { Labels: image.labels } }))
          .join("\n"),
      };
    if (command === "ps") return { stdout: containers.map((c) => JSON.stringify({ ID: `id-${c.name}`, Names: c.name, Image: c.image, State: "running" })).join("\n") };
    if (command === "image" && sub === "rm") {
      const inUse = new Set(["bottle-custom:00000000000000c3"]);
      present = present.filter((image) => !image.refs.some((ref) => argv.includes(ref) && !inUse.has(ref)));
      return { exitCode: 1, stderr: "conflict: unable to remove repository reference" };
    }
    return undefined;
  });
}

describe("findStaleImages", () => {
  const oldAgent = own("bottle-agent:00000000000000a1", 580e6);
  const baseOfCustom = own("bottle-agent:00000000000000a2", 580e6);
  const oldGate = own("bottle-gate:00000000000000b1", 234e6);
  const usedCustom = own("bottle-custom:00000000000000c1", 707e6, { "bottle.image": "custom", [FROM_LABEL]: "bottle-agent:00000000000000a2" });
  const unusedCustom = own("bottle-custom:00000000000000c2", 707e6, { [FROM_LABEL]: "bottle-agent:00000000000000a1" });
  const usedById = own("bottle-gate:00000000000000b2", 234e6);
  const orphanCustom = own("bottle-custom:00000000000000c4", 700e6);
  // Someone's image FROM ours inherits our labels, but not our tag.
  const foreign = { ...own("bottle-agent:00000000000000a3", 900e6), refs: ["vsc-ws-1234-uid:latest"] };
  // A tag that looks like ours but whose label does not confirm it.
  const lookalike = { ...own("bottle-agent:00000000000000a4", 1e6), labels: { [HASH_LABEL]: "ffff" } };
  const images = [oldAgent, baseOfCustom, oldGate, usedCustom, unusedCustom, usedById, orphanCustom, foreign, lookalike, own(currentAgent, 580e6), own(currentGate, 234e6)];
  const containers = [
    { name: "bottle-work", image: "bottle-custom:00000000000000c1" },
    { name: "bottle-old-gate", image: usedById.id.slice(7, 19) },
    { name: "bottle-dead", image: "bottle-custom:00000000000000c4" },
  ];

  test("lists bottle's own images no container uses, largest first, and keeps what is needed", async () => {
    const exec = fakeDocker(images, containers);
    const stale = await findStaleImages(exec, env);
    expect(stale.map((image) => image.tag)).toEqual(["bottle-custom:00000000000000c2", "bottle-agent:00000000000000a1", "bottle-gate:00000000000000b1"]);
    expect(stale[0]).toEqual({ tag: "bottle-custom:00000000000000c2", id: unusedCustom.id, kind: "custom", size: 707e6, engine: "local" });
  });

  test("images of containers about to be removed count as unused", async () => {
    const exec = fakeDocker(images, containers);
    const stale = await findStaleImages(exec, env, ["bottle-dead"]);
    expect(stale.map((image) => image.tag)).toContain("bottle-custom:00000000000000c4");
    expect(stale.map((image) => image.tag)).not.toContain("bottle-custom:00000000000000c1");
  });

  test("the default bottle's images as this version builds them are kept, whatever uses them", async () => {
    expect(currentAgent).toMatch(/^bottle-agent:[0-9a-f]{16}$/);
    expect(currentGate).toMatch(/^bottle-gate:[0-9a-f]{16}$/);
    const stale = await findStaleImages(fakeDocker([own(currentAgent, 1), own(currentGate, 1)], []), env);
    expect(stale).toEqual([]);
  });

  test("no image of bottle's: one docker query each for images and containers, no inspect", async () => {
    const exec = fakeDocker([foreign], []);
    expect(await findStaleImages(exec, env)).toEqual([]);
    expect(exec.calls.map((call) => call.argv.slice(1, 3).join(" "))).toEqual(["image ls", "ps --no-trunc"]);
    expect(exec.calls[0]?.argv).toContain(`label=${HASH_LABEL}`);
  });
});

describe("removeStaleImages", () => {
  test("removes by tag without force, and reports only the images that are gone", async () => {
    const unused = own("bottle-custom:00000000000000c2", 707e6);
    const racing = own("bottle-custom:00000000000000c3", 707e6);
    const exec = fakeDocker([unused, racing], []);
    const stale = await findStaleImages(exec, env);
    const removed = await removeStaleImages(exec, stale);
    const rm = exec.calls.find((call) => call.argv[1] === "image" && call.argv[2] === "rm");
    expect(rm?.argv.slice(1)).toEqual(["image", "rm", "bottle-custom:00000000000000c2", "bottle-custom:00000000000000c3"]);
    expect(removed.map((image) => image.tag)).toEqual(["bottle-custom:00000000000000c2"]);
  });

  test("nothing to remove: no docker call", async () => {
    const exec = fakeDocker([], []);
    expect(await removeStaleImages(exec, [])).toEqual([]);
    expect(exec.calls).toEqual([]);
  });
});
