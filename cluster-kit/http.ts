// HTTP to the replicas of a cluster, one connection per request, and free
// TCP ports for them.

import http from 'http';
import net from 'net';

/**
 * One HTTP request on a connection of its own, closed after: no keep-alive
 * connection of the harness may hold up a replica's graceful shutdown.
 * Resolves with the status and the body (parsed if JSON).
 */
export function request(
  method: string,
  url: string,
  form?: string,
  timeout = 30000,
  contentType = 'application/x-www-form-urlencoded',
): Promise<{status: number; body: unknown}> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {accept: 'application/json', connection: 'close'};
    if (form !== undefined) {
      headers['content-type'] = contentType;
      headers['content-length'] = String(Buffer.byteLength(form));
    }
    const req = http.request(url, {method, headers, agent: false, timeout}, res => {
      let raw = '';
      res.setEncoding('utf8');
      res.on('data', chunk => (raw += chunk));
      res.on('end', () => {
        let body: unknown = raw;
        try {
          body = JSON.parse(raw);
        } catch {
          // not JSON
        }
        resolve({status: res.statusCode ?? 0, body});
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(form);
  });
}

/**
 * Ports below the kernel's ephemeral range (32768 and up on Linux): a port the
 * kernel hands out for `listen(0)` may be taken, before the replica listens on
 * it, as the local port of one of the many outgoing connections of a run.
 */
const QUIET_PORTS = {from: 20000, to: 32000};

/** Handed out by this process: free now, but the replica given one may not listen yet. */
const handedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1, outside the ephemeral range when one is free
 * there, never the same twice in a process.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = QUIET_PORTS.from + Math.floor(Math.random() * (QUIET_PORTS.to - QUIET_PORTS.from));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await canListen(port)) return port;
  }
  return listenOnce(0);
}

function canListen(port: number): Promise<boolean> {
  return listenOnce(port).then(
    () => true,
    () => false,
  );
}

/** Listens on `port` (0: any) and closes again; resolves to the port. */
function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const bound = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(bound));
    });
  });
}
