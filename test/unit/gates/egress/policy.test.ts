import { describe, expect, test } from "bun:test";
import {
  type HostTarget,
  Policy,
  normalizeHost,
  parseAllowEntry,
  parsePrivateEntry,
} from "../../../../lib/gates/egress/daemon/policy.ts";

function host(raw: string): HostTarget {
  const target = normalizeHost(raw);
  if (!target) throw new Error(`bad host ${raw}`);
  return target;
}

describe("normalizeHost", () => {
  test("lower-cases and drops one trailing dot", () => {
    expect(normalizeHost("API.Anthropic.COM.")).toEqual({ kind: "name", host: "api.anthropic.com" });
    expect(normalizeHost("example.com..")).toBeNull();
  });

  test("every spelling of an IPv4 address is an IP literal", () => {
    for (const raw of ["127.0.0.1", "2130706433", "0x7f.1", "0x7f000001", "127.1", "017700000001"]) {
      const target = normalizeHost(raw);
      expect(target?.kind).toBe("ip");
      expect(target?.host).toBe("127.0.0.1");
    }
  });

  test("IPv6 literals in brackets, IPv4-mapped unmapped", () => {
    expect(normalizeHost("[2001:DB8::1]")?.host).toBe("2001:db8::1");
    expect(normalizeHost("[::ffff:127.0.0.1]")).toMatchObject({ kind: "ip", host: "127.0.0.1" });
    expect(normalizeHost("2001:db8::1")).toBeNull();
  });

  test("IDN goes to punycode", () => {
    expect(normalizeHost("bücher.example")?.host).toBe("xn--bcher-kva.example");
  });

  test("refuses junk", () => {
    for (const raw of ["", ".", ".example.com", "a..b", "exa mple.com", "evil.com/x", "a@b", "a%2eb", "x\u0000y", "a:b", "1.2.3.256", "[1.2.3.4]", "a".repeat(64) + ".com"]) {
      expect(normalizeHost(raw)).toBeNull();
    }
  });
});

describe("allow entries", () => {
  test("parse", () => {
    expect(parseAllowEntry("api.anthropic.com")).toMatchObject({ kind: "name", host: "api.anthropic.com", port: null });
    expect(parseAllowEntry("*.Example.com")).toMatchObject({ kind: "wildcard", host: "example.com", port: null });
    expect(parseAllowEntry("host.test:8443")).toMatchObject({ kind: "name", host: "host.test", port: 8443 });
    expect(parseAllowEntry("*.example.com:8443")).toMatchObject({ kind: "wildcard", port: 8443 });
    expect(parseAllowEntry("1.2.3.4")).toMatchObject({ kind: "ip", host: "1.2.3.4", port: null });
    expect(parseAllowEntry("1.2.3.4:8080")).toMatchObject({ kind: "ip", host: "1.2.3.4", port: 8080 });
    expect(parseAllowEntry("2001:db8::1")).toMatchObject({ kind: "ip", host: "2001:db8::1", port: null });
    expect(parseAllowEntry("[2001:db8::1]:8443")).toMatchObject({ kind: "ip", host: "2001:db8::1", port: 8443 });
  });
  test("reject", () => {
    for (const bad of ["", "*", "*.com", "a.*.com", "*example.com", "**.example.com", "host:0", "host:70000", "host:x", "[::1", "bad host"]) {
      expect(typeof parseAllowEntry(bad)).toBe("string");
    }
  });
  test("private entries", () => {
    expect(parsePrivateEntry("127.0.0.1/32")).toMatchObject({ kind: "cidr" });
    expect(parsePrivateEntry("10.0.0.5")).toMatchObject({ kind: "cidr" });
    expect(parsePrivateEntry("fd00::/8")).toMatchObject({ kind: "cidr" });
    expect(parsePrivateEntry("[fd00::1]")).toMatchObject({ kind: "cidr" });
    expect(parsePrivateEntry("Internal.Corp")).toMatchObject({ kind: "name", host: "internal.corp" });
    expect(parsePrivateEntry("*.corp.example")).toMatchObject({ kind: "wildcard", host: "corp.example" });
    expect(typeof parsePrivateEntry("10.0.0.0/40")).toBe("string");
    expect(typeof parsePrivateEntry("*.corp")).toBe("string");
  });
  test("the Policy constructor names the bad entry", () => {
    expect(() => new Policy(["ok.test", "*"], [], [])).toThrow(/allow\[1\]/);
    expect(() => new Policy([], ["nope/x"], [])).toThrow(/allowPrivate\[0\]/);
    expect(() => new Policy([], [], ["gateway"])).toThrow(/hostAddresses\[0\]/);
  });
});

