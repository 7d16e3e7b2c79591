/**
 * The nightly report in a real browser (issue 7): Debian's Chromium, driven by playwright-core,
 * loads /reports/ from the running HTTP app with basic credentials, follows the link to the
 * HTML report, finds the charts and saves a full-page screenshot to test-artifacts/report.png.
 */
import { existsSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOBS } from '../../jobs/index.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { createDb, type Sql } from '../../src/db.ts';
import { createHttpApp, startHttpServer, type HttpServer } from '../../src/http/app.ts';
import { formatBasicAuthorization } from '../../src/http/auth.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { closeQueues, createDefaultJobOptions, createQueues, type QueueMap } from '../../src/queues.ts';
import { createRedis, type Redis } from '../../src/redis.ts';
import { renderDailyReportHtml } from '../../src/reports/html.ts';
import { buildDailyReport, FIXTURE_REPORT_DATE } from '../fixtures/daily-report.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { TEST_REDIS_URL, cleanupPrefix, createTestPrefix } from '../helpers/redis.ts';

const CHROMIUM = '/usr/bin/chromium';
// The machine's network is closed: without these Chromium stalls on its own background requests.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const CREDENTIALS = { user: 'ops', password: 'correct horse: battery staple' };
const CHART_KINDS = ['equity', 'daily-pnl', 'pnl-by-hour'];

const prefix = createTestPrefix('report-browser');
const logger = createLogger({ level: 'silent', pretty: false });
const report = buildDailyReport();
let testDb: TestDatabase;
let reportsDir: string;
let config: Config;
let redis: Redis;
let db: Sql;
let queues: QueueMap;
let server: HttpServer;
let browser: Promise<Browser> | undefined;

beforeAll(async () => {
  testDb = await createTestDatabase();
  reportsDir = await mkdtemp(path.join(tmpdir(), 'bullpen-reports-'));
  // The files and row as the nightly-report job leaves them: absolute paths, linked by basename.
  const jsonPath = path.join(reportsDir, 'daily_20261120.json');
  const htmlPath = path.join(reportsDir, 'daily_20261120.html');
  await writeFile(jsonPath, JSON.stringify(report, null, 2));
  await writeFile(htmlPath, renderDailyReportHtml(report));
  // A dotfile and a temp file beside them must never be served.
  await writeFile(path.join(reportsDir, '.daily_20261120.html.1.2.tmp'), 'half-written');
  const summary = { has_trading: true, trades: report.firm.trades, net_pnl: report.firm.net_pnl };
  await testDb.sql`
    insert into ops.reports (report_date, kind, json_path, html_path, summary, generated_at)
    values (${FIXTURE_REPORT_DATE}, 'daily', ${jsonPath}, ${htmlPath}, ${testDb.sql.json(summary)}, ${report.generated_at}),
           ('2026-11-19', 'daily', ${path.join(reportsDir, 'daily_20261119.json')}, null, ${testDb.sql.json({ has_trading: false })}, '2026-11-19T23:55:00Z')`;

  config = loadConfig({
    BULLPEN_PREFIX: prefix,
    REDIS_URL: TEST_REDIS_URL,
    DATABASE_URL: testDb.url,
    BOARD_USER: CREDENTIALS.user,
    BOARD_PASSWORD: CREDENTIALS.password,
    REPORTS_DIR: reportsDir,
    LOG_LEVEL: 'silent',
  });
  redis = createRedis(config.redisUrl);
  db = createDb(testDb.url, { max: 2 });
  queues = createQueues(redis, config.prefix, createDefaultJobOptions({ attempts: 1, backoffMs: 100 }));
  const app = createHttpApp({
    config,
    logger,
    metrics: createMetrics(),
    queues,
    db,
    redis,
    credentials: CREDENTIALS,
    mode: 'full',
    definitions: JOBS,
    listSchedules: async () => [],
    beforeScrape: async () => {},
  });
  server = await startHttpServer(app, '127.0.0.1', 0);
});

afterAll(async () => {
  await (await browser?.catch(() => undefined))?.close();
  await server?.close();
  if (queues) await closeQueues(queues);
  await cleanupPrefix(TEST_REDIS_URL, prefix);
  await redis?.quit();
  await db?.end({ timeout: 5 });
  await testDb?.drop();
  if (reportsDir) await rm(reportsDir, { recursive: true, force: true });
});

