import { describe, expect, test } from "bun:test";
import { forwardedPorts } from "../../../lib/backends/objects.ts";
import type { BottleRow } from "../../../lib/backends/types.ts";
import { type ContainerSummary, parsePublishedPorts } from "../../../lib/docker.ts";
import { formatBottleTable } from "../../../lib/lifecycle.ts";
import { formatPreflight } from "../../../lib/preflight.ts";
import { formatForwards, formatOpenPort, openPortMessage } from "../../../lib/ports/format.ts";
import { makePlan } from "../../helpers/unit.ts";

/** Where forwarded ports show: docker ps's column read back, bottle ls, the preflight, the launch's line. */

function relay(bottle: string, port: number, ports: string, state = "running"): ContainerSummary {
  return { id: "", name: `${bottle}-port-${port}`, image: "", state, status: "", createdAt: "", labels: { "bottle.name": bottle, "bottle.role": "port", "bottle.port": String(port) }, ports: parsePublishedPorts(ports) };
}

describe("published ports", () => {
  test("docker ps's Ports column: the published TCP ones, IPv6 and the unpublished left aside", () => {
    expect(parsePublishedPorts("127.0.0.1:3000->3000/tcp, 0.0.0.0:8080->80/tcp, :::8080->80/tcp, 9000/tcp, 127.0.0.1:53->53/udp")).toEqual([
      { hostIp: "127.0.0.1", hostPort: 3000, containerPort: 3000 },
      { hostIp: "0.0.0.0", hostPort: 8080, containerPort: 80 },
      { hostIp: "::", hostPort: 8080, containerPort: 80 },
    ]);
    expect(parsePublishedPorts("")).toEqual([]);
    expect(parsePublishedPorts(undefined)).toEqual([]);
  });

  test("a bottle's forwarded ports are its running relays', by the port they are labelled with", () => {
    const containers = [
      relay("bottle-a", 3000, "127.0.0.1:49153->3000/tcp"),
      relay("bottle-a", 80, "127.0.0.1:8080->80/tcp"),
      relay("bottle-a", 5000, "", "exited"),
      relay("bottle-b", 3000, "127.0.0.1:3000->3000/tcp"),
      { ...relay("bottle-a", 22, "127.0.0.1:2222->22/tcp"), labels: { "bottle.name": "bottle-a", "bottle.role": "gate" } },
    ];
    expect(forwardedPorts(containers, "bottle-a").map(formatOpenPort)).toEqual(["127.0.0.1:8080->80", "127.0.0.1:49153->3000"]);
  });
});

describe("bottle ls", () => {
  const row = (name: string, ports: string[]): BottleRow => ({ name, agent: "a", backend: "docker", status: "running", session: "-", createdAt: "", age: "1m", workspace: "/w", ports });

  test("a PORTS column when a bottle forwards one", () => {
    expect(formatBottleTable([row("bottle-a", ["127.0.0.1:3000->3000", "127.0.0.1:8080->80"]), row("bottle-b", [])]).split("\n")).toEqual([
      "NAME      AGENT  BACKEND  STATUS   CLAUDE  AGE  PORTS                                    WORKSPACE",
      "bottle-a  a      docker   running  -       1m   127.0.0.1:3000->3000,127.0.0.1:8080->80  /w",
      "bottle-b  a      docker   running  -       1m   -                                        /w",
    ]);
  });

  test("none when no bottle does", () => {
    expect(formatBottleTable([row("bottle-b", [])]).split("\n")[0]).toBe("NAME      AGENT  BACKEND  STATUS   CLAUDE  AGE  WORKSPACE");
  });
});

describe("the preflight and the launch", () => {
  test("each port's way in, and why one is not on its own number", () => {
    const forwards = [
      { port: 3000, hostIp: "127.0.0.1", explicit: false, takenBy: "another process (see `ss -ltnp`)" },
      { port: 80, hostIp: "127.0.0.1", hostPort: 8080, explicit: true },
    ];
    expect(formatForwards(forwards)).toBe("127.0.0.1:(a free port) → 3000 (3000 is taken by another process (see `ss -ltnp`)), 127.0.0.1:8080 → 80");
    const preflight = formatPreflight(makePlan({ ports: forwards }), []);
    expect(preflight).toContain("  ports      127.0.0.1:(a free port) → 3000");
    expect(formatPreflight(makePlan(), [])).not.toContain("ports");
  });

  test("once up: where to open it", () => {
    expect(openPortMessage("bottle-a", { port: 3000, hostIp: "127.0.0.1", hostPort: 49153 }, { takenBy: "the container web" })).toBe(
      "bottle-a's port 3000 answers on 127.0.0.1:49153: http://127.0.0.1:49153/ (the host's 3000 is taken by the container web)",
    );
    expect(openPortMessage("bottle-a", { port: 3000, hostIp: "0.0.0.0", hostPort: 3000 }, {})).toBe("bottle-a's port 3000 answers on 0.0.0.0:3000: http://127.0.0.1:3000/");
  });
});
