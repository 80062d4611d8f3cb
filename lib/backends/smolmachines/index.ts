/** The smolmachines backend: prepare (image → cached .smolmachine), the smolvm argv, and the launch. */
export * from "./cache.ts";
export * from "./images.ts";
export * from "./launch.ts";
export * from "./machine-docker.ts";
export * from "./prepare.ts";
export * from "./smolvm.ts";
