import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ImeError } from '@ime/core';
import type { InferConfig } from '../src/config.js';
import {
  MAX_CONFIG_BYTES,
  checkJsonText,
  configFormatOf,
  defineConfigSchema,
  loadConfigFile,
  parseConfigText,
  renderConfigReference,
  renderDefaultConfig,
} from '../src/config.js';
import { rejected as refusal } from '../../core/test/helpers.js';

const schema = defineConfigSchema({
  name: { type: 'string', description: 'Name of this peer in logs and `ime ring up` output.', required: true, example: 'peer-1', pattern: '[a-z][a-z0-9-]*' },
  domain: { type: 'string', description: 'The enterprise domain.', default: 'acme.example' },
  role: { type: 'string', description: 'What runs.', enum: ['peer', 'bootstrap'], default: 'peer' },
  dataDir: { type: 'path', description: 'Where the LevelDB database and keys live.', default: './data' },
  bootstraps: { type: 'string[]', description: 'Bootstrap multiaddrs.', default: [] },
  quota: { type: 'integer', description: 'Storage quota in records.', min: 0, max: 1_000_000, default: 100_000 },
  publicAddress: { type: 'string', description: 'Address announced to other peers.' },
  tls: { type: 'boolean', description: 'Use TLS.', default: true },
  admin: {
    type: 'object',
    description: 'The local admin API.',
    fields: {
      listen: { type: 'string', description: 'host:port of the admin API.', default: '127.0.0.1:9620' },
      tokenFile: { type: 'path', description: 'File holding the admin token.', default: 'admin.token' },
    },
  },
  log: {
    type: 'object',
    description: 'Logging.',
    fields: {
      level: { type: 'string', description: 'Default level.', enum: ['error', 'warn', 'info', 'debug', 'trace'], default: 'info' },
      modules: {
        type: 'map',
        description: 'Per-module levels, e.g. ring: debug.',
        values: ['error', 'warn', 'info', 'debug', 'trace'],
        default: {},
      },
    },
  },
});

type Config = InferConfig<typeof schema>;

