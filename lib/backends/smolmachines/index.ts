/** The smolmachines backend: prepare (image → cached .smolmachine) and the smolvm launch argv. */
export * from "./cache.ts";
export * from "./images.ts";
export * from "./prepare.ts";
export * from "./smolvm.ts";
