import { describe, expect, it } from "vitest";
import { classifyAddress } from "../../handler/address-guard.js";

const refused = (ip: string) => {
  const verdict = classifyAddress(ip);
  if (verdict.allowed) throw new Error(`${ip} was allowed`);
  return verdict.reason;
};

describe("classifyAddress: refused IPv4 ranges", () => {
  it.each([
    ["0.0.0.0", "0.0.0.0 is an unspecified address"],
    ["0.255.255.255", "0.255.255.255 is an unspecified address"],
    ["10.0.0.0", "10.0.0.0 is a private address"],
    ["10.255.255.255", "10.255.255.255 is a private address"],
    ["100.64.0.0", "100.64.0.0 is a carrier-grade NAT address"],
    ["100.127.255.255", "100.127.255.255 is a carrier-grade NAT address"],
    ["127.0.0.1", "127.0.0.1 is a loopback address"],
    ["127.255.255.254", "127.255.255.254 is a loopback address"],
    ["169.254.0.1", "169.254.0.1 is a link-local address"],
    ["169.254.169.254", "169.254.169.254 is a link-local address (cloud metadata)"],
    ["172.16.0.1", "172.16.0.1 is a private address"],
    ["172.31.255.255", "172.31.255.255 is a private address"],
    ["192.0.0.8", "192.0.0.8 is a reserved address (IETF protocol assignments)"],
    ["192.0.2.1", "192.0.2.1 is a documentation address"],
    ["192.168.0.1", "192.168.0.1 is a private address"],
    ["192.168.255.255", "192.168.255.255 is a private address"],
    ["198.18.0.1", "198.18.0.1 is a benchmarking address"],
    ["198.19.255.255", "198.19.255.255 is a benchmarking address"],
    ["198.51.100.7", "198.51.100.7 is a documentation address"],
    ["203.0.113.9", "203.0.113.9 is a documentation address"],
    ["224.0.0.1", "224.0.0.1 is a multicast address"],
    ["239.255.255.250", "239.255.255.250 is a multicast address"],
    ["240.0.0.1", "240.0.0.1 is a reserved address"],
    ["255.255.255.254", "255.255.255.254 is a reserved address"],
    ["255.255.255.255", "255.255.255.255 is the broadcast address"],
  ])("%s", (ip, reason) => {
    expect(refused(ip)).toBe(reason);
  });
});

describe("classifyAddress: refused IPv6 ranges", () => {
  it.each([
    ["::", ":: is an unspecified address"],
    ["::1", "::1 is a loopback address"],
    ["0:0:0:0:0:0:0:1", "0:0:0:0:0:0:0:1 is a loopback address"],
    ["[::1]", "[::1] is a loopback address"],
    ["fc00::1", "fc00::1 is a unique-local address"],
    ["fd00::1", "fd00::1 is a unique-local address"],
    ["fdff:ffff::1", "fdff:ffff::1 is a unique-local address"],
    ["fe80::1", "fe80::1 is a link-local address"],
    ["fe80::1%eth0", "fe80::1%eth0 is a link-local address"],
    ["febf::1", "febf::1 is a link-local address"],
    ["fec0::1", "fec0::1 is a site-local address"],
    ["ff02::1", "ff02::1 is a multicast address"],
    ["ff0e::101", "ff0e::101 is a multicast address"],
    ["2001:db8::1", "2001:db8::1 is a documentation address"],
    ["2001:db8:ffff::1", "2001:db8:ffff::1 is a documentation address"],
    ["3fff::1", "3fff::1 is a documentation address"],
    ["2001:2::1", "2001:2::1 is a benchmarking address"],
    ["2001:10::1", "2001:10::1 is a reserved address (ORCHID)"],
    ["2001:20::1", "2001:20::1 is a reserved address (ORCHID)"],
    ["100::1", "100::1 is a reserved address"],
    ["64:ff9b:1::1", "64:ff9b:1::1 is a local-use NAT64 address"],
  ])("%s", (ip, reason) => {
    expect(refused(ip)).toBe(reason);
  });
});

describe("classifyAddress: IPv6 forms that embed a refused IPv4 address", () => {
  it.each([
    ["::ffff:127.0.0.1", "::ffff:127.0.0.1 is an IPv4-mapped form of 127.0.0.1, which is a loopback address"],
    ["::ffff:7f00:1", "::ffff:7f00:1 is an IPv4-mapped form of 127.0.0.1, which is a loopback address"],
    ["0:0:0:0:0:ffff:7f00:0001", "0:0:0:0:0:ffff:7f00:0001 is an IPv4-mapped form of 127.0.0.1, which is a loopback address"],
    ["::FFFF:A9FE:A9FE", "::FFFF:A9FE:A9FE is an IPv4-mapped form of 169.254.169.254, which is a link-local address (cloud metadata)"],
    ["::ffff:10.1.2.3", "::ffff:10.1.2.3 is an IPv4-mapped form of 10.1.2.3, which is a private address"],
    ["::ffff:0:127.0.0.1", "::ffff:0:127.0.0.1 is an IPv4-translated form of 127.0.0.1, which is a loopback address"],
    ["::127.0.0.1", "::127.0.0.1 is an IPv4-compatible form of 127.0.0.1, which is a loopback address"],
    ["::a00:1", "::a00:1 is an IPv4-compatible form of 10.0.0.1, which is a private address"],
    ["64:ff9b::127.0.0.1", "64:ff9b::127.0.0.1 is a NAT64 form of 127.0.0.1, which is a loopback address"],
    ["64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe is a NAT64 form of 169.254.169.254, which is a link-local address (cloud metadata)"],
    ["2002:7f00:1::", "2002:7f00:1:: is a 6to4 address embedding 127.0.0.1, which is a loopback address"],
    ["2002:c0a8:101::1", "2002:c0a8:101::1 is a 6to4 address embedding 192.168.1.1, which is a private address"],
    // Teredo keeps the client address inverted: ~0x0a000005 = f5ff:fffa.
    ["2001:0:4136:e378:8000:63bf:f5ff:fffa", "2001:0:4136:e378:8000:63bf:f5ff:fffa is a Teredo address embedding 10.0.0.5, which is a private address"],
  ])("%s", (ip, reason) => {
    expect(refused(ip)).toBe(reason);
  });
});

describe("classifyAddress: allowed public addresses", () => {
  it.each([
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "172.15.255.255",
    "172.32.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "169.253.255.255",
    "192.167.255.255",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
    "2606:4700::1",
    "2a00:1450:4001:80b::200e",
    "::ffff:93.184.216.34",
    "::ffff:5db8:d822",
    "64:ff9b::5db8:d822",
    "2002:5db8:d822::1",
    "2001:db9::1",
  ])("%s", (ip) => {
    expect(classifyAddress(ip)).toEqual({ allowed: true });
  });
});

describe("classifyAddress: not an address", () => {
  it.each(["localhost", "", "2130706433", "0x7f.1", "1.2.3"])("%j", (text) => {
    expect(refused(text)).toBe(`${text} is not an IP address`);
  });
});
