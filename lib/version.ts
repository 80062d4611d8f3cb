import pkg from "../package.json" with { type: "json" };

/** Injected by scripts/build.ts through `define`; absent when run from source. */
declare const BOTTLE_BUILD: { version: string; commit: string } | undefined;

export const buildInfo: { version: string; commit: string } =
  typeof BOTTLE_BUILD !== "undefined" && BOTTLE_BUILD ? BOTTLE_BUILD : { version: pkg.version, commit: "source" };

export const versionLine = `bottle ${buildInfo.version} (${buildInfo.commit})`;
