import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { assets } from "../../lib/assets.ts";
import { cacheKey, smolmachinePath, smolmachinesDir } from "../../lib/backends/smolmachines/cache.ts";
import { PACK_LABELS, prepareSmolmachine, type PackContext, type PackStep, type PrepareStep } from "../../lib/backends/smolmachines/prepare.ts";
import { Docker } from "../../lib/docker.ts";
import { type Exec, realExec } from "../../lib/exec.ts";
import type { ImageSpec } from "../../lib/images.ts";
import { BASE_IMAGE, describeDocker, docker, dockerOk, uniqueId } from "../helpers/docker.ts";
import { ensureRegistryTestImages } from "../helpers/registry-images.ts";

/**
 * The smolmachines prepare path for real, up to `smolvm pack create`: docker
 * build, docker save, a real registry container, a real crane container. The
 * pack step is substituted by one that reads the pushed image back from the
 * live registry (from the host, over HTTP on 127.0.0.1) before teardown. With
 * smolvm and /dev/kvm present, one more test runs the real pack.
 */

const MANIFEST_TYPES = [
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
].join(", ");

const STEP_TIMEOUT = 600_000;

describeDocker("smolmachines prepare: image → registry → crane → pack", () => {
  const id = uniqueId("smolm");
  const cacheHomes: string[] = [];
  const sessions: string[] = [];
  const builtTags = new Set<string>();
  let helpers: { registry: string; crane: string };

  beforeAll(async () => {
    helpers = await ensureRegistryTestImages();
  }, 1_200_000);

  afterAll(() => {
    for (const session of sessions) {
      for (const name of docker("ps", "-aq", "--filter", `label=${PACK_LABELS.session}=${session}`).split("\n").filter(Boolean)) docker("rm", "-f", name);
      for (const name of docker("network", "ls", "-q", "--filter", `label=${PACK_LABELS.session}=${session}`).split("\n").filter(Boolean)) docker("network", "rm", name);
    }
    for (const tag of builtTags) dockerOk("image", "rm", "-f", tag);
    for (const dir of cacheHomes) rmSync(dir, { recursive: true, force: true });
  });

  function cacheHome(): string {
    const dir = mkdtempSync(join(tmpdir(), "bottle-smolm-cache-"));
    cacheHomes.push(dir);
    return dir;
  }

  function envFor(cache: string, overrides: Record<string, string> = {}): Record<string, string | undefined> {
    return { ...process.env, XDG_CACHE_HOME: cache, BOTTLE_REGISTRY_IMAGE: helpers.registry, BOTTLE_CRANE_IMAGE: helpers.crane, ...overrides };
  }

  /** A tiny image (the plumbing Dockerfile) made unique per test run; `variant` changes the Dockerfile. */
  function spec(variant: string): ImageSpec {
    return {
      kind: "plumbing",
      dockerfile: `${assets.plumbingDockerfile}RUN echo ${JSON.stringify(variant)} > /etc/bottle-variant\n`,
      files: {},
      buildArgs: { BASE_IMAGE },
      inputs: [id],
    };
  }

  function newSession(): string {
    const session = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    sessions.push(session);
    return session;
  }

  /** Counts every command while running it for real. */
  function countingExec(): Exec & { calls: string[][] } {
    const calls: string[][] = [];
    return {
      calls,
      run: (argv, options) => {
        calls.push(argv);
        return realExec.run(argv, options);
      },
      interactive: (argv, options) => {
        calls.push(argv);
        return realExec.interactive(argv, options);
      },
      isTerminal: () => realExec.isTerminal(),
      waitForOutput: (argv, pattern, timeoutMs, options) => {
        calls.push(argv);
        return realExec.waitForOutput(argv, pattern, timeoutMs, options);
      },
    };
  }

  function packObjects(session: string): { containers: string[]; networks: string[] } {
    const list = (args: string[]) => docker(...args).split("\n").filter(Boolean);
    return {
      containers: list(["ps", "-a", "--filter", `label=${PACK_LABELS.session}=${session}`, "--format", "{{.Names}}"]),
      networks: list(["network", "ls", "--filter", `label=${PACK_LABELS.session}=${session}`, "--format", "{{.Name}}"]),
    };
  }

  function stagingDirs(cache: string): string[] {
    const dir = smolmachinesDir({ XDG_CACHE_HOME: cache });
    return existsSync(dir) ? readdirSync(dir).filter((name) => name.startsWith(".staging-")) : [];
  }

  function nonLoopbackAddress(): string | undefined {
    for (const addresses of Object.values(networkInterfaces()))
      for (const address of addresses ?? []) if (address.family === "IPv4" && !address.internal) return address.address;
    return undefined;
  }

  interface Observed {
    ctx: PackContext;
    manifestDigest: string;
    configDigest: string;
    diffIds: string[];
    hostIps: string[];
    runningContainers: string[];
    networks: string[];
    stagingFiles: string[];
    otherInterfaceRefused: boolean | undefined;
  }

  /** The substitute pack step: reads the pushed image back from the live registry, then writes a stand-in sidecar. */
  function inspectingPack(observed: { value?: Observed }): PackStep {
    return async (ctx) => {
      const base = `${ctx.registry.url}/v2/${ctx.repository}`;
      const response = await fetch(`${base}/manifests/${ctx.tag}`, { headers: { Accept: MANIFEST_TYPES } });
      expect(response.status).toBe(200);
      const body = new Uint8Array(await response.arrayBuffer());
      const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;
      expect(response.headers.get("docker-content-digest")).toBe(digest);
      const manifest = JSON.parse(new TextDecoder().decode(body)) as { config: { digest: string }; layers: Array<{ digest: string }> };
      const config = (await (await fetch(`${base}/blobs/${manifest.config.digest}`)).json()) as { rootfs: { diff_ids: string[] } };

      const inspect = JSON.parse(docker("container", "inspect", "--format", "{{json .}}", ctx.registry.container)) as {
        HostConfig: { PortBindings: Record<string, Array<{ HostIp: string }>> };
        NetworkSettings: { Ports: Record<string, Array<{ HostIp: string; HostPort: string }> | null> };
      };
      const hostIps = [
        ...Object.values(inspect.HostConfig.PortBindings).flat().map((binding) => binding.HostIp),
        ...Object.values(inspect.NetworkSettings.Ports).flatMap((bindings) => bindings ?? []).map((binding) => binding.HostIp),
      ];
      // Attack: the registry port on any other interface of this host must refuse.
      const other = nonLoopbackAddress();
      const otherInterfaceRefused =
        other === undefined
          ? undefined
          : await fetch(`http://${other}:${ctx.registry.port}/v2/`, { signal: AbortSignal.timeout(5000) }).then(
              () => false,
              () => true,
            );
      const session = ctx.registry.network.replace(/^bottle-pack-/, "");
      observed.value = {
        ctx,
        manifestDigest: digest,
        configDigest: manifest.config.digest,
        diffIds: config.rootfs.diff_ids,
        hostIps,
        runningContainers: packObjects(session).containers,
        networks: packObjects(session).networks,
        stagingFiles: readdirSync(join(ctx.output, "..")),
        otherInterfaceRefused,
      };
      writeFileSync(`${ctx.output}.smolmachine`, `stand-in for ${digest}\n`);
    };
  }

  let firstCache = "";
  let firstKey = "";

  test(
    "pushes the saved image through a 127.0.0.1-only registry; the pushed config is the docker image; everything is removed",
    async () => {
      firstCache = cacheHome();
      const env = envFor(firstCache);
      const session = newSession();
      const observed: { value?: Observed } = {};
      const client = new Docker(realExec);
      const prepared = await prepareSmolmachine({ docker: client, images: [spec("one")], env, session, pack: inspectingPack(observed) });
      builtTags.add(prepared.ref.tag);
      firstKey = prepared.key;

      const image = JSON.parse(docker("image", "inspect", "--format", "{{json .}}", prepared.ref.tag)) as { Id: string; RootFS: { Layers: string[] } };
      expect(prepared.imageId).toBe(image.Id);
      expect(prepared.key).toBe(image.Id.slice("sha256:".length, "sha256:".length + 16));
      expect(prepared.cached).toBe(false);

      const seen = observed.value!;
      expect(seen.ctx.image).toBe(`localhost:${seen.ctx.registry.port}/bottle/agent:${prepared.key}`);
      // The registry holds exactly the image docker built: config digest == image ID.
      expect(seen.configDigest).toBe(image.Id);
      expect(seen.diffIds).toEqual(image.RootFS.Layers);
      // Bound to 127.0.0.1 only, and nothing answers on another interface.
      expect(seen.hostIps.length).toBeGreaterThan(0);
      expect(new Set(seen.hostIps)).toEqual(new Set(["127.0.0.1"]));
      if (seen.otherInterfaceRefused === undefined) console.warn("no non-loopback IPv4 interface; skipped the other-interface probe");
      else expect(seen.otherInterfaceRefused).toBe(true);
      // While packing: the registry runs, crane has run, the tarball is in the staging dir.
      expect(seen.runningContainers.sort()).toEqual([`bottle-pack-${session}-crane`, `bottle-pack-${session}-registry`]);
      expect(seen.networks).toEqual([`bottle-pack-${session}`]);
      expect(seen.stagingFiles).toContain(`${prepared.key}.tar`);

      // Afterwards: registry, crane, network, tarball gone; only the cache entry is left.
      expect(packObjects(session)).toEqual({ containers: [], networks: [] });
      expect(stagingDirs(firstCache)).toEqual([]);
      expect(readdirSync(smolmachinesDir(env))).toEqual([`${prepared.key}.smolmachine`]);
      expect(prepared.path).toBe(smolmachinePath(prepared.key, env));
    },
    STEP_TIMEOUT,
  );

  test(
    "a second prepare of the unchanged image runs no save, registry, crane or pack",
    async () => {
      expect(firstKey).not.toBe("");
      const exec = countingExec();
      const prepared = await prepareSmolmachine({
        docker: new Docker(exec),
        images: [spec("one")],
        env: envFor(firstCache),
        session: newSession(),
        pack: async () => {
          throw new Error("the pack step must not run on a cache hit");
        },
      });
      expect(prepared).toMatchObject({ cached: true, built: false, key: firstKey });
      const commands = exec.calls.map((argv) => argv.slice(1, 3).join(" "));
      expect(commands.every((command) => command === "image inspect")).toBe(true);
      expect(exec.calls.some((argv) => ["save", "run", "port", "network", "build"].includes(argv[1]!))).toBe(false);
    },
    STEP_TIMEOUT,
  );

  test(
    "a changed Dockerfile gives a new image ID and so a new key",
    async () => {
      const observed: { value?: Observed } = {};
      const prepared = await prepareSmolmachine({
        docker: new Docker(realExec),
        images: [spec("two")],
        env: envFor(firstCache),
        session: newSession(),
        pack: inspectingPack(observed),
      });
      builtTags.add(prepared.ref.tag);
      expect(prepared.cached).toBe(false);
      expect(prepared.built).toBe(true);
      expect(prepared.key).not.toBe(firstKey);
      expect(prepared.key).toBe(cacheKey(prepared.imageId));
      expect(observed.value!.configDigest).toBe(prepared.imageId);
      expect(readdirSync(smolmachinesDir({ XDG_CACHE_HOME: firstCache })).sort()).toEqual([`${firstKey}.smolmachine`, `${prepared.key}.smolmachine`].sort());
    },
    STEP_TIMEOUT,
  );

  test(
    "a crane that exits non-zero: the error names it; registry, network, crane container and tarball are gone; no cache entry",
    async () => {
      const cache = cacheHome();
      const session = newSession();
      // The base image has no crane: `push` is not found, the container exits 127.
      const env = envFor(cache, { BOTTLE_CRANE_IMAGE: BASE_IMAGE });
      const error = await prepareSmolmachine({ docker: new Docker(realExec), images: [spec("one")], env, session, pack: inspectingPack({}) }).catch((e) => e);
      expect(String(error?.message)).toMatch(/docker run .* failed \(exit code: 12[67]\)/);
      expect(packObjects(session)).toEqual({ containers: [], networks: [] });
      expect(stagingDirs(cache)).toEqual([]);
      expect(existsSync(smolmachinePath(firstKey, { XDG_CACHE_HOME: cache }))).toBe(false);
    },
    STEP_TIMEOUT,
  );

  for (const failAt of ["registry", "push", "pack"] as PrepareStep[]) {
    test(
      `an error injected before the ${failAt} step removes everything created so far`,
      async () => {
        const cache = cacheHome();
        const session = newSession();
        let liveBeforeFailure: { containers: string[]; networks: string[] } | undefined;
        const error = await prepareSmolmachine({
          docker: new Docker(realExec),
          images: [spec("one")],
          env: envFor(cache),
          session,
          pack: inspectingPack({}),
          beforeStep: (step) => {
            if (step !== failAt) return;
            liveBeforeFailure = packObjects(session);
            throw new Error(`injected failure at ${step}`);
          },
        }).catch((e) => e);
        expect(String(error?.message)).toBe(`injected failure at ${failAt}`);
        // Something really existed to clean up.
        expect(liveBeforeFailure?.networks).toEqual([`bottle-pack-${session}`]);
        if (failAt !== "registry") expect(liveBeforeFailure?.containers).toContain(`bottle-pack-${session}-registry`);
        expect(packObjects(session)).toEqual({ containers: [], networks: [] });
        expect(stagingDirs(cache)).toEqual([]);
        expect(readdirSync(smolmachinesDir({ XDG_CACHE_HOME: cache }))).toEqual([]);
      },
      STEP_TIMEOUT,
    );
  }

  test(
    "an interrupted pack (partial sidecar, then failure) leaves no cache entry",
    async () => {
      const cache = cacheHome();
      const session = newSession();
      const error = await prepareSmolmachine({
        docker: new Docker(realExec),
        images: [spec("one")],
        env: envFor(cache),
        session,
        pack: async (ctx) => {
          writeFileSync(`${ctx.output}.smolmachine`, "the first half of a mach");
          throw new Error("smolvm pack create was killed");
        },
      }).catch((e) => e);
      expect(String(error?.message)).toBe("smolvm pack create was killed");
      expect(readdirSync(smolmachinesDir({ XDG_CACHE_HOME: cache }))).toEqual([]);
      expect(packObjects(session)).toEqual({ containers: [], networks: [] });
    },
    STEP_TIMEOUT,
  );

  test(
    "Ctrl-C (SIGINT to the process group) during the pack: exit 130, registry, network, crane and tarball removed, no cache entry",
    async () => {
      const cache = cacheHome();
      const session = newSession();
      const script = join(cache, "interrupt.ts");
      const lib = join(import.meta.dir, "../../lib");
      writeFileSync(
        script,
        `import { prepareSmolmachine } from ${JSON.stringify(join(lib, "backends/smolmachines/prepare.ts"))};
import { Docker } from ${JSON.stringify(join(lib, "docker.ts"))};
import { realExec } from ${JSON.stringify(join(lib, "exec.ts"))};
const spec = JSON.parse(process.env.TEST_SPEC);
try {
  await prepareSmolmachine({
    docker: new Docker(realExec),
    images: [spec],
    session: process.env.TEST_SESSION,
    pack: async (ctx) => {
      console.log("PACKING");
      await ctx.exec.run(["sleep", "120"]);
    },
  });
  process.exit(0);
} catch (error) {
  console.log(\`ERROR \${error.message.split("\\n")[0]}\`);
  process.exit(error.exitCode ?? 1);
}
`,
      );
      const { spawn } = await import("node:child_process");
      const child = spawn(process.execPath, [script], {
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...envFor(cache), TEST_SPEC: JSON.stringify(spec("one")), TEST_SESSION: session },
      });
      let out = "";
      const packing = new Promise<void>((resolve, reject) => {
        child.stdout!.on("data", (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes("PACKING")) resolve();
        });
        child.on("exit", () => reject(new Error(`exited before packing: ${out}`)));
      });
      child.stderr!.on("data", () => {});
      await packing;
      expect(packObjects(session).containers).toContain(`bottle-pack-${session}-registry`);
      process.kill(-child.pid!, "SIGINT");
      const code = await new Promise<number | null>((resolve) => child.on("exit", (exitCode) => resolve(exitCode)));
      expect(out).toContain("ERROR interrupted (SIGINT)");
      expect(code).toBe(130);
      expect(packObjects(session)).toEqual({ containers: [], networks: [] });
      expect(readdirSync(smolmachinesDir({ XDG_CACHE_HOME: cache }))).toEqual([]);
    },
    STEP_TIMEOUT,
  );

  const smolvm = Bun.which("smolvm");
  const kvm = existsSync("/dev/kvm");
  const skipReason = !smolvm ? "smolvm is not installed" : !kvm ? "/dev/kvm is absent" : undefined;
  if (skipReason) console.warn(`skipping the real \`smolvm pack create\` test: ${skipReason}`);

  test.skipIf(Boolean(skipReason))(
    "with smolvm and /dev/kvm: the real pack writes a .smolmachine into the cache",
    async () => {
      const cache = cacheHome();
      const session = newSession();
      const prepared = await prepareSmolmachine({ docker: new Docker(realExec), images: [spec("real-pack")], env: envFor(cache), session });
      builtTags.add(prepared.ref.tag);
      expect(prepared.cached).toBe(false);
      expect(readdirSync(smolmachinesDir({ XDG_CACHE_HOME: cache }))).toEqual([`${prepared.key}.smolmachine`]);
      expect(packObjects(session)).toEqual({ containers: [], networks: [] });
    },
    1_800_000,
  );
});
