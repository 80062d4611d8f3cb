import { describe, expect, test } from "bun:test";
import { internalAddresses, isSubnetConflict, MAX_PORT_RELAYS, randomInternalAddresses, relayAddress } from "../../../lib/backends/internal-subnet.ts";

describe("internal network addresses", () => {
  test("the first and last /28 of 198.18.0.0/15", () => {
    expect(internalAddresses(0)).toEqual({ subnet: "198.18.0.0/28", gateway: "198.18.0.1", gate: "198.18.0.2", bottle: "198.18.0.3" });
    expect(internalAddresses(8191)).toEqual({ subnet: "198.19.255.240/28", gateway: "198.19.255.241", gate: "198.19.255.242", bottle: "198.19.255.243" });
    expect(internalAddresses(16).subnet).toBe("198.18.1.0/28");
  });

  test("indexes outside the range are refused", () => {
    expect(() => internalAddresses(8192)).toThrow(RangeError);
    expect(() => internalAddresses(-1)).toThrow(RangeError);
    expect(() => internalAddresses(1.5)).toThrow(RangeError);
  });

  test("random draws stay inside the range, even at the edges of random()", () => {
    expect(randomInternalAddresses(() => 0).subnet).toBe("198.18.0.0/28");
    expect(randomInternalAddresses(() => 0.9999999999).subnet).toBe("198.19.255.240/28");
  });

  test("Docker's overlap errors are recognised, others are not", () => {
    expect(isSubnetConflict(new Error("Error response from daemon: Pool overlaps with other one on this address space"))).toBe(true);
    expect(isSubnetConflict(new Error("network with name x already exists"))).toBe(false);
  });

  test("port relays take the addresses after the bottle's, up to the one before the broadcast address", () => {
    const addresses = internalAddresses(16);
    expect(MAX_PORT_RELAYS).toBe(11);
    expect(relayAddress(addresses, 0)).toBe("198.18.1.4");
    expect(relayAddress(addresses, MAX_PORT_RELAYS - 1)).toBe("198.18.1.14");
    expect(() => relayAddress(addresses, MAX_PORT_RELAYS)).toThrow(RangeError);
  });
});