/** Debian's Chromium, launched once; a missing binary fails the test that needs it (CI installs it). */
function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}; the report browser test needs it. Install it with:\n    apt-get install -y --no-install-recommends chromium\n(.ci/run installs it in CI)`);
  }
  browser ??= chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  return browser;
}

/** A browser context with the credentials, and every URL it requests. */
async function openContext(viewport?: { width: number; height: number }): Promise<{ context: BrowserContext; requested: string[] }> {
  const chromiumBrowser = await launchBrowser();
  // Sent after the server's 401 challenge, as a person's browser would, and only to the app.
  const httpCredentials = { username: CREDENTIALS.user, password: CREDENTIALS.password, origin: new URL(server.url).origin };
  const context = await chromiumBrowser.newContext({ httpCredentials, ...(viewport ? { viewport } : {}) });
  const requested: string[] = [];
  context.on('request', (request) => requested.push(request.url()));
  return { context, requested };
}

describe('/reports/ routes', () => {
  const auth = { authorization: formatBasicAuthorization(CREDENTIALS) };

  it('take the status page credentials', async () => {
    for (const file of ['/reports/', '/reports/daily_20261120.html', '/reports/daily_20261120.json']) {
      const response = await fetch(`${server.url}${file}`);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Basic realm="bullpen"');
    }
  });

  it('serve the two files of a report and nothing else of the directory', async () => {
    const html = await fetch(`${server.url}/reports/daily_20261120.html`, { headers: auth });
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    const json = await fetch(`${server.url}/reports/daily_20261120.json`, { headers: auth });
    expect(json.status).toBe(200);
    expect(((await json.json()) as { report_date: string }).report_date).toBe(FIXTURE_REPORT_DATE);

    for (const file of ['daily_20261119.json', 'daily_20261119.html', '.daily_20261120.html.1.2.tmp', '..%2Fpackage.json', '%2E%2E%2F%2E%2E%2Fetc%2Fpasswd', 'daily_20261120.html%00.json', 'daily_2026112.html']) {
      const response = await fetch(`${server.url}/reports/${file}`, { headers: auth });
      expect(response.status, file).toBe(404);
    }
  });

  it('redirect /reports to /reports/ so the relative links resolve', async () => {
    const response = await fetch(`${server.url}/reports`, { headers: auth, redirect: 'manual' });
    expect(response.status).toBe(301);
    expect(response.headers.get('location')).toBe('/reports/');
    // A request line naming another host (absolute form) is still sent to this one's /reports/.
    const { port } = new URL(server.url);
    const location = await new Promise<string | undefined>((resolve, reject) => {
      const request = httpRequest({ host: '127.0.0.1', port, path: 'http://evil.example/reports?x=1', headers: auth }, (res) => {
        res.resume();
        resolve(res.headers.location);
      });
      request.on('error', reject);
      request.end();
    });
    expect(location).toBe('/reports/?x=1');
  });

  it('serves the index with the reports\' Content-Security-Policy and nosniff', async () => {
    const response = await fetch(`${server.url}/reports/`, { headers: auth });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-security-policy')).toBe("default-src 'none'; style-src 'unsafe-inline'; img-src data:");
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  });
});

describe('the report in Chromium', () => {
  it('follows the index to the report, draws the three charts per section and fetches nothing off 127.0.0.1', async () => {
    const { context, requested } = await openContext({ width: 1280, height: 900 });
    try {
      const page = await context.newPage();
      const index = await page.goto(`${server.url}/reports/`);
      expect(index?.status()).toBe(200);
      // Newest first; the report without HTML links only its JSON.
      expect(await page.locator('tbody tr td:first-child').allInnerTexts()).toEqual(['2026-11-20', '2026-11-19']);

      await Promise.all([page.waitForURL(`${server.url}/reports/daily_20261120.html`), page.getByRole('link', { name: FIXTURE_REPORT_DATE }).click()]);
      await expect.poll(() => page.title()).toBe(`bullpen daily report ${FIXTURE_REPORT_DATE}`);

      const sections = [report.firm, ...report.accounts];
      for (const kind of CHART_KINDS) {
        const charts = await page.locator(`svg[data-chart="${kind}"]`).all();
        expect(charts, kind).toHaveLength(sections.length);
        for (const [i, chart] of charts.entries()) {
          const box = await chart.boundingBox();
          expect(box?.width, kind).toBeGreaterThan(0);
          expect(box?.height, kind).toBeGreaterThan(0);
          expect(await chart.locator('xpath=ancestor::figure/figcaption').count(), kind).toBe(1);
          // The fixture's second account did not trade: its hour chart says so instead of drawing bars.
          const drawn = await chart.locator('path, rect').count();
          if (kind === 'pnl-by-hour' && sections[i]!.pnl_by_hour.length === 0) {
            expect(drawn, kind).toBe(0);
            expect(await chart.locator('text.empty').textContent()).toBe('No trades on this date');
          } else {
            expect(drawn, `${kind} #${i}`).toBeGreaterThan(0);
          }
        }
      }
      // The firm's bars: 30 days, each with a tooltip title.
      expect(await page.locator('svg[data-chart="daily-pnl"]').first().locator('rect > title').count()).toBe(30);

      await mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'report.png'), fullPage: true });

      expect(requested.length).toBeGreaterThanOrEqual(2);
      const origin = new URL(server.url).origin;
      expect(requested.filter((url) => new URL(url).origin !== origin)).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('fits a 375 px phone screen without horizontal scrolling', async () => {
    const { context } = await openContext({ width: 375, height: 812 });
    try {
      const page = await context.newPage();
      for (const url of [`${server.url}/reports/daily_20261120.html`, `${server.url}/reports/`]) {
        expect((await page.goto(url))?.status()).toBe(200);
        const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
        expect(scrollWidth, url).toBeLessThanOrEqual(375 + 1);
      }
      await page.goto(`${server.url}/reports/daily_20261120.html`);
      await page.screenshot({ path: path.join(ARTIFACTS, 'report-phone.png'), fullPage: true });
    } finally {
      await context.close();
    }
  });
});
