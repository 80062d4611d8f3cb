import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { resolveBottle } from "../../../lib/manifest/index.ts";
import { formatPortSpec, parsePortSpec, portClashes } from "../../../lib/manifest/ports.ts";
import { bottleErrorFor, sandbox, type Sandbox } from "../manifest/helpers.ts";

describe("a port's grammar: PORT or HOSTPORT:PORT (docker's order)", () => {
  test("a port, as a number or text; a host port before it", () => {
    expect(parsePortSpec(3000)).toEqual({ port: 3000 });
    expect(parsePortSpec("3000")).toEqual({ port: 3000 });
    expect(parsePortSpec("8080:80")).toEqual({ port: 80, hostPort: 8080 });
    expect(parsePortSpec(1)).toEqual({ port: 1 });
    expect(parsePortSpec("65535:65535")).toEqual({ port: 65535, hostPort: 65535 });
    expect(formatPortSpec({ port: 80, hostPort: 8080 })).toBe("8080:80");
    expect(formatPortSpec({ port: 3000 })).toBe("3000");
  });

  test("each wrong spelling says what is wrong and what to write", () => {
    const problems: Array<[string | number, string]> = [
      [0, "port 0 is out of range (1-65535)"],
      [70000, "port 70000 is out of range (1-65535)"],
      [3.5, 'expected a port like 3000, or "HOSTPORT:PORT" like "8080:3000", got 3.5'],
      ["abc", 'expected a port like 3000, or "HOSTPORT:PORT" like "8080:3000", got "abc"'],
      ["", 'expected a port like 3000, or "HOSTPORT:PORT" like "8080:3000", got ""'],
      [" 3000", 'expected a port like 3000, or "HOSTPORT:PORT" like "8080:3000", got " 3000"'],
      ["0:80", 'host port 0 in "0:80" is out of range (1-65535)'],
      ["8080:0", 'port 0 in "8080:0" is out of range (1-65535)'],
      ["99999:80", 'host port 99999 in "99999:80" is out of range (1-65535)'],
      ["3000/tcp", '"3000/tcp": ports are always TCP — write 3000'],
      ["8080:80/tcp", '"8080:80/tcp": ports are always TCP — write "8080:80"'],
      ["53/udp", '"53/udp": only TCP ports are forwarded'],
      ["3000-3005", '"3000-3005": one port per entry, not a range — list each port'],
      ["8080:3000-3005", '"8080:3000-3005": one port per entry, not a range — list each port'],
      ["127.0.0.1:8080:3000", '"127.0.0.1:8080:3000": the host address is not part of a port — write "8080:3000"; ports are published on 127.0.0.1 (`--bind ADDRESS` changes that)'],
      ["1:2:3:4", 'expected a port like 3000, or "HOSTPORT:PORT" like "8080:3000", got "1:2:3:4"'],
    ];
    for (const [input, problem] of problems) expect({ input, result: parsePortSpec(input) }).toEqual({ input, result: { problem } });
  });

  test("a bottle port twice, or one host port for two bottle ports, clashes (an implicit host port is its own number)", () => {
    const name = (index: number) => `#${index}`;
    expect(portClashes([{ port: 3000 }, { port: 80, hostPort: 8080 }], name)).toEqual([]);
    expect(portClashes([{ port: 3000 }, { port: 3000, hostPort: 3001 }], name)).toEqual([{ index: 1, problem: "port 3000 is forwarded twice (also #0) — keep one" }]);
    expect(portClashes([{ port: 3000 }, { port: 4000, hostPort: 3000 }], name)).toEqual([
      { index: 1, problem: 'host port 3000 is asked for by #0 too — give one of them another host port ("HOSTPORT:PORT")' },
    ]);
    expect(portClashes([{ port: 80, hostPort: 8080 }, { port: 81, hostPort: 8080 }, { port: 8080 }], name).map((clash) => clash.index)).toEqual([1, 2]);
  });
});

describe("ports: in a bottle", () => {
  let box: Sandbox;
  beforeEach(() => {
    box = sandbox();
  });
  afterEach(() => box.cleanup());

  test("a port of 0, 70000, text, a range and a UDP port: each an error at its line, naming the field", () => {
    expect(bottleErrorFor(box, 'ports:\n  - 0\n  - 70000\n  - abc\n  - "3000-3005"\n  - "53/udp"\n').split("\n")).toEqual([
      "~/.config/bottle/bottles/dev.yaml:2:5: ports[0]: port 0 is out of range (1-65535)",
      "~/.config/bottle/bottles/dev.yaml:3:5: ports[1]: port 70000 is out of range (1-65535)",
      '~/.config/bottle/bottles/dev.yaml:4:5: ports[2]: expected a port like 3000, or "HOSTPORT:PORT" like "8080:3000", got "abc"',
      '~/.config/bottle/bottles/dev.yaml:5:5: ports[3]: "3000-3005": one port per entry, not a range — list each port',
      '~/.config/bottle/bottles/dev.yaml:6:5: ports[4]: "53/udp": only TCP ports are forwarded',
    ]);
  });

  test("a duplicate: the same port twice, or one host port twice, at the later entry", () => {
    expect(bottleErrorFor(box, 'ports:\n  - 3000\n  - "3001:3000"\n  - "8080:80"\n  - "8080:81"\n').split("\n")).toEqual([
      "~/.config/bottle/bottles/dev.yaml:3:5: ports[1]: port 3000 is forwarded twice (also ports[0]) — keep one",
      '~/.config/bottle/bottles/dev.yaml:5:5: ports[3]: host port 8080 is asked for by ports[2] too — give one of them another host port ("HOSTPORT:PORT")',
    ]);
  });

  test("not a list, or a mapping entry", () => {
    expect(bottleErrorFor(box, "ports: 3000\n")).toBe("~/.config/bottle/bottles/dev.yaml:1:8: ports: expected a list of ports, got a number");
    expect(bottleErrorFor(box, "ports:\n  - { host: 8080, port: 80 }\n")).toBe(
      '~/.config/bottle/bottles/dev.yaml:2:5: ports[0]: expected a port like 3000, or "HOSTPORT:PORT" like "8080:3000", got a mapping',
    );
  });

  test("across extends, a later file's entry for a port replaces the earlier one's, where it was", () => {
    box.bottle("base", 'ports: [3000, "8080:80"]\n');
    const dev = box.bottle("dev", 'extends: base\nports: ["9000:3000", 5173]\n');
    const ports = resolveBottle("dev", { env: box.env }).ports;
    expect(ports.map((entry) => entry.value)).toEqual([{ port: 3000, hostPort: 9000 }, { port: 80, hostPort: 8080 }, { port: 5173 }]);
    expect(ports[0]).toMatchObject({ file: dev, line: 2, col: 9, path: "ports[0]" });
  });
});
