// Text assets embedded with `import … with { type: "text" }`.
declare module "*.Dockerfile" {
  const text: string;
  export default text;
}
declare module "*.sh" {
  const text: string;
  export default text;
}
declare module "*.bundle" {
  const text: string;
  export default text;
}
declare module "*/Dockerfile" {
  const text: string;
  export default text;
}
declare module "*.c" {
  const text: string;
  export default text;
}
declare module "*.conf" {
  const text: string;
  export default text;
}
