import '@ime/core/polyfill';
import { parentPort } from 'node:worker_threads';
import { type PvpCryptoJob, replyTo } from './pvp-crypto-jobs.js';

/** A crypto thread of PvpCryptoPool: answers `{ id, job }` with `{ id, reply }`. */
if (!parentPort) throw new Error('pvp-crypto-worker runs only as a worker thread');
const port = parentPort;
port.on('message', (message: { id: number; job: PvpCryptoJob }) => {
  void replyTo(message.job).then((reply) => port.postMessage({ id: message.id, reply }));
});
