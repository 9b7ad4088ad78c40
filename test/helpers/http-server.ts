/**
 * A real HTTP server on a loopback address for tests, with one handler per path. It counts
 * connections and requests, so a test can prove that nothing reached it.
 */
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type Route = (req: IncomingMessage, res: ServerResponse) => void;

export interface TestServer {
  readonly port: number;
  /** Base URL such as http://127.0.0.1:1234 (IPv6 hosts in brackets). */
  readonly origin: string;
  url(path: string): URL;
  /** Paths (with query) of the requests received, in order. */
  readonly requests: string[];
  connections(): number;
  close(): Promise<void>;
}

export async function startServer(routes: Record<string, Route>, host = "127.0.0.1"): Promise<TestServer> {
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const route = routes[new URL(req.url ?? "/", "http://x").pathname];
    if (route) route(req, res);
    else res.writeHead(404).end("not found");
  });
  server.on("connection", (socket) => {
    connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  return {
    port,
    origin,
    url: (path) => new URL(path, origin),
    requests,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        // Hanging and trickling routes keep sockets open; end them so close() returns.
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
