#!/usr/bin/env node
// The test command behind `npm test`: type-checks the tests, runs jest (native ESM, so with
// --experimental-vm-modules) and ends with one plain line "N passed, N failed" that CI reads.
// Extra arguments go to jest, e.g. `npm test -- packages/core`. `--reliability` runs test/reliability/
// instead (`npm run test:reliability`: churn, crash safety, partition, fuzzing, attacks) and writes its
// own result files, so the two runs can share one CI job.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const resultsDir = join(root, 'test-results');
mkdirSync(resultsDir, { recursive: true });
const args = process.argv.slice(2);
const reliability = args.includes('--reliability');
const jestArgs = args.filter((a) => a !== '--reliability');
const suffix = reliability ? '-reliability' : '';
const jsonFile = join(resultsDir, `jest${suffix}.json`);
rmSync(jsonFile, { force: true });

process.stderr.write('[test] type-checking the tests\n');
const typecheck = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.tests.json'], {
  cwd: root,
  stdio: 'inherit',
});
const typecheckFailed = typecheck.status !== 0;

process.stderr.write('[test] running jest\n');
const jest = spawnSync(
  process.execPath,
  [
    '--experimental-vm-modules',
    '--no-warnings=ExperimentalWarning',
    join(root, 'node_modules/jest/bin/jest.js'),
    '--json',
    `--outputFile=${jsonFile}`,
    ...(process.env.CI ? ['--ci'] : []),
    // The reliability suites each start many processes; one at a time keeps them within 2 cores.
    ...(reliability ? ['--runInBand'] : []),
    ...jestArgs,
  ],
  { cwd: root, stdio: 'inherit', env: reliability ? { ...process.env, IME_TEST_SUITE: 'reliability' } : process.env },
);

let passed = 0;
let failed = 0;
if (existsSync(jsonFile)) {
  const r = JSON.parse(readFileSync(jsonFile, 'utf8'));
  passed = r.numPassedTests;
  // A suite that cannot even load has no failed tests but is a failure.
  failed = r.numFailedTests + r.numRuntimeErrorTestSuites;
} else {
  process.stderr.write('[test] jest wrote no results\n');
  failed = 1;
}
if (typecheckFailed) {
  process.stderr.write('[test] the tests do not type-check (see above); counted as one failure\n');
  failed += 1;
}
if (jest.status !== 0 && failed === 0) failed = 1;
const summary = `${passed} passed, ${failed} failed`;
writeFileSync(join(resultsDir, `summary${suffix}.txt`), `${summary}\n`);
process.stdout.write(`${summary}\n`);
process.exit(failed === 0 ? 0 : 1);
