/**
 * The downloader against a real HTTP server on loopback (guard off, as SAM3_ALLOW_PRIVATE_URLS=1
 * would set it), the guard on against the same server (which must see nothing), a resolver and
 * connector stand-in for private hostnames (no sockets at all), and undici's MockAgent for
 * public-looking hosts. No traffic leaves loopback.
 */
import { readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import type { LookupAddress } from "node:dns";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MockAgent } from "undici";
import { DEFAULT_DOWNLOAD_LIMITS, DownloadError, downloadImage } from "../../handler/fetch-image.js";
import type { Connector, DownloadLimits, DownloadOptions, LookupAll } from "../../handler/fetch-image.js";
import { createLogger } from "../../handler/logger.js";
import { startServer } from "../helpers/http-server.js";
import type { Route, TestServer } from "../helpers/http-server.js";

const IMAGE = readFileSync(new URL("../fixtures/room.png", import.meta.url));
const HTML = "<!doctype html><html><body>not an image</body></html>";
const HINT = "(set SAM3_ALLOW_PRIVATE_URLS=1 to allow private addresses)";

/** Short limits so timeout tests take a fraction of a second. */
const LOCAL: DownloadLimits = { ...DEFAULT_DOWNLOAD_LIMITS, allowPrivate: true, connectTimeoutMs: 1000, headersTimeoutMs: 300, bodyTimeoutMs: 300 };
const GUARDED: DownloadLimits = { ...LOCAL, allowPrivate: false };

/** Resolves to the DownloadError a download fails with. */
async function failure(url: URL | string, limits: DownloadLimits, options?: DownloadOptions): Promise<DownloadError> {
  const err = await downloadImage(typeof url === "string" ? new URL(url) : url, limits, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DownloadError);
  return err as DownloadError;
}

const intervals = new Set<NodeJS.Timeout>();
let endlessClosed: Promise<void> = Promise.resolve();

const routes: Record<string, Route> = {
  "/ok": (_req, res) => res.writeHead(200, { "content-type": "image/png" }).end(IMAGE),
  "/html": (_req, res) => res.writeHead(200, { "content-type": "text/html" }).end(HTML),
  "/missing": (_req, res) => res.writeHead(404).end("no such image"),
  "/error": (_req, res) => res.writeHead(500).end("boom"),
  "/hang": () => undefined, // headers never come
  "/trickle": (_req, res) => {
    res.writeHead(200, { "content-type": "image/png" });
    const timer = setInterval(() => res.write("x"), 50); // never idle long, never done
    intervals.add(timer);
    res.on("close", () => clearInterval(timer));
  },
  "/stall": (_req, res) => {
    res.writeHead(200, { "content-type": "image/png" });
    res.write(IMAGE.subarray(0, 100)); // then nothing
  },
  "/big-declared": (_req, res) => {
    res.writeHead(200, { "content-type": "image/png", "content-length": String(1_000_000_000) });
    res.write(Buffer.alloc(100)); // the rest never comes: only the header can refuse it in time
  },
  "/big-exact": (_req, res) => res.writeHead(200, { "content-length": "2000" }).end(Buffer.alloc(2000, 7)),
  "/endless": (_req, res) => {
    // Chunked, no Content-Length, as fast as the client reads, until it hangs up.
    res.writeHead(200, { "content-type": "image/png" });
    const chunk = Buffer.alloc(64 * 1024, 1);
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
    };
    endlessClosed = new Promise((resolve) => res.on("close", resolve));
    res.on("drain", pump);
    pump();
  },
  "/r1": (req, res) => res.writeHead(302, { location: `http://${req.headers.host}/r2` }).end(),
  "/r2": (_req, res) => res.writeHead(301, { location: "/r3" }).end(),
  "/r3": (_req, res) => res.writeHead(307, { location: "ok?size=small" }).end(), // relative to /r3
  "/see-other": (_req, res) => res.writeHead(303, { location: "/ok" }).end(),
  "/permanent": (_req, res) => res.writeHead(308, { location: "/ok" }).end(),
  "/loop": (_req, res) => res.writeHead(302, { location: "/loop" }).end(),
  "/no-location": (_req, res) => res.writeHead(302).end(),
  "/to-ftp": (_req, res) => res.writeHead(302, { location: "ftp://files.example.com/room.jpg" }).end(),
  "/not-modified": (_req, res) => res.writeHead(304).end(),
};

