import { describe, expect, test } from "bun:test";
import {
  type AddressCategory,
  canonicalIp,
  cidrContains,
  classify,
  formatCidr,
  formatIp,
  parseCidr,
  parseIp,
  parseIPv4,
  parseIPv6,
  sameIp,
  unmap,
} from "../../../../lib/gates/egress/daemon/addresses.ts";

function ip(text: string) {
  const parsed = parseIp(text);
  if (!parsed) throw new Error(`not an ip: ${text}`);
  return parsed;
}

describe("parsing and formatting", () => {
  test("IPv4 is strict dotted decimal", () => {
    expect(parseIPv4("1.2.3.4")).toEqual(new Uint8Array([1, 2, 3, 4]));
    expect(parseIPv4("255.255.255.255")).not.toBeNull();
    for (const bad of ["256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "0x7f.0.0.1", "1.2.3.-1", "", "1..2.3", " 1.2.3.4"]) {
      expect(parseIPv4(bad)).toBeNull();
    }
  });

  test("IPv6 forms", () => {
    expect(formatIp(ip("2001:0db8:0000:0000:0000:0000:0000:0001"))).toBe("2001:db8::1");
    expect(formatIp(ip("::"))).toBe("::");
    expect(formatIp(ip("::1"))).toBe("::1");
    expect(formatIp(ip("fe80::1%eth0"))).toBe("fe80::1");
    expect(formatIp(ip("[2001:db8::1]"))).toBe("2001:db8::1");
    expect(formatIp(ip("1:0:0:2:0:0:0:3"))).toBe("1:0:0:2::3");
    expect(formatIp(ip("1:2:3:4:5:6:7:8"))).toBe("1:2:3:4:5:6:7:8");
    expect(formatIp(ip("1:2:3:4:5:6:1.2.3.4"))).toBe("1:2:3:4:5:6:102:304");
    expect(formatIp(ip("::ffff:10.0.0.1"))).toBe("::ffff:10.0.0.1");
    expect(formatIp(ip("::ffff:a00:1"))).toBe("::ffff:10.0.0.1");
    for (const bad of ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::1", ":1:2", "1:2:3:4:5:6:7::8", "::ffff:1.2.3", "1.2.3.4::"]) {
      expect(parseIPv6(bad)).toBeNull();
    }
  });

  test("IPv4-mapped IPv6 unmaps to IPv4", () => {
    const mapped = ip("::ffff:127.0.0.1");
    expect(mapped.family).toBe(6);
    expect(unmap(mapped).family).toBe(4);
    expect(formatIp(unmap(mapped))).toBe("127.0.0.1");
    expect(canonicalIp("::FFFF:7f00:1")).toBe("127.0.0.1");
    expect(sameIp(ip("::ffff:1.2.3.4"), ip("1.2.3.4"))).toBe(true);
    expect(sameIp(ip("1.2.3.4"), ip("1.2.3.5"))).toBe(false);
  });

  test("CIDRs", () => {
    const ten = parseCidr("10.0.0.0/8");
    expect(ten).not.toBeNull();
    if (!ten) return;
    expect(cidrContains(ten, ip("10.255.1.2"))).toBe(true);
    expect(cidrContains(ten, ip("11.0.0.1"))).toBe(false);
    expect(cidrContains(ten, ip("::ffff:10.1.1.1"))).toBe(true);
    expect(formatCidr(parseCidr("10.1.2.3/8") ?? ten)).toBe("10.0.0.0/8");
    const single = parseCidr("127.0.0.1");
    expect(single?.prefix).toBe(32);
    const v6 = parseCidr("fc00::/7");
    expect(v6 && cidrContains(v6, ip("fd12::1"))).toBe(true);
    expect(v6 && cidrContains(v6, ip("10.0.0.1"))).toBe(false);
    const odd = parseCidr("100.64.0.0/10");
    expect(odd && cidrContains(odd, ip("100.127.255.255"))).toBe(true);
    expect(odd && cidrContains(odd, ip("100.128.0.0"))).toBe(false);
    const mapped = parseCidr("::ffff:10.0.0.0/104");
    expect(mapped?.family).toBe(4);
    expect(mapped?.prefix).toBe(8);
    for (const bad of ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08", "::/129", "nope/8"]) expect(parseCidr(bad)).toBeNull();
  });
});

describe("classify", () => {
  const cases: [string, AddressCategory | null][] = [
    // IPv4
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "unspecified"],
    ["10.0.0.1", "private"],
    ["10.255.255.255", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["172.32.0.1", null],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "cgnat"],
    ["100.127.255.254", "cgnat"],
    ["100.100.100.200", "cgnat"],
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["169.254.1.1", "link-local"],
    ["169.254.169.254", "metadata"],
    ["169.254.170.2", "metadata"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["255.255.255.255", "broadcast"],
    ["240.0.0.1", "reserved"],
    ["192.0.0.192", "reserved"],
    ["192.0.2.1", "documentation"],
    ["198.18.0.1", "benchmarking"],
    ["198.51.100.1", "documentation"],
    ["203.0.113.9", "documentation"],
    ["1.1.1.1", null],
    ["8.8.8.8", null],
    ["93.184.216.34", null],
    // IPv6
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["fc00::1", "unique-local"],
    ["fd12:3456::1", "unique-local"],
    ["fd00:ec2::254", "metadata"],
    ["fe80::1", "link-local"],
    ["febf::1", "link-local"],
    ["fec0::1", "site-local"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "documentation"],
    ["2001::1", "reserved"],
    ["100::1", "reserved"],
    ["64:ff9b:1::1", "private"],
    ["3fff::1", null],
    ["2606:4700::1111", null],
    ["2a00:1450:4001::1", null],
    ["4000::1", "reserved"],
    // IPv4 embedded in IPv6
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:169.254.169.254", "metadata"],
    ["::ffff:7f00:1", "loopback"],
    ["::ffff:8.8.8.8", null],
    ["64:ff9b::10.0.0.1", "private"],
    ["64:ff9b::127.0.0.1", "loopback"],
    ["64:ff9b::8.8.8.8", null],
    ["2002:0a00:0001::1", "private"],
    ["2002:7f00:0001::", "loopback"],
    ["2002:0808:0808::1", null],
    ["::127.0.0.1", "loopback"],
    ["::8.8.8.8", "reserved"],
    ["::ffff:0:10.0.0.1", "reserved"],
  ];
  for (const [address, expected] of cases) {
    test(`${address} → ${expected ?? "public"}`, () => {
      expect(classify(ip(address))?.category ?? null).toBe(expected);
    });
  }

  test("names the range", () => {
    expect(classify(ip("10.1.2.3"))?.range).toBe("10.0.0.0/8");
    expect(classify(ip("64:ff9b::a00:1"))?.range).toBe("64:ff9b::/96 embedding 10.0.0.0/8");
  });
});
