#!/usr/bin/env node
// Generates packages/wire/gen/wire.{js,d.ts} from proto/*.proto with protobufjs static code
// generation. The output is never edited by hand and not committed; this runs on every build and
// does nothing when the .proto files and the generator are unchanged.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const wireDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const protoDir = join(wireDir, '..', '..', 'proto');
const genDir = join(wireDir, 'gen');
const require = createRequire(join(wireDir, 'package.json'));
const pbjs = join(dirname(require.resolve('protobufjs-cli/package.json')), 'bin', 'pbjs');

const protos = readdirSync(protoDir).filter((f) => f.endsWith('.proto')).sort();
const args = [
  '-t', 'static-module',
  '-w', 'esm',
  '--force-number', // 64-bit fields are numbers; src/index.ts turns off Long so decoding agrees
  '--null-semantics',
  '--no-service',
  '-p', protoDir,
];

const digest = createHash('sha256');
digest.update(JSON.stringify(args)).update(readFileSync(fileURLToPath(import.meta.url)));
digest.update(readFileSync(require.resolve('protobufjs-cli/package.json')));
for (const f of protos) digest.update(f).update('\0').update(readFileSync(join(protoDir, f)));
const hash = digest.digest('hex');
const digestFile = join(genDir, '.digest');
const outJs = join(genDir, 'wire.js');
const outDts = join(genDir, 'wire.d.ts');

if (existsSync(outJs) && existsSync(outDts) && existsSync(digestFile) && readFileSync(digestFile, 'utf8') === hash) {
  process.exit(0);
}

mkdirSync(genDir, { recursive: true });
const tmpJs = join(genDir, 'wire.tmp.js');
const res = spawnSync(process.execPath, [pbjs, ...args, '-d', '-o', tmpJs, ...protos.map((f) => join(protoDir, f))], {
  stdio: ['ignore', 'inherit', 'inherit'],
});
if (res.status !== 0) {
  process.stderr.write(`wire: E_PROTO_GENERATE: pbjs failed (exit ${res.status}) on ${protos.join(', ')}\n`);
  process.exit(1);
}
// Rename only after success so a failed run never leaves half-written files behind.
renameSync(tmpJs, outJs);
renameSync(join(genDir, 'wire.tmp.d.ts'), outDts);
writeFileSync(digestFile, hash);