let server: TestServer;
/** The loopback server the guard-on tests aim at; it must never see a connection or request. */
let victim: TestServer;
let victim6: TestServer | undefined;
let server6: TestServer | undefined;

beforeAll(async () => {
  server = await startServer(routes);
  victim = await startServer(routes);
  // Hosts without IPv6 skip the ::1 checks.
  server6 = await startServer(routes, "::1").catch(() => undefined);
  victim6 = await startServer(routes, "::1").catch(() => undefined);
});
afterAll(async () => {
  for (const timer of intervals) clearInterval(timer);
  await Promise.all([server.close(), victim.close(), server6?.close(), victim6?.close()]);
});

describe("downloadImage against a loopback server (guard off)", () => {
  it("returns the body of a 200", async () => {
    const bytes = await downloadImage(server.url("/ok"), LOCAL);
    expect(Buffer.compare(bytes, IMAGE)).toBe(0);
  });

  it("returns an HTML body as it is; the decoder judges it later", async () => {
    const bytes = await downloadImage(server.url("/html"), LOCAL);
    expect(bytes.toString()).toBe(HTML);
  });

  it("also speaks to ::1", async (ctx) => {
    if (!server6) return ctx.skip();
    const bytes = await downloadImage(server6.url("/ok"), LOCAL);
    expect(Buffer.compare(bytes, IMAGE)).toBe(0);
  });

  it.each([
    ["/missing", "HTTP 404"],
    ["/error", "HTTP 500"],
    ["/not-modified", "HTTP 304"],
  ])("%s gives %s", async (path, message) => {
    const err = await failure(server.url(path), LOCAL);
    expect(err.code).toBe("HTTP_STATUS");
    expect(err.message).toBe(message);
  });

  it("times out when the headers never come", async () => {
    const started = Date.now();
    const err = await failure(server.url("/hang"), LOCAL);
    expect(err.code).toBe("HEADERS_TIMEOUT");
    expect(err.message).toBe("timed out after 300 ms waiting for response headers");
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("times out a body that trickles: the deadline covers the whole body, not the gap between chunks", async () => {
    const started = Date.now();
    const err = await failure(server.url("/trickle"), LOCAL);
    expect(err.code).toBe("BODY_TIMEOUT");
    expect(err.message).toBe("timed out after 300 ms reading the response body");
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("refuses an oversized body from its Content-Length before reading it", async () => {
    const err = await failure(server.url("/big-declared"), { ...LOCAL, maxBytes: 1000, bodyTimeoutMs: 30_000 });
    expect(err.code).toBe("TOO_LARGE");
    expect(err.message).toBe("response is larger than the limit of 1000 bytes (SAM3_MAX_IMAGE_BYTES)");
  });

  it("refuses a body one Content-Length over the cap and accepts one exactly at it", async () => {
    const err = await failure(server.url("/big-exact"), { ...LOCAL, maxBytes: 1999 });
    expect(err.message).toBe("response is larger than the limit of 1999 bytes (SAM3_MAX_IMAGE_BYTES)");
    expect((await downloadImage(server.url("/big-exact"), { ...LOCAL, maxBytes: 2000 })).length).toBe(2000);
  });

  it("aborts an oversized body without Content-Length as soon as it passes the cap", async () => {
    const err = await failure(server.url("/endless"), { ...LOCAL, maxBytes: 100_000, bodyTimeoutMs: 30_000 });
    expect(err.code).toBe("TOO_LARGE");
    expect(err.message).toBe("response is larger than the limit of 100000 bytes (SAM3_MAX_IMAGE_BYTES)");
    await endlessClosed; // the connection was dropped, not drained
  });

  it("follows a chain of 3 redirects (302, 301, 307 with a relative Location)", async () => {
    const before = server.requests.length;
    const bytes = await downloadImage(server.url("/r1"), { ...LOCAL, maxRedirects: 3 });
    expect(Buffer.compare(bytes, IMAGE)).toBe(0);
    expect(server.requests.slice(before)).toEqual(["/r1", "/r2", "/r3", "/ok?size=small"]);
  });

  it.each(["/see-other", "/permanent"])("follows %s", async (path) => {
    expect((await downloadImage(server.url(path), LOCAL)).length).toBe(IMAGE.length);
  });

  it("refuses a chain longer than maxRedirects", async () => {
    const err = await failure(server.url("/r1"), { ...LOCAL, maxRedirects: 2 });
    expect(err.code).toBe("TOO_MANY_REDIRECTS");
    expect(err.message).toBe("too many redirects (more than 2)");
  });

  it("stops a redirect loop after the default 5 redirects", async () => {
    const before = server.requests.length;
    const err = await failure(server.url("/loop"), LOCAL);
    expect(err.message).toBe("too many redirects (more than 5)");
    expect(server.requests.length - before).toBe(6);
  });

  it("reports a redirect without a Location header", async () => {
    const err = await failure(server.url("/no-location"), LOCAL);
    expect(err.code).toBe("BAD_REDIRECT");
    expect(err.message).toBe("HTTP 302 redirect without a Location header");
  });

  it("refuses a redirect to another scheme", async () => {
    const err = await failure(server.url("/to-ftp"), LOCAL);
    expect(err.code).toBe("UNSUPPORTED_SCHEME");
    expect(err.message).toBe("unsupported URL scheme ftp:");
  });

  it("reports a refused connection", async () => {
    const closed = await startServer({});
    const url = closed.url("/ok");
    await closed.close();
    const err = await failure(url, LOCAL);
    expect(err.code).toBe("CONNECT_FAILED");
    expect(err.message).toBe("could not connect to 127.0.0.1: ECONNREFUSED");
  });
});

describe("URL schemes", () => {
  it.each([
    ["ftp://images.example.com/room.jpg", "ftp:"],
    ["file:///etc/passwd", "file:"],
    ["data:image/png;base64,AAAA", "data:"],
    ["gopher://127.0.0.1:70/", "gopher:"],
  ])("%s is refused", async (url, scheme) => {
    const err = await failure(url, LOCAL);
    expect(err.code).toBe("UNSUPPORTED_SCHEME");
    expect(err.message).toBe(`unsupported URL scheme ${scheme}`);
  });
});

describe("cancellation", () => {
  it("an abort mid-body stops the download at once", async () => {
    const controller = new AbortController();
    const limits = { ...LOCAL, bodyTimeoutMs: 30_000 };
    const started = Date.now();
    setTimeout(() => controller.abort(new Error("job cancelled")), 150);
    const err = await failure(server.url("/stall"), limits, { signal: controller.signal });
    expect(err.code).toBe("ABORTED");
    expect(err.message).toBe("download was cancelled");
    expect((err.cause as Error).message).toBe("job cancelled");
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("an already aborted signal sends nothing", async () => {
    const before = server.requests.length;
    const err = await failure(server.url("/ok"), LOCAL, { signal: AbortSignal.abort() });
    expect(err.code).toBe("ABORTED");
    expect(server.requests.length).toBe(before);
  });
});

describe("the address guard, end to end against loopback (guard on)", () => {
  afterEach(() => {
    // The proof: nothing reached the loopback servers, not even a TCP connection.
    expect(victim.connections()).toBe(0);
    expect(victim.requests).toEqual([]);
    expect(victim6?.connections() ?? 0).toBe(0);
  });

  const port = () => victim.port;

  it.each([
    ["http://127.0.0.1:PORT/ok", `127.0.0.1 is a loopback address ${HINT}`],
    ["http://2130706433:PORT/ok", `127.0.0.1 is a loopback address ${HINT}`],
    ["http://0x7f.1:PORT/ok", `127.0.0.1 is a loopback address ${HINT}`],
    ["http://0177.0.0.1:PORT/ok", `127.0.0.1 is a loopback address ${HINT}`],
    ["http://127.1:PORT/ok", `127.0.0.1 is a loopback address ${HINT}`],
    ["http://[::ffff:127.0.0.1]:PORT/ok", `::ffff:7f00:1 is an IPv4-mapped form of 127.0.0.1, which is a loopback address ${HINT}`],
    ["http://[::1]:PORT/ok", `::1 is a loopback address ${HINT}`],
    ["http://0.0.0.0:PORT/ok", `0.0.0.0 is an unspecified address ${HINT}`],
  ])("%s is refused", async (template, message) => {
    const err = await failure(template.replace("PORT", String(port())), GUARDED);
    expect(err.code).toBe("BLOCKED_ADDRESS");
    expect(err.message).toBe(message);
  });

  it("http://localhost:PORT/ is refused after resolving it", async () => {
    const err = await failure(`http://localhost:${port()}/ok`, GUARDED);
    expect(err.code).toBe("BLOCKED_ADDRESS");
    expect(err.message).toMatch(/^localhost resolves to (127\.0\.0\.1|::1), which is a loopback address \(set SAM3_ALLOW_PRIVATE_URLS=1 to allow private addresses\)$/);
  });

  it("a redirect from an allowed host to loopback is refused before it is sent", async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    // Net connect is open to the loopback server: only the guard stands between them.
    agent.enableNetConnect(`127.0.0.1:${port()}`);
    agent
      .get("https://images.example.com")
      .intercept({ path: "/room.jpg" })
      .reply(302, "", { headers: { location: `http://127.0.0.1:${port()}/ok` } });
    const err = await failure("https://images.example.com/room.jpg", GUARDED, { dispatcher: agent });
    expect(err.message).toBe(`127.0.0.1 is a loopback address ${HINT}`);
    await agent.close();
  });
});

/** A resolver that answers from a table and a connector that records attempts and never opens a socket. */
function standIns(table: Record<string, string[]>, onConnect?: Connector) {
  const attempts: Array<{ hostname: string; servername: string | undefined; port: string }> = [];
  const lookup: LookupAll = (hostname, _options, callback) => {
    const addresses = table[hostname];
    if (!addresses) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" }), []);
    callback(null, addresses.map((address): LookupAddress => ({ address, family: address.includes(":") ? 6 : 4 })));
  };
  const connect: Connector = (options, callback) => {
    attempts.push({ hostname: options.hostname, servername: options.servername, port: options.port });
    if (onConnect) return onConnect(options, callback);
    callback(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), null);
  };
  return { attempts, lookup, connect };
}

describe("the address guard in the connector (resolver and connector stand-ins, no sockets)", () => {
  const table = {
    "internal.example.com": ["10.0.0.5"],
    "metadata.example.com": ["169.254.169.254"],
    "ula.example.com": ["fd00::1"],
    "mixed.example.com": ["93.184.216.34", "10.0.0.5"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "public.example.com": ["93.184.216.34"],
    "two.example.com": ["2606:4700::1", "93.184.216.34"],
  };

  it.each([
    ["http://internal.example.com/a.jpg", `internal.example.com resolves to 10.0.0.5, which is a private address ${HINT}`],
    ["http://metadata.example.com/latest/meta-data/", `metadata.example.com resolves to 169.254.169.254, which is a link-local address (cloud metadata) ${HINT}`],
    ["https://ula.example.com/a.jpg", `ula.example.com resolves to fd00::1, which is a unique-local address ${HINT}`],
    ["https://mixed.example.com/a.jpg", `mixed.example.com resolves to 10.0.0.5, which is a private address ${HINT}`],
    ["http://mapped.example.com/a.jpg", `mapped.example.com resolves to ::ffff:127.0.0.1, which is an IPv4-mapped form of 127.0.0.1, which is a loopback address ${HINT}`],
  ])("%s is refused without a connection attempt", async (url, message) => {
    const { attempts, lookup, connect } = standIns(table);
    const err = await failure(url, GUARDED, { lookup, connect });
    expect(err.code).toBe("BLOCKED_ADDRESS");
    expect(err.message).toBe(message);
    expect(attempts).toEqual([]);
  });

  it("connects to the address it checked, never re-resolving, with the hostname kept for TLS", async () => {
    const { attempts, lookup, connect } = standIns(table);
    const err = await failure("https://public.example.com/room.jpg", GUARDED, { lookup, connect });
    expect(err.code).toBe("CONNECT_FAILED");
    expect(err.message).toBe("could not connect to public.example.com: ECONNREFUSED");
    expect(attempts).toEqual([{ hostname: "93.184.216.34", servername: "public.example.com", port: "" }]);
  });

  it("tries the next checked address when one fails", async () => {
    const { attempts, lookup, connect } = standIns(table);
    await failure("http://two.example.com:8080/room.jpg", GUARDED, { lookup, connect });
    expect(attempts.map((a) => a.hostname)).toEqual(["2606:4700::1", "93.184.216.34"]);
  });

  it("reports a name that does not resolve", async () => {
    const { attempts, lookup, connect } = standIns(table);
    const err = await failure("https://nowhere.example.com/room.jpg", GUARDED, { lookup, connect });
    expect(err.code).toBe("DNS_FAILED");
    expect(err.message).toBe("could not resolve nowhere.example.com: ENOTFOUND");
    expect(attempts).toEqual([]);
  });

  it("times out a connection that never completes", async () => {
    const { lookup, connect } = standIns(table, () => undefined);
    const started = Date.now();
    const err = await failure("https://public.example.com/room.jpg", { ...GUARDED, connectTimeoutMs: 300 }, { lookup, connect });
    expect(err.code).toBe("CONNECT_TIMEOUT");
    expect(err.message).toBe("timed out after 300 ms connecting to public.example.com");
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("checks the connected socket's remote address too (defence in depth)", async () => {
    // The resolver says public, but the connection lands on loopback: refused before any request.
    const landing = await startServer(routes);
    const { lookup, connect } = standIns(table, (_options, callback) => {
      const socket = netConnect({ host: "127.0.0.1", port: landing.port });
      socket.once("connect", () => callback(null, socket)).once("error", (e) => callback(e, null));
    });
    const err = await failure("http://public.example.com/room.jpg", GUARDED, { lookup, connect });
    expect(err.code).toBe("BLOCKED_ADDRESS");
    expect(err.message).toBe(`public.example.com connected to 127.0.0.1, which is a loopback address ${HINT}`);
    expect(landing.requests).toEqual([]);
    await landing.close();
  });
});

describe("public-looking hosts through undici's MockAgent", () => {
  let agent: MockAgent;
  beforeAll(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
  });
  afterAll(() => agent.close());

  function capture() {
    const lines: string[] = [];
    const log = createLogger({ level: "debug", runpodFormat: false, secrets: [], destination: { write: (line: string) => void lines.push(line) } });
    return { lines, log };
  }

  it("downloads an image", async () => {
    agent
      .get("https://images.example.com")
      .intercept({ path: "/room.jpg" })
      .reply(200, IMAGE, { headers: { "content-type": "image/jpeg", "content-length": String(IMAGE.length) } });
    const { lines, log } = capture();
    const bytes = await downloadImage(new URL("https://images.example.com/room.jpg"), GUARDED, { dispatcher: agent, log });
    expect(Buffer.compare(bytes, IMAGE)).toBe(0);
    const done = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "image downloaded");
    expect(done).toMatchObject({ url: "https://images.example.com/room.jpg", bytes: IMAGE.length, contentType: "image/jpeg", redirects: 0 });
  });

  it.each([
    ["http://127.0.0.1/", `127.0.0.1 is a loopback address ${HINT}`],
    ["http://[::ffff:7f00:1]/", `::ffff:7f00:1 is an IPv4-mapped form of 127.0.0.1, which is a loopback address ${HINT}`],
    ["http://169.254.169.254/latest/meta-data/", `169.254.169.254 is a link-local address (cloud metadata) ${HINT}`],
    ["http://2130706433/", `127.0.0.1 is a loopback address ${HINT}`],
  ])("a redirect to %s is refused", async (location, message) => {
    agent.get("https://images.example.com").intercept({ path: "/room.jpg" }).reply(302, "", { headers: { location } });
    const err = await failure("https://images.example.com/room.jpg", GUARDED, { dispatcher: agent });
    expect(err.code).toBe("BLOCKED_ADDRESS");
    expect(err.message).toBe(message);
  });

  it("keeps a signed URL's query out of messages and logs", async () => {
    const origin = agent.get("https://images.example.com");
    origin.intercept({ path: "/room.jpg", query: { "X-Amz-Signature": "secret" } }).reply(302, "", {
      headers: { location: "/moved.jpg?X-Amz-Signature=secret&X-Amz-Credential=secret" },
    });
    origin.intercept({ path: (p) => p.startsWith("/moved.jpg") }).reply(403, "<Error>AccessDenied for secret</Error>");
    const { lines, log } = capture();
    const err = await failure("https://images.example.com/room.jpg?X-Amz-Signature=secret", GUARDED, { dispatcher: agent, log });
    expect(err.message).toBe("HTTP 403");
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join("\n")).toContain("images.example.com/room.jpg");
    expect(lines.join("\n")).toContain("images.example.com/moved.jpg");
    expect(lines.join("\n")).not.toContain("secret");
    expect(err.message).not.toContain("secret");
  });

  it("keeps the query out of a network failure's message", async () => {
    agent
      .get("https://images.example.com")
      .intercept({ path: (p) => p.startsWith("/broken.jpg") })
      .replyWithError(Object.assign(new Error("socket hang up at /broken.jpg?X-Amz-Signature=secret"), { code: "ECONNRESET" }));
    const err = await failure("https://images.example.com/broken.jpg?X-Amz-Signature=secret", GUARDED, { dispatcher: agent });
    expect(err.code).toBe("NETWORK");
    expect(err.message).toBe("connection to images.example.com failed: ECONNRESET");
  });
});
