import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { DEFAULT_MIGRATIONS_DIR, loadMigrations } from '../../src/migrate.ts';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'bullpen-migrations-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadMigrations', () => {
  it('sorts by version and records name, file, checksum and text', async () => {
    await writeFile(path.join(dir, '010_later.sql'), 'select 10;');
    await writeFile(path.join(dir, '002_second.sql'), 'select 2;');
    await writeFile(path.join(dir, '001_first_one.sql'), 'select 1;');
    await mkdir(path.join(dir, 'not_a_file'));

    const migrations = await loadMigrations(dir);

    expect(migrations.map((m) => m.version)).toEqual([1, 2, 10]);
    expect(migrations[0]).toEqual({
      version: 1,
      name: 'first_one',
      file: '001_first_one.sql',
      checksum: createHash('sha256').update('select 1;').digest('hex'),
      sql: 'select 1;',
    });
  });

  it.each([
    ['1_ops.sql'],
    ['0001_ops.sql'],
    ['001-ops.sql'],
    ['001_Ops.sql'],
    ['001_ops.SQL'],
    ['001_.sql'],
    ['001_ops.sql.bak'],
    ['README.md'],
  ])('refuses a file named %s', async (file) => {
    await writeFile(path.join(dir, '001_ok.sql'), 'select 1;');
    await writeFile(path.join(dir, file), 'select 1;');

    const loading = loadMigrations(dir);

    await expect(loading).rejects.toBeInstanceOf(ConfigError);
    await expect(loading).rejects.toThrow(file);
  });

  it('refuses two files with the same version', async () => {
    await writeFile(path.join(dir, '001_a.sql'), 'select 1;');
    await writeFile(path.join(dir, '001_b.sql'), 'select 1;');

    await expect(loadMigrations(dir)).rejects.toThrow(/001_a\.sql.*001_b\.sql.*share version 001/);
  });

  it("loads the repository's sql/, starting at 001", async () => {
    const migrations = await loadMigrations(DEFAULT_MIGRATIONS_DIR);

    expect(migrations[0]?.file).toBe('001_ops.sql');
  });
});
