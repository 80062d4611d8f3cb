import { afterAll, describe, expect, test } from "bun:test";
import { EgressGate } from "../../../../lib/gates/egress/daemon/gate.ts";
import { normalizeHost } from "../../../../lib/gates/egress/daemon/policy.ts";
import { ipv4RouteGateways, ipv6RouteGateways } from "../../../../lib/gates/egress/daemon/routes.ts";
import { cleanupTempDirs, tempDir } from "../../../helpers/unit.ts";
import { baseConfig } from "./helpers.ts";

afterAll(cleanupTempDirs);

// A gate's tables: eth0 on the internal network (no gateway), eth1 on the egress network (default route).
const IPV4 = [
  "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
  "eth1\t00000000\t010013AC\t0003\t0\t0\t0\t00000000\t0\t0\t0",
  "eth0\t90BE12C6\t00000000\t0001\t0\t0\t0\tF0FFFFFF\t0\t0\t0",
  "eth1\t000013AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0",
  "eth1\t0000000A\t020013AC\t0003\t0\t0\t0\t000000FF\t0\t0\t0",
  "",
].join("\n");
const IPV6 = [
  "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000001 00000000 00000003     eth1",
  "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1",
  "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0",
  "",
].join("\n");

describe("the gate's own route gateways", () => {
  test("IPv4: the gateway of each route through one, little-endian; on-link routes have none", () => {
    expect(ipv4RouteGateways(IPV4)).toEqual(["172.19.0.1", "172.19.0.2"]);
    expect(ipv4RouteGateways("")).toEqual([]);
    expect(ipv4RouteGateways("Iface\tDestination\tGateway\nbroken line\n")).toEqual([]);
  });

  test("IPv6: the next hop of routes with RTF_GATEWAY", () => {
    expect(ipv6RouteGateways(IPV6)).toEqual(["fd00:0:0:0:0:0:0:1"]);
    expect(ipv6RouteGateways("")).toEqual([]);
  });

  test("the gate refuses them as the Docker host, also with allowPrivate and after a reload", () => {
    const dir = tempDir("routes-");
    const config = baseConfig(dir, { allowPrivate: ["0.0.0.0/0", "::/0"] });
    const gate = new EgressGate({ config, routeGateways: [...ipv4RouteGateways(IPV4), ...ipv6RouteGateways(IPV6)] });
    const target = normalizeHost("hostgw.test")!;
    const refused = () => {
      expect(gate.policy.vet(target, ["172.19.0.1"])).toMatchObject({ ok: false, rule: "host-address" });
      expect(gate.policy.vet(target, ["fd00::1"])).toMatchObject({ ok: false, rule: "host-address" });
      expect(gate.policy.vet(target, ["172.19.0.9"]).ok).toBe(true);
    };
    refused();
    expect(gate.reload({ ...config, allow: ["other.test"] })).toBe(true);
    refused();
    // Without them only the listed host addresses are refused.
    expect(new EgressGate({ config }).policy.vet(target, ["172.19.0.1"]).ok).toBe(true);
  });
});
