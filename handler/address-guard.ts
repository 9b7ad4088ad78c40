/**
 * Which IP addresses an image download may connect to. Pure functions over the text forms that
 * dns.lookup and WHATWG URL produce. Refused: anything that is not a globally reachable unicast
 * address (loopback, private, link-local and cloud metadata, CGNAT, multicast, reserved,
 * documentation and benchmark ranges), including IPv6 forms that embed such an IPv4 address.
 */
import { isIPv4, isIPv6 } from "node:net";

export type AddressVerdict = { allowed: true } | { allowed: false; reason: string };

/** `${ip} is <category>` when refused, e.g. "127.0.0.1 is a loopback address". */
export function classifyAddress(ip: string): AddressVerdict {
  const category = refusedCategory(ip);
  return category === undefined ? { allowed: true } : { allowed: false, reason: `${ip} is ${category}` };
}

/** Why an address is refused ("a loopback address"), or undefined when it is allowed. */
export function refusedCategory(ip: string): string | undefined {
  const bare = ip.replace(/^\[(.*)\]$/, "$1").replace(/%.*$/, ""); // brackets and zone id carry no address bits
  if (isIPv4(bare)) return ipv4Category(parseIPv4(bare));
  if (isIPv6(bare)) return ipv6Category(parseIPv6(bare));
  return "not an IP address";
}

/** [first address, prefix length, category], checked in order. */
const IPV4_RANGES: ReadonlyArray<readonly [string, number, string]> = [
  ["0.0.0.0", 8, "an unspecified address"],
  ["10.0.0.0", 8, "a private address"],
  ["100.64.0.0", 10, "a carrier-grade NAT address"],
  ["127.0.0.0", 8, "a loopback address"],
  ["169.254.169.254", 32, "a link-local address (cloud metadata)"],
  ["169.254.0.0", 16, "a link-local address"],
  ["172.16.0.0", 12, "a private address"],
  ["192.0.0.0", 24, "a reserved address (IETF protocol assignments)"],
  ["192.0.2.0", 24, "a documentation address"],
  ["192.168.0.0", 16, "a private address"],
  ["198.18.0.0", 15, "a benchmarking address"],
  ["198.51.100.0", 24, "a documentation address"],
  ["203.0.113.0", 24, "a documentation address"],
  ["224.0.0.0", 4, "a multicast address"],
  ["255.255.255.255", 32, "the broadcast address"],
  ["240.0.0.0", 4, "a reserved address"],
];

/** The ranges as numbers, parsed once: every connection of every download is classified. */
let parsedRanges: { base: number; mask: number; category: string }[] | undefined;

function ipv4Category(addr: number): string | undefined {
  parsedRanges ??= IPV4_RANGES.map(([base, bits, category]) => ({ base: parseIPv4(base), mask: bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0, category }));
  for (const { base, mask, category } of parsedRanges) if (((addr & mask) >>> 0) === base) return category;
  return undefined;
}

function ipv6Category(g: readonly number[]): string | undefined {
  const w = (i: number) => g[i] ?? 0;
  const zeroUpTo = (n: number) => g.slice(0, n).every((x) => x === 0);
  const v4At = (hi: number, lo: number) => ((hi << 16) >>> 0) + lo;
  const embedded = (form: string, v4: number) => {
    const category = ipv4Category(v4);
    return category === undefined ? undefined : `${form} ${formatIPv4(v4)}, which is ${category}`;
  };

  if (zeroUpTo(8)) return "an unspecified address";
  if (zeroUpTo(7) && w(7) === 1) return "a loopback address";
  // ::ffff:a.b.c.d connects to the IPv4 address itself; judge that address.
  if (zeroUpTo(5) && w(5) === 0xffff) return embedded("an IPv4-mapped form of", v4At(w(6), w(7)));
  if (zeroUpTo(4) && w(4) === 0xffff && w(5) === 0) return embedded("an IPv4-translated form of", v4At(w(6), w(7)));
  if (zeroUpTo(6)) return embedded("an IPv4-compatible form of", v4At(w(6), w(7)));
  if (w(0) === 0x64 && w(1) === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return embedded("a NAT64 form of", v4At(w(6), w(7)));
  if (w(0) === 0x64 && w(1) === 0xff9b && w(2) === 1) return "a local-use NAT64 address";
  if (w(0) === 0x2002) return embedded("a 6to4 address embedding", v4At(w(1), w(2)));
  // Teredo: the client's IPv4 address is stored inverted in the last 32 bits.
  if (w(0) === 0x2001 && w(1) === 0) return embedded("a Teredo address embedding", (~v4At(w(6), w(7))) >>> 0);
  if (w(0) === 0x2001 && w(1) === 0xdb8) return "a documentation address";
  if (w(0) === 0x3fff && (w(1) & 0xf000) === 0) return "a documentation address";
  if (w(0) === 0x2001 && w(1) === 2 && w(2) === 0) return "a benchmarking address";
  if (w(0) === 0x2001 && ((w(1) & 0xfff0) === 0x10 || (w(1) & 0xfff0) === 0x20)) return "a reserved address (ORCHID)";
  if ((w(0) & 0xfe00) === 0xfc00) return "a unique-local address";
  if ((w(0) & 0xffc0) === 0xfe80) return "a link-local address";
  if ((w(0) & 0xffc0) === 0xfec0) return "a site-local address";
  if ((w(0) & 0xff00) === 0xff00) return "a multicast address";
  // Everything outside 2000::/3 (global unicast) is reserved or unassigned (100::/64 discard etc.).
  if ((w(0) & 0xe000) !== 0x2000) return "a reserved address";
  return undefined;
}

function parseIPv4(text: string): number {
  return text.split(".").reduce((acc, part) => acc * 256 + Number(part), 0) >>> 0;
}

function formatIPv4(addr: number): string {
  return [24, 16, 8, 0].map((shift) => (addr >>> shift) & 255).join(".");
}

/** Eight 16-bit groups; the input has already passed net.isIPv6. */
function parseIPv6(text: string): number[] {
  let s = text.toLowerCase();
  const dotted = s.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (dotted?.[1]) {
    const v4 = parseIPv4(dotted[1]);
    s = `${s.slice(0, -dotted[1].length)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head = "", tail] = s.split("::");
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((x) => parseInt(x, 16)));
  const left = parse(head);
  if (tail === undefined) return left;
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
