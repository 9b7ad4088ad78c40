/**
 * A loopback HTTP server (127.0.0.1 only) that serves fake release assets under /sam3/<name>,
 * with switches for the failures the model fetch must survive.
 */
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ModelServerOptions {
  /** Remote name -> content. */
  readonly files: Readonly<Record<string, Buffer>>;
  /** The first GET of these names sends half the body, then drops the connection. */
  readonly cutOnce?: readonly string[];
  /** Answer every request with the whole file (200), as servers without Range support do. */
  readonly ignoreRange?: boolean;
  /** The first N GETs of a name get this status (e.g. 503) instead of the file. */
  readonly failFirst?: Readonly<Record<string, { status: number; times: number }>>;
  /** /sam3/<name> answers 302 to /cdn/<name>, as GitHub release downloads do. */
  readonly redirect?: boolean;
}

export interface RecordedRequest {
  readonly path: string;
  readonly range: string | undefined;
  readonly status: number;
}

export interface ModelServer {
  /** Base URL of the fake tag folder, with trailing slash. */
  readonly baseUrl: string;
  readonly requests: RecordedRequest[];
  /** Requests for one remote name that reached the file handler (redirects excluded). */
  requestsFor(name: string): RecordedRequest[];
  close(): Promise<void>;
}

export async function startModelServer(options: ModelServerOptions): Promise<ModelServer> {
  const requests: RecordedRequest[] = [];
  const seen = new Map<string, number>();

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const range = req.headers.range;
    const record = (status: number) => requests.push({ path: url.pathname, range, status });
    const m = /^\/(sam3|cdn)\/([^/]+)$/.exec(url.pathname);
    if (m && m[1] === "sam3" && options.redirect) {
      record(302);
      res.writeHead(302, { location: `/cdn/${m[2]}` }).end();
      return;
    }
    const name = m?.[2] ? decodeURIComponent(m[2]) : "";
    const body = options.files[name];
    if (!m || !body) {
      record(404);
      res.writeHead(404).end("not found");
      return;
    }
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);

    const fail = options.failFirst?.[name];
    if (fail && n <= fail.times) {
      record(fail.status);
      res.writeHead(fail.status).end("try later");
      return;
    }
    const r = !options.ignoreRange && range ? /^bytes=(\d+)-$/.exec(range) : null;
    if (r) {
      const start = Number(r[1]);
      if (start >= body.length) {
        record(416);
        res.writeHead(416, { "content-range": `bytes */${body.length}` }).end();
        return;
      }
      record(206);
      res.writeHead(206, { "content-range": `bytes ${start}-${body.length - 1}/${body.length}`, "content-length": body.length - start });
      send(res, body.subarray(start), false);
      return;
    }
    record(200);
    res.writeHead(200, { "content-length": body.length, "accept-ranges": options.ignoreRange ? "none" : "bytes" });
    send(res, body, n === 1 && (options.cutOnce ?? []).includes(name));
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/sam3/`,
    requests,
    requestsFor: (name) => requests.filter((r) => r.path.endsWith(`/${name}`) && r.status !== 302),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Sends the body; with cut, only the first half, then the socket is destroyed mid-body. */
function send(res: ServerResponse, body: Buffer, cut: boolean): void {
  if (!cut) {
    res.end(body);
    return;
  }
  // Wait until the half is handed to the kernel, so the client really gets a prefix to resume from.
  res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.socket?.destroy(), 20));
}

/** A port on 127.0.0.1 with nothing listening (connection refused). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
