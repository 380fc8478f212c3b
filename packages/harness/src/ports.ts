import { randomInt } from 'node:crypto';
import { createServer } from 'node:net';

/**
 * Free TCP ports on 127.0.0.1, chosen once so that a member keeps its ports across restarts (peers
 * find each other by the addresses on the roster).
 *
 * They are taken below Linux's ephemeral range (32768–60999): a port the system hands out for
 * "port 0" could be taken again by any outgoing connection or port-0 listener (VAP instances, libp2p
 * dials) between the moment it is chosen and the moment the member binds it. Each is checked by
 * binding it, and a port is never handed out twice by this process.
 */
const LOW = 20_000;
const HIGH = 32_767;
const handedOut = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < count; tries++) {
    if (tries > count * 200) throw new Error(`no ${count} free ports between ${LOW} and ${HIGH}`);
    const port = randomInt(LOW, HIGH + 1);
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await bindable(port)) ports.push(port);
  }
  return ports;
}
