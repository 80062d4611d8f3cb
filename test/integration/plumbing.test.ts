import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assets } from "../../lib/assets.ts";
import { Docker } from "../../lib/docker.ts";
import { realExec } from "../../lib/exec.ts";
import { BASE_LABEL, ensureImage, type ImageSpec } from "../../lib/images.ts";
import { BASE_IMAGE, describeDocker, docker, objectsWithLabel, uniqueId } from "../helpers/docker.ts";

describeDocker("lib/docker.ts against the real engine", () => {
  const id = uniqueId("plumbing");
  const label = `bottle.test=${id}`;
  const tmp = mkdtempSync(join(tmpdir(), "bottle-plumbing-"));
  const client = new Docker(realExec);
  let imageTag = "";

  afterAll(() => {
    for (const name of objectsWithLabel(label).containers) docker("rm", "-f", name);
    if (imageTag) docker("image", "rm", "-f", imageTag);
    rmSync(tmp, { recursive: true, force: true });
  });

  test("builds from an embedded Dockerfile, runs, execs, copies in and out, removes everything", async () => {
    const spec: ImageSpec = {
      kind: "plumbing",
      dockerfile: assets.plumbingDockerfile,
      files: {},
      buildArgs: { BASE_IMAGE },
      inputs: [id],
    };
    const env = { ...process.env, XDG_CACHE_HOME: tmp };
    const { ref, built } = await ensureImage(client, { ...spec, base: `${BASE_IMAGE}@old` }, env);
    imageTag = ref.tag;
    expect(built).toBe(true);
    expect((await client.imageInspect(ref.tag))?.labels["bottle.hash"]).toBe(ref.hash);
    expect((await ensureImage(client, { ...spec, base: `${BASE_IMAGE}@old` }, env)).built).toBe(false);
    // Another base (a re-imported one): the same tag is built again and labelled with it.
    const old = (await client.imageInspect(ref.tag))!.id;
    const rebuilt = await ensureImage(client, { ...spec, base: `${BASE_IMAGE}@new` }, env);
    expect(rebuilt).toEqual({ ref, built: true });
    // The image of the old base, untagged by the rebuild, is removed.
    expect(await client.imageInspect(old)).toBeUndefined();
    expect((await client.imageInspect(ref.tag))?.labels[BASE_LABEL]).toBe(`${BASE_IMAGE}@new`);
    expect((await ensureImage(client, { ...spec, base: `${BASE_IMAGE}@new` }, env)).built).toBe(false);

    const name = id;
    await client.runDetached({ name, image: ref.tag, labels: { "bottle.test": id } });
    const inside = await client.execIn(name, ["cat", "/etc/bottle-plumbing"]);
    expect(inside.stdout.trim()).toBe("built by bottle");

    writeFileSync(join(tmp, "in.txt"), "from the host\n");
    await client.cp(join(tmp, "in.txt"), `${name}:/tmp/in.txt`);
    await client.execIn(name, ["sh", "-c", "tr a-z A-Z < /tmp/in.txt > /tmp/out.txt"]);
    await client.cp(`${name}:/tmp/out.txt`, join(tmp, "out.txt"));
    expect(readFileSync(join(tmp, "out.txt"), "utf8")).toBe("FROM THE HOST\n");

    const failed = await client.execIn(name, ["sh", "-c", "echo boom >&2; exit 3"], { check: false });
    expect(failed.exitCode).toBe(3);
    expect(failed.stderr).toContain("boom");
    await expect(client.execIn(name, ["false"])).rejects.toThrow(/docker exec .* failed \(exit code: 1\)/);

    await client.containerRm([name]);
    await client.imageRm([ref.tag]);
    imageTag = "";
    expect(objectsWithLabel(label).containers).toEqual([]);
    expect(await client.imageInspect(ref.tag)).toBeUndefined();
  });
});
