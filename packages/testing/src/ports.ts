/**
 * Free TCP ports for the servers and services a test starts (spawnNats, spawnPostgres, a
 * gateway listening for the emulator's callbacks).
 */
import fs from 'node:fs';
import net from 'node:net';

const handedOut = new Set<number>();

/** Ports below this are left alone (well-known and registered services run there). */
const PORTS_FROM = 10_000;

/**
 * The first port of the kernel's ephemeral range (Linux), where `listen(0)` and every outgoing
 * connection's local port come from; undefined where it cannot be read.
 */
function ephemeralLow(): number | undefined {
  try {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `port` can be bound on 127.0.0.1 now (then released). 0: any port, the one bound. */
function tryBind(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(undefined));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const { port: p } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(p));
    });
  });
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago. Another process may still take it before
 * the caller binds it (tap runs files in parallel), so the spawners start through
 * startOnFreePort, which retries a first start that fails to bind on a fresh port.
 *
 * Chosen at random BELOW the kernel's ephemeral range (on Linux, [10000, 32768) by default), not
 * by `listen(0)`: a port from `listen(0)` sits in the ephemeral range, where the kernel hands it
 * to the next `listen(0)` or outgoing connection of any test while the caller has not bound it
 * yet; a fresh-clone CI saw a setup test's gateway port answered by another test's nginx (405).
 * Below the range only another freePort, choosing at random among ~20k ports, can take it.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  if (low !== undefined && low - PORTS_FROM >= 1000) {
    for (let i = 0; i < 50; i++) {
      const port = PORTS_FROM + Math.floor(Math.random() * (low - PORTS_FROM));
      if (handedOut.has(port) || (await tryBind(port)) === undefined) continue;
      handedOut.add(port);
      return port;
    }
  }
  for (let i = 0; i < 20; i++) {
    const port = await tryBind(0);
    if (port !== undefined && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: no free port (the OS kept returning ports this process already handed out)');
}

/**
 * A server's first start on a port from freePort: when it fails because someone took the port
 * between freePort and the bind (`portTaken()` reads the server's output), `movePort` gets a fresh
 * port and the start is tried again, `attempts` times in all. Only the first start may move: a
 * restart keeps its port, which clients already know.
 */
export async function startOnFreePort(
  start: () => Promise<void>,
  portTaken: () => boolean,
  movePort: (port: number) => void,
  attempts = 3,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await start();
      return;
    } catch (err) {
      if (!portTaken() || attempt >= attempts) throw err;
      movePort(await freePort());
    }
  }
}