describe('configuration files', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ime-config-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function file(name: string, text: string | Buffer): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }

  it('loads YAML, fills defaults, resolves paths against the file and types the result', async () => {
    mkdirSync(join(dir, 'etc'), { recursive: true });
    const path = file('etc/peer.yaml', 'name: peer-7\nquota: 5\nadmin:\n  listen: 127.0.0.1:9700\nlog:\n  modules:\n    ring: debug\n');
    const config: Config = await loadConfigFile(path, schema);
    expect(config).toEqual({
      name: 'peer-7',
      domain: 'acme.example',
      role: 'peer',
      dataDir: join(dir, 'etc', 'data'),
      bootstraps: [],
      quota: 5,
      tls: true,
      admin: { listen: '127.0.0.1:9700', tokenFile: join(dir, 'etc', 'admin.token') },
      log: { level: 'info', modules: { ring: 'debug' } },
    });
    // Compile-time checks of InferConfig: defaulted keys are present, others optional, enums narrow.
    const role: 'peer' | 'bootstrap' = config.role;
    const optional: string | undefined = config.publicAddress;
    const quota: number = config.quota;
    const level: 'error' | 'warn' | 'info' | 'debug' | 'trace' | undefined = config.log.modules.ring;
    const listen: string = config.admin.listen;
    // @ts-expect-error a key the schema does not have
    expect(config.nonexistent).toBeUndefined();
    // @ts-expect-error publicAddress has no default, so it may be absent
    const notGuaranteed: string = config.publicAddress;
    expect([role, optional, quota, level, listen, notGuaranteed]).toEqual(['peer', undefined, 5, 'debug', '127.0.0.1:9700', undefined]);
  });

  it('loads JSON with the same meaning', async () => {
    const path = file('peer.json', JSON.stringify({ name: 'peer-8', bootstraps: ['/ip4/127.0.0.1/tcp/4001'], dataDir: '/var/lib/ime', tls: false }));
    const config = await loadConfigFile(path, schema);
    expect(config.name).toBe('peer-8');
    expect(config.bootstraps).toEqual(['/ip4/127.0.0.1/tcp/4001']);
    expect(config.dataDir).toBe('/var/lib/ime');
    expect(config.tls).toBe(false);
    expect(config.admin.listen).toBe('127.0.0.1:9620');
  });

  it('treats an empty YAML value or section as absent', () => {
    const config = parseConfigText('name: p\npublicAddress:\nadmin:\n', 'yaml', schema, { baseDir: '/etc/ime' });
    expect(config.publicAddress).toBeUndefined();
    expect(config.admin.tokenFile).toBe('/etc/ime/admin.token');
  });

  it('E_CONFIG_UNKNOWN_KEY names the dotted key and suggests the closest known one', async () => {
    let err = await refusal(loadConfigFile(file('typo.yaml', 'name: p\nadmin:\n  lisen: 127.0.0.1:1\n'), schema));
    expect(err.code).toBe('E_CONFIG_UNKNOWN_KEY');
    expect(err.message).toContain('admin.lisen');
    expect(err.message).toContain('did you mean admin.listen?');
    expect(err.message).toContain('line 3');
    expect(err.message).toContain('typo.yaml');

    err = await refusal(() => parseConfigText('{"name":"p","listen":"x"}', 'json', schema));
    expect(err.code).toBe('E_CONFIG_UNKNOWN_KEY');
    expect(err.details?.suggestion).toBe('admin.listen');

    err = await refusal(() => parseConfigText('name: p\nlog:\n  Level: info\n', 'yaml', schema));
    expect(err.details?.suggestion).toBe('log.level');

    err = await refusal(() => parseConfigText('name: p\n__proto__: {}\n', 'yaml', schema));
    expect(err.code).toBe('E_CONFIG_UNKNOWN_KEY');

    err = await refusal(() => parseConfigText('name: p\nzzzzzzzzzzzz: 1\n', 'yaml', schema));
    expect(err.message).not.toContain('did you mean');
  });

  it('E_CONFIG_TYPE for values of the wrong type, without echoing them', () => {
    const cases: [string, string][] = [
      ['name: p\nquota: "5"\n', 'quota'],
      ['name: p\nquota: 1.5\n', 'quota'],
      ['name: p\ntls: yes\n', 'tls'],
      ['name: p\nbootstraps: /ip4/1.2.3.4\n', 'bootstraps'],
      ['name: p\nbootstraps: [1]\n', 'bootstraps.0'],
      ['name: p\nadmin: 5\n', 'admin'],
      ['name: p\nlog:\n  modules: [ring]\n', 'log.modules'],
      ['name: p\nlog:\n  modules:\n    ring: 3\n', 'log.modules.ring'],
      ['name: 12345\n', 'name'],
      ['- a\n- b\n', ''],
    ];
    for (const [text, key] of cases) {
      let err: ImeError | undefined;
      try {
        parseConfigText(text, 'yaml', schema);
      } catch (e) {
        err = e as ImeError;
      }
      expect(err?.code).toBe('E_CONFIG_TYPE');
      if (key !== '') expect(err?.details?.key).toBe(key);
    }
    expect(() => parseConfigText('{"name":"p","domain":"s3cr3t-looking","quota":"s3cr3t"}', 'json', schema)).toThrow(
      expect.objectContaining({ code: 'E_CONFIG_TYPE', message: expect.not.stringContaining('s3cr3t') as unknown }),
    );
  });

  it('E_CONFIG_MISSING for a required key', async () => {
    const err = await refusal(loadConfigFile(file('missing.yaml', 'quota: 1\n'), schema));
    expect(err.code).toBe('E_CONFIG_MISSING');
    expect(err.message).toContain('name');
    expect((await refusal(() => parseConfigText('', 'yaml', schema))).code).toBe('E_CONFIG_MISSING');
  });

  it('E_CONFIG_RANGE for out of range, not in the enum, not matching the pattern', () => {
    const cases: [string, string][] = [
      ['name: p\nquota: -1\n', 'quota'],
      ['name: p\nquota: 1000001\n', 'quota'],
      ['name: p\nrole: validator\n', 'role'],
      ['name: Peer_1\n', 'name'],
      ['name: p\nlog:\n  level: verbose\n', 'log.level'],
      ['name: p\nlog:\n  modules:\n    ring: loud\n', 'log.modules.ring'],
      ['name: p\ndataDir: ""\n', 'dataDir'],
    ];
    for (const [text, key] of cases) {
      expect(() => parseConfigText(text, 'yaml', schema)).toThrow(expect.objectContaining({ code: 'E_CONFIG_RANGE', details: expect.objectContaining({ key }) }));
    }
    expect(() => parseConfigText('name: p\nquota: 9999999\n', 'yaml', schema)).toThrow(/between 0 and 1000000/);
    expect(() => parseConfigText('name: p\nrole: validator\n', 'yaml', schema)).toThrow(/one of peer, bootstrap/);
  });

  it('E_CONFIG_SYNTAX with the line number, for YAML and JSON', () => {
    const yaml: [string, number][] = [
      ['name: p\nquota: [1,\n', 2],
      ['name: p\nname: q\n', 2],
      ['name: p\nadmin:\n  listen: x\n bad: 1\n', 4],
      ['name: p\ntag: !custom x\n', 2],
      ['a: 1\n---\nb: 2\n', 2],
    ];
    for (const [text, line] of yaml) {
      expect(() => parseConfigText(text, 'yaml', schema)).toThrow(expect.objectContaining({ code: 'E_CONFIG_SYNTAX', details: expect.objectContaining({ line }) }));
    }
    const json: [string, number][] = [
      ['{\n  "name": "p",\n  "quota": ,\n}', 3],
      ['{\n  "name": "p",\n}', 3],
      ['{\n  "name": "p"\n  "quota": 1\n}', 3],
      ['{"name": "p", "name": "q"}', 1],
      ['{\n"name": \'p\'}', 2],
      ['', 1],
      ['{"name": "p"} x', 1],
      ['{"name": "a\nb"}', 1],
    ];
    for (const [text, line] of json) {
      expect(() => parseConfigText(text, 'json', schema)).toThrow(expect.objectContaining({ code: 'E_CONFIG_SYNTAX', details: expect.objectContaining({ line }) }));
    }
    expect(() => parseConfigText('{"name":"p","password":"hunter2",}', 'json', schema)).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('hunter2') as unknown }),
    );
  });

  it('checks JSON exactly as JSON.parse accepts it', () => {
    const valid = ['0', '-1.5e+3', '"\\u00e9\\n"', '[]', '{}', '{"a":[1,{"b":null}],"c":true}', ' \n{"a" : false } \t'];
    for (const t of valid) expect(checkJsonText(t)).toBeUndefined();
    const invalid = ['01', '1.', '.5', '+1', '"\\x"', '[1,]', '{"a"}', 'tru', 'NaN', '"\u0001"', '[', '{"a":1', '[1 2]'];
    for (const t of invalid) {
      expect(checkJsonText(t)).toBeDefined();
      expect(() => JSON.parse(t)).toThrow();
    }
    expect(checkJsonText('['.repeat(100) + ']'.repeat(100))?.why).toBe('nested too deeply');
  });

  it('E_CONFIG_FILE for a missing, unreadable, oversized, non-UTF-8 or wrongly named file', async () => {
    const missing = join(dir, 'nope.yaml');
    let err = await refusal(loadConfigFile(missing, schema));
    expect(err.code).toBe('E_CONFIG_FILE');
    expect(err.message).toContain(missing);
    expect(err.message).toContain('no such file');

    err = await refusal(loadConfigFile(file('huge.yaml', `name: p\n#${'x'.repeat(MAX_CONFIG_BYTES)}\n`), schema));
    expect(err.code).toBe('E_CONFIG_FILE');
    expect(err.message).toMatch(/larger than/);

    err = await refusal(loadConfigFile(file('latin1.yaml', Buffer.from([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x20, 0xe9, 0x0a])), schema));
    expect(err.code).toBe('E_CONFIG_FILE');

    mkdirSync(join(dir, 'adir.yaml'), { recursive: true });
    expect((await refusal(loadConfigFile(join(dir, 'adir.yaml'), schema))).code).toBe('E_CONFIG_FILE');
    expect((await refusal(loadConfigFile(file('peer.toml', 'name = "p"'), schema))).code).toBe('E_CONFIG_FILE');
    expect(configFormatOf('a/B.YML')).toBe('yaml');
    expect(configFormatOf('b.json')).toBe('json');
  });

  it('accepts a byte-order mark and refuses alias bombs', () => {
    expect(parseConfigText('\uFEFFname: p\n', 'yaml', schema).name).toBe('p');
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    expect(() => parseConfigText(`${bomb.join('\n')}\n`, 'yaml', schema)).toThrow(expect.objectContaining({ code: 'E_CONFIG_SYNTAX' }));
  });

  it('renders a commented default YAML file that loads back to the defaults', () => {
    const text = renderDefaultConfig(schema, 'yaml', { header: 'IME peer configuration\n\nEdit and pass with --config.' });
    expect(text).toContain('# Storage quota in records.');
    expect(text).toContain('# (0–1000000)');
    expect(text).toContain('quota: 100000');
    expect(text).toContain('# publicAddress:');
    expect(text).toContain('name: peer-1');
    expect(text.startsWith('# IME peer configuration\n#\n# Edit')).toBe(true);
    const loaded = parseConfigText(text, 'yaml', schema, { baseDir: '/srv/ime' });
    expect(loaded).toEqual({
      name: 'peer-1',
      domain: 'acme.example',
      role: 'peer',
      dataDir: '/srv/ime/data',
      bootstraps: [],
      quota: 100_000,
      tls: true,
      admin: { listen: '127.0.0.1:9620', tokenFile: '/srv/ime/admin.token' },
      log: { level: 'info', modules: {} },
    });
    expect(parseConfigText(renderDefaultConfig(schema, 'json'), 'json', schema, { baseDir: '/srv/ime' })).toEqual(loaded);
  });

  it('renders awkward defaults so they load back unchanged', () => {
    const tricky = defineConfigSchema({
      a: { type: 'string', description: 'looks like a number', default: '08' },
      b: { type: 'string', description: 'looks like a boolean', default: 'yes' },
      c: { type: 'string', description: 'has a colon', default: 'a: b # not a comment' },
      d: { type: 'string', description: 'multi-line', default: 'line 1\nline 2\t"quoted"' },
      e: { type: 'string[]', description: 'list', default: ['x', '- y', ''] },
      f: { type: 'map', description: 'map', default: { 'key with space': 'v', 'null': 'true' } },
      g: { type: 'string', description: 'empty', default: '' },
      h: { type: 'integer', description: 'negative', default: -3 },
      i: { type: 'object', description: 'nested', fields: { j: { type: 'object', description: 'deeper', fields: { k: { type: 'boolean', description: 'flag', default: false } } } } },
    });
    const expected = { a: '08', b: 'yes', c: 'a: b # not a comment', d: 'line 1\nline 2\t"quoted"', e: ['x', '- y', ''], f: { 'key with space': 'v', null: 'true' }, g: '', h: -3, i: { j: { k: false } } };
    expect(parseConfigText(renderDefaultConfig(tricky, 'yaml'), 'yaml', tricky)).toEqual(expected);
    expect(parseConfigText(renderDefaultConfig(tricky, 'json'), 'json', tricky)).toEqual(expected);
  });

  it('renders a markdown reference of every key', () => {
    const md = renderConfigReference(schema, 'Peer (`ime peer start`)');
    const lines = md.split('\n');
    expect(lines[0]).toBe('### Peer (`ime peer start`)');
    expect(lines).toContain('| key | type | default | description |');
    expect(md).toContain('| `quota` | integer, 0–1000000 | `100000` | Storage quota in records. |');
    expect(md).toContain('| `admin.listen` | string | `127.0.0.1:9620` | host:port of the admin API. |');
    expect(md).toContain('| `name` | string, matching `[a-z][a-z0-9-]*` | *required*, e.g. `peer-1` |');
    expect(md).toContain('| `publicAddress` | string | — |');
    expect(md).toContain('| `role` | string, one of peer, bootstrap | `peer` |');
    expect(md).toContain('| `log.modules` |');
    expect(lines.filter((l) => l.startsWith('| `'))).toHaveLength(14);
  });

  it('refuses broken schemas when they are defined', () => {
    expect(() => defineConfigSchema({ a: { type: 'integer', description: 'x', min: 1, default: 0 } })).toThrow(/default of a/);
    expect(() => defineConfigSchema({ a: { type: 'string', description: 'x', required: true } })).toThrow(/example/);
    expect(() => defineConfigSchema({ a: { type: 'string', description: 'x', pattern: '(' } })).toThrow(/pattern/);
    expect(() => defineConfigSchema({ 'a.b': { type: 'string', description: 'x' } })).toThrow(/invalid key/);
    expect(() => defineConfigSchema({ a: { type: 'string', description: '' } })).toThrow(/description/);
  });

  it('resolves paths against the working directory by default', () => {
    expect(parseConfigText('name: p\n', 'yaml', schema).dataDir).toBe(resolve('data'));
  });
});
