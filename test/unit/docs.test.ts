import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { settings } from '../../lib/config.ts';

const root = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

describe('documentation matches the code', () => {
  it('lists every setting lib/config.ts reads', () => {
    const doc = read('docs/configuration.md');
    for (const name of Object.keys(settings))
      expect(doc, name).toMatch(new RegExp(`^\\| \`${name}\` +\\|`, 'm'));
  });

  it('states each setting default as lib/config.ts has it', () => {
    const doc = read('docs/configuration.md');
    for (const [name, schema] of Object.entries(settings)) {
      const cell = doc.match(new RegExp(`^\\| \`${name}\` +\\| ([^|]+?) +\\|`, 'm'))?.[1] ?? '';
      const parsed = schema.safeParse(undefined);
      if (!parsed.success) {
        expect(cell, name).toBe('(required)');
        continue;
      }
      const value = parsed.data;
      if (value === undefined) expect(cell, name).toMatch(/^(none|`none`|`\/[^`]*<stage>[^`]*`)$/);
      else expect(cell.replaceAll('`', ''), name).toBe(String(value));
    }
  });

  it('names only deploy parameters that serverless.yml declares, and all of them', () => {
    const doc = read('docs/deploy.md');
    const table = doc.slice(doc.indexOf('## Parameters'), doc.indexOf('## First deploy'));
    const documented = [...table.matchAll(/^\| `(\w+)` +\|/gm)].map((m) => m[1]).sort();
    // serverless.yml has CloudFormation tags (!Ref ...); only the params block matters here.
    const yml = read('serverless.yml');
    const params = yml.slice(yml.indexOf('\nparams:'), yml.indexOf('\npackage:'));
    const declared = Object.keys(
      (parse(params) as { params: { default: Record<string, unknown> } }).params.default,
    ).sort();
    expect(documented).toEqual(declared);
    for (const p of documented)
      expect(doc.slice(doc.indexOf('## First deploy')), p).not.toMatch(/--param (?!\w+=)/);
  });
});
