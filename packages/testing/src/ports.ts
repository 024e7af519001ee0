/**
 * Free TCP ports for the servers and services a test starts (spawnNats, spawnPostgres, a
 * gateway listening for the emulator's callbacks).
 */
import net from 'node:net';

const handedOut = new Set<number>();

/**
 * A TCP port on 127.0.0.1 that was free a moment ago. Another process may still take it before
 * the caller binds it (tap runs files in parallel), so the spawners start through
 * startOnFreePort, which retries a first start that fails to bind on a fresh port.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
        const { port: p } = srv.address() as net.AddressInfo;
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: the OS kept returning ports this process already handed out');
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