describe("checkHost", () => {
  const policy = new Policy(
    ["api.anthropic.com", "*.example.com", "svc.test:8443", "1.2.3.4", "[2001:db8::5]:9000", "both.test", "both.test:8080"],
    [],
    [],
  );

  test("exact names on the default ports, case-insensitive, trailing dot ignored", () => {
    expect(policy.checkHost(host("api.anthropic.com"), 443)).toEqual({ ok: true, entry: "api.anthropic.com" });
    expect(policy.checkHost(host("API.ANTHROPIC.COM."), 80).ok).toBe(true);
    expect(policy.checkHost(host("api.anthropic.com"), 8443)).toEqual({ ok: false, rule: "port-not-allowed" });
    expect(policy.checkHost(host("evil.test"), 443)).toEqual({ ok: false, rule: "not-allowed" });
    expect(policy.checkHost(host("xapi.anthropic.com"), 443).ok).toBe(false);
    expect(policy.checkHost(host("api.anthropic.com.evil.test"), 443).ok).toBe(false);
  });

  test("wildcards match subdomains, not the apex", () => {
    expect(policy.checkHost(host("www.example.com"), 443)).toEqual({ ok: true, entry: "*.example.com" });
    expect(policy.checkHost(host("a.b.example.com"), 443).ok).toBe(true);
    expect(policy.checkHost(host("example.com"), 443)).toEqual({ ok: false, rule: "not-allowed" });
    expect(policy.checkHost(host("badexample.com"), 443).ok).toBe(false);
  });

  test("host:port allows only that port", () => {
    expect(policy.checkHost(host("svc.test"), 8443).ok).toBe(true);
    expect(policy.checkHost(host("svc.test"), 443)).toEqual({ ok: false, rule: "port-not-allowed" });
    expect(policy.checkHost(host("both.test"), 8080).ok).toBe(true);
    expect(policy.checkHost(host("both.test"), 443).ok).toBe(true);
  });

  test("IP literals only when listed explicitly", () => {
    expect(policy.checkHost(host("1.2.3.4"), 443)).toEqual({ ok: true, entry: "1.2.3.4" });
    expect(policy.checkHost(host("[::ffff:1.2.3.4]"), 443).ok).toBe(true);
    expect(policy.checkHost(host("1.2.3.5"), 443)).toEqual({ ok: false, rule: "ip-literal" });
    expect(policy.checkHost(host("16909060"), 443).ok).toBe(true); // 1.2.3.4 spelled as a number
    expect(policy.checkHost(host("[2001:db8::5]"), 9000).ok).toBe(true);
    expect(policy.checkHost(host("[2001:db8::5]"), 443)).toEqual({ ok: false, rule: "port-not-allowed" });
    // A name never matches an IP entry and vice versa.
    expect(new Policy(["127.0.0.1"], [], []).checkHost(host("localhost"), 443).ok).toBe(false);
  });

  test("explicitPort", () => {
    expect(policy.explicitPort(host("svc.test"), 8443)).toBe(true);
    expect(policy.explicitPort(host("api.anthropic.com"), 443)).toBe(false);
    expect(new Policy(["x.test:443"], [], []).explicitPort(host("x.test"), 443)).toBe(false);
  });

  test("nameAllowed (DNS) ignores ports and IP entries", () => {
    expect(policy.nameAllowed("svc.test")).toBe(true);
    expect(policy.nameAllowed("deep.sub.example.com")).toBe(true);
    expect(policy.nameAllowed("example.com")).toBe(false);
    expect(policy.nameAllowed("1.2.3.4")).toBe(false);
    expect(policy.nameAllowed("evil.test")).toBe(false);
  });
});

