/**
 * The status page in a real browser (issue 8): Debian's Chromium, driven by playwright-core,
 * logs in to the running HTTP app, sees a failed nightly-report partition in the grid, clicks
 * its re-run button, sees the cell turn to running and, once workers start, to done, all
 * without a reload. Screenshots go to test-artifacts/status-*.png.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOBS } from '../../jobs/index.ts';
import { nightlyReport } from '../../jobs/nightly-report.ts';
import { createHttpApp, startHttpServer, type HttpServer } from '../../src/http/app.ts';
import { formatBasicAuthorization } from '../../src/http/auth.ts';
import { createLogger } from '../../src/logger.ts';
import { createJobId } from '../../src/queues.ts';
import { listScheduleStatus, registerSchedules, resolveSchedules } from '../../src/scheduler.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

const CHROMIUM = '/usr/bin/chromium';
// The machine's network is closed: without these Chromium stalls on its own background requests.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const CREDENTIALS = { user: 'ops', password: 'correct horse: battery staple' };
const JOB = 'nightly-report';

const logger = createLogger({ level: 'silent', pretty: false });
let runtime: TestRuntime;
let reportsDir: string;
let server: HttpServer;
let browser: Promise<Browser> | undefined;
let failedDate: string;
let doneDate: string;

interface GridJson {
  jobs: { job: string; cells: { date: string; state: string }[] }[];
}

beforeAll(async () => {
  reportsDir = await mkdtemp(path.join(tmpdir(), 'bullpen-status-browser-'));
  // Workers only for nightly-report (the reports queue); the page shows every job's row.
  runtime = await createTestRuntime('status-browser', [nightlyReport], { REPORTS_DIR: reportsDir });
  const schedules = resolveSchedules(JOBS, runtime.config);
  await registerSchedules(runtime.queues, schedules, logger);
  const catchupRuntime = { db: runtime.db.sql, queues: runtime.queues, logger, metrics: runtime.metrics };
  const app = createHttpApp({
    config: runtime.config,
    logger,
    metrics: runtime.metrics,
    queues: runtime.queues,
    db: runtime.db.sql,
    redis: runtime.redis,
    credentials: CREDENTIALS,
    mode: 'full',
    definitions: JOBS,
    listSchedules: () => listScheduleStatus(catchupRuntime, schedules, new Date()),
    beforeScrape: async () => {},
  });
  server = await startHttpServer(app, '127.0.0.1', 0);

  // Pick dates from the grid's own window: the newest expected one fails, the one before it is done.
  const response = await fetch(`${server.url}/api/v1/partitions`, { headers: { authorization: formatBasicAuthorization(CREDENTIALS) } });
  expect(response.status).toBe(200);
  const grid = (await response.json()) as GridJson;
  const expected = grid.jobs.find((j) => j.job === JOB)!.cells.filter((c) => c.state !== 'not_expected');
  failedDate = expected[expected.length - 2]!.date;
  doneDate = expected[expected.length - 3]!.date;
  const sql = runtime.db.sql;
  await sql`
    insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, started_at, finished_at, error, summary)
    values (${JOB}, ${failedDate}, 'reports', ${createJobId(JOB, failedDate)}, 'failed', 3, 1, now() - interval '3 minutes', now() - interval '2 minutes',
            'connect ECONNREFUSED 127.0.0.1:5432', null),
           (${JOB}, ${doneDate}, 'reports', ${createJobId(JOB, doneDate)}, 'succeeded', 1, 1, now() - interval '1 day', now() - interval '1 day',
            null, ${sql.json({ date: doneDate })})`;
});

afterAll(async () => {
  await (await browser?.catch(() => undefined))?.close();
  await server?.close();
  await runtime?.close();
  if (reportsDir) await rm(reportsDir, { recursive: true, force: true });
});

/** Debian's Chromium, launched once; a missing binary fails the test that needs it (CI installs it). */
function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}; the status browser test needs it. Install it with:\n    apt-get install -y --no-install-recommends chromium\n(.ci/run installs it in CI)`);
  }
  browser ??= chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  return browser;
}

/** A browser context with the credentials, and every URL it requests. */
async function openContext(viewport: { width: number; height: number }): Promise<{ context: BrowserContext; requested: string[] }> {
  const chromiumBrowser = await launchBrowser();
  // Sent after the server's 401 challenge, as a person's browser would, and only to the app.
  const httpCredentials = { username: CREDENTIALS.user, password: CREDENTIALS.password, origin: new URL(server.url).origin };
  const context = await chromiumBrowser.newContext({ httpCredentials, viewport });
  const requested: string[] = [];
  context.on('request', (request) => requested.push(request.url()));
  return { context, requested };
}

describe('the status page in Chromium', () => {
  it('re-runs a failed partition from the grid and shows it turn running, then done, without a reload', { timeout: 120_000 }, async () => {
    const { context, requested } = await openContext({ width: 1400, height: 1000 });
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      page.on('console', (message) => {
        if (message.type() === 'error') errors.push(message.text());
      });
      expect((await page.goto(`${server.url}/`))?.status()).toBe(200);
      await expect.poll(() => page.title()).toBe('bullpen status');
      // Set once: a full reload would drop it.
      await page.evaluate(() => Object.assign(window, { notReloaded: true }));

      const cell = (state?: string) => page.locator(`td[data-job="${JOB}"][data-date="${failedDate}"]${state ? `[data-state="${state}"]` : ''}`);
      await cell('failed').waitFor();
      expect(await page.locator(`td[data-job="${JOB}"][data-date="${doneDate}"]`).getAttribute('data-state')).toBe('done');
      expect(await cell().getAttribute('title')).toContain('ECONNREFUSED');
      expect(await cell().locator('a').getAttribute('href')).toBe(`/admin/queues/queue/reports/${encodeURIComponent(createJobId(JOB, failedDate))}`);
      expect(await page.locator('tr[data-schedule="nightly-report"]').count()).toBe(1);
      // Every partitioned job has a row, with one cell per date of the header.
      const dates = await page.locator('table.grid thead th.date').count();
      expect(dates).toBeGreaterThanOrEqual(20);
      expect(await page.locator(`tr[data-row="${JOB}"] td.cell`).count()).toBe(dates);
      await mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'status-failed.png'), fullPage: true });

      // The script's first refresh draws the same grid the server rendered (its copy of the markup has not drifted).
      const updatedAt = () => page.locator('#updated').getAttribute('datetime');
      const serverGrid = await page.locator('#grid-body').innerHTML();
      const served = await updatedAt();
      await expect.poll(updatedAt, { timeout: 15_000 }).not.toBe(served);
      expect(await page.locator('#grid-body').innerHTML()).toBe(serverGrid);

      const beforeClick = await updatedAt();
      const [rerun] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith('/api/v1/partitions/rerun') && r.request().method() === 'POST'),
        cell().getByRole('button', { name: `re-run` }).click(),
      ]);
      expect(rerun.status()).toBe(202);
      expect(rerun.request().headers()['x-csrf-token']).toBeTruthy();
      await cell('running').waitFor();
      await expect.poll(() => page.locator('#notice').textContent()).toContain('queued');
      // Exactly one job, under the partition's deterministic id, waits for a worker.
      const reports = runtime.queues.get('reports')!;
      expect((await reports.getJobs(['waiting', 'prioritized'], 0, -1)).map((j) => j.id)).toEqual([createJobId(JOB, failedDate)]);
      // Still running once the page has refreshed from the APIs: the job is queued, not yet claimed.
      await expect.poll(updatedAt).not.toBe(beforeClick);
      expect(await cell().getAttribute('data-state')).toBe('running');
      expect(await page.locator('#grid-body > p.meta').textContent()).toMatch(/0 failed · \d+ missing · 1 running/);
      await page.screenshot({ path: path.join(ARTIFACTS, 'status-running.png'), fullPage: true });

      runtime.startWorkers();
      await cell('done').waitFor({ timeout: 60_000 });
      expect(await cell().locator('button').count()).toBe(0);
      const row = await runtime.db.sql<{ status: string; run_count: number }[]>`select status, run_count from ops.job_runs where job = ${JOB} and partition = ${failedDate}`;
      expect(row).toEqual([{ status: 'succeeded', run_count: 2 }]);
      expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
      await page.screenshot({ path: path.join(ARTIFACTS, 'status-done.png'), fullPage: true });

      expect(errors).toEqual([]);
      const origin = new URL(server.url).origin;
      expect(requested.filter((url) => new URL(url).origin !== origin)).toEqual([]);
      expect(requested.filter((url) => new URL(url).pathname === '/')).toHaveLength(1);
    } finally {
      await context.close();
    }
  });

  it('fits a 375 px phone screen: the grid scrolls inside its box, newest dates in view', async () => {
    const { context } = await openContext({ width: 375, height: 812 });
    try {
      const page = await context.newPage();
      expect((await page.goto(`${server.url}/`))?.status()).toBe(200);
      await page.locator('table.grid').waitFor();
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375 + 1);
      const wrap = page.locator('#grid-body .grid-wrap');
      const scrolled = await wrap.evaluate((el) => ({ left: el.scrollLeft, max: el.scrollWidth - el.clientWidth }));
      expect(scrolled.max).toBeGreaterThan(0);
      expect(scrolled.left).toBeGreaterThanOrEqual(scrolled.max - 1);
      await page.screenshot({ path: path.join(ARTIFACTS, 'status-phone.png'), fullPage: true });
    } finally {
      await context.close();
    }
  });
});