describe("vet (resolved addresses)", () => {
  const name = host("internal.test");

  test("public addresses pass", () => {
    const result = new Policy([], [], []).vet(name, ["93.184.216.34", "2606:2800:220:1::1"]);
    expect(result.ok).toBe(true);
  });

  test("ANY private address refuses the whole name", () => {
    const result = new Policy([], [], []).vet(name, ["93.184.216.34", "10.0.0.5"]);
    expect(result).toMatchObject({ ok: false, rule: "private-address", category: "private" });
    if (!result.ok) expect(result.detail).toContain("10.0.0.0/8");
  });

  test("every off-limits range, incl. IPv4-mapped IPv6", () => {
    const policy = new Policy([], [], []);
    for (const address of [
      "127.0.0.1",
      "10.1.1.1",
      "172.20.0.1",
      "192.168.0.1",
      "100.64.1.1",
      "169.254.1.1",
      "169.254.169.254",
      "224.0.0.1",
      "0.0.0.0",
      "::1",
      "::",
      "fd00::1",
      "fe80::1",
      "ff02::1",
      "::ffff:127.0.0.1",
      "::ffff:169.254.169.254",
      "::ffff:a00:1",
      "64:ff9b::a9fe:a9fe",
    ]) {
      expect(policy.vet(name, [address]).ok).toBe(false);
    }
  });

  test("allowPrivate by CIDR, address or name", () => {
    expect(new Policy([], ["127.0.0.1/32"], []).vet(name, ["127.0.0.1"]).ok).toBe(true);
    expect(new Policy([], ["127.0.0.1/32"], []).vet(name, ["127.0.0.2"]).ok).toBe(false);
    expect(new Policy([], ["10.0.0.0/8"], []).vet(name, ["::ffff:10.2.3.4"]).ok).toBe(true);
    expect(new Policy([], ["internal.test"], []).vet(name, ["10.0.0.5", "fd00::5"]).ok).toBe(true);
    expect(() => new Policy([], ["*.test"], [])).toThrow(/wildcard/); // would cover a whole TLD
  });

  test("allowPrivate by wildcard name", () => {
    const policy = new Policy([], ["*.corp.test"], []);
    expect(policy.vet(host("db.corp.test"), ["10.0.0.5"]).ok).toBe(true);
    expect(policy.vet(host("corp.test"), ["10.0.0.5"]).ok).toBe(false);
  });

  test("IP literals are judged by their address only", () => {
    const policy = new Policy([], ["internal.test"], []);
    expect(policy.vet(host("10.0.0.5"), ["10.0.0.5"]).ok).toBe(false);
    expect(new Policy([], ["10.0.0.5"], []).vet(host("10.0.0.5"), ["10.0.0.5"]).ok).toBe(true);
  });

  test("metadata addresses need the exact address, not a range or a name", () => {
    expect(new Policy([], ["169.254.0.0/16"], []).vet(name, ["169.254.169.254"]).ok).toBe(false);
    expect(new Policy([], ["internal.test"], []).vet(name, ["169.254.169.254"]).ok).toBe(false);
    expect(new Policy([], ["169.254.169.254"], []).vet(name, ["169.254.169.254"]).ok).toBe(true);
    expect(new Policy([], ["169.254.0.0/16"], []).vet(name, ["169.254.1.1"]).ok).toBe(true);
  });

  test("Docker host addresses are always refused, even with allowPrivate", () => {
    const policy = new Policy([], ["0.0.0.0/0", "internal.test"], ["172.17.0.1", "192.168.65.0/24"]);
    expect(policy.vet(name, ["172.17.0.1"])).toMatchObject({ ok: false, rule: "host-address" });
    expect(policy.vet(name, ["::ffff:172.17.0.1"])).toMatchObject({ ok: false, rule: "host-address" });
    expect(policy.vet(name, ["192.168.65.254"])).toMatchObject({ ok: false, rule: "host-address" });
    // A public host address too.
    expect(new Policy([], [], ["203.0.113.7"]).vet(name, ["203.0.113.7"])).toMatchObject({ rule: "host-address" });
    expect(new Policy([], [], ["8.8.4.4"]).vet(name, ["8.8.4.4"])).toMatchObject({ rule: "host-address" });
  });

  test("no or malformed addresses", () => {
    expect(new Policy([], [], []).vet(name, [])).toMatchObject({ ok: false, rule: "resolve-failed" });
    expect(new Policy([], [], []).vet(name, ["not-an-ip"])).toMatchObject({ ok: false, rule: "resolve-failed" });
  });
});
