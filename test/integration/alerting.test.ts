/**
 * The shipped alerting: ops/prometheus/alerts.yml and ops/grafana/bullpen-dashboard.json.
 * - structure: every rule has alert, expr, for, a severity label, a summary and a description;
 * - every metric an alert or a dashboard query uses is one bullpen exports (createMetrics()'s
 *   registry, histogram series, `up`), with label names that metric has, and a real /metrics
 *   (startApp, role web) serves them, the scrape-time gauges with values;
 * - a queue paused on purpose holds the lag and deadline alerts of its schedules and shows in
 *   bullpen_queue_paused / bullpen_schedule_paused, which BullpenQueuePaused reads after 3 hours;
 * - with promtool (Debian's `prometheus` package, /usr/bin/promtool): `promtool check rules`,
 *   and `promtool test rules` on series that must and must not fire each alert. Without it
 *   those tests are skipped and say so; the YAML checks above still run.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { schedulePeriodMs } from '../../src/cron.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/processes.ts';
import { TEST_REDIS_URL, cleanupPrefix, createTestPrefix } from '../helpers/redis.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const RULES_FILE = path.join(ROOT, 'ops/prometheus/alerts.yml');
const DASHBOARD_FILE = path.join(ROOT, 'ops/grafana/bullpen-dashboard.json');
const PROMTOOL = process.env.PROMTOOL ?? '/usr/bin/promtool';
const HAS_PROMTOOL = fs.existsSync(PROMTOOL);
const SEVERITIES = ['critical', 'warning', 'info'];
/** The alerts the issue asks for, plus the process checks. */
const EXPECTED_ALERTS = [
  'BullpenJobFailed',
  'BullpenBackfillChunksFailing',
  'BullpenScheduleLagging',
  'BullpenDeadlineMissed',
  'BullpenQueueDepthGrowing',
  'BullpenQueuePaused',
  'BullpenEtlRejectSpike',
  'BullpenEnrichmentStale',
  'BullpenDown',
  'BullpenAbsent',
];

interface Rule {
  alert?: unknown;
  record?: unknown;
  expr?: unknown;
  for?: unknown;
  labels?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}

const ruleFile = parse(fs.readFileSync(RULES_FILE, 'utf8')) as RuleFile;
const rules = ruleFile.groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(fs.readFileSync(DASHBOARD_FILE, 'utf8')) as Record<string, unknown>;

/** Labels Prometheus adds to every scraped series; a scraped `job` label arrives as `exported_job`. */
const TARGET_LABELS = ['job', 'instance'];

/** Metric name → its label names as Prometheus stores them, from the registry bullpen serves. */
function exportedMetrics(): Map<string, Set<string>> {
  const registry = createMetrics().registry;
  const exported = new Map<string, Set<string>>([['up', new Set(TARGET_LABELS)]]);
  for (const metric of registry.getMetricsAsArray() as unknown as { name: string; type: string; labelNames?: string[] }[]) {
    const { name, type } = metric;
    const labels = new Set([...TARGET_LABELS, ...(metric.labelNames ?? []).map((l) => (l === 'job' ? 'exported_job' : l))]);
    exported.set(name, labels);
    if (String(type) === 'histogram') {
      exported.set(`${name}_bucket`, new Set([...labels, 'le']));
      exported.set(`${name}_sum`, labels);
      exported.set(`${name}_count`, labels);
    }
  }
  return exported;
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'inf', 'nan']);

/** Metric names and label names a PromQL expression (or a Grafana query) refers to. Enough for our own rules, not a parser. */
function promqlReferences(expr: string): { metrics: Set<string>; labels: Set<string>; selectors: { metric: string; labels: string[] }[] } {
  const labels = new Set<string>();
  const selectors: { metric: string; labels: string[] }[] = [];
  let rest = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  // label_values(metric, label) in Grafana variables.
  rest = rest.replace(/label_values\(\s*([^,)]*?)\s*,\s*(\w+)\s*\)/g, (_m, metric: string, label: string) => {
    labels.add(label);
    return ` ${metric} `;
  });
  rest = rest.replace(/([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}/g, (_m, metric: string | undefined, matchers: string) => {
    const names = [...matchers.matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1] as string);
    names.forEach((n) => labels.add(n));
    if (metric) selectors.push({ metric, labels: names });
    return metric ? ` ${metric} ` : ' ';
  });
  rest = rest.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_m, _k, list: string) => {
    list
      .split(',')
      .map((l) => l.trim())
      .filter(Boolean)
      .forEach((l) => labels.add(l));
    return ' ';
  });
  rest = rest.replace(/\[[^\]]*\]/g, ' ');
  const metrics = new Set<string>();
  for (const m of rest.matchAll(/(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    const name = m[1] as string;
    if (m[2] || KEYWORDS.has(name.toLowerCase())) continue; // a function or an aggregation
    metrics.add(name);
  }
  for (const s of selectors) metrics.add(s.metric);
  return { metrics, labels, selectors };
}

/** Every query of the dashboard: panel targets (rows' nested panels too) and template variables. */
function dashboardQueries(): { where: string; expr: string }[] {
  const queries: { where: string; expr: string }[] = [];
  const walk = (panels: unknown): void => {
    for (const panel of (panels ?? []) as { title?: string; targets?: { expr?: string }[]; panels?: unknown }[]) {
      for (const target of panel.targets ?? []) if (target.expr) queries.push({ where: `panel "${panel.title}"`, expr: target.expr });
      walk(panel.panels);
    }
  };
  walk(dashboard.panels);
  const variables = ((dashboard.templating as { list?: { name: string; query?: unknown }[] } | undefined)?.list ?? []).filter((v) => v.query);
  for (const v of variables) {
    const query = typeof v.query === 'string' ? v.query : (v.query as { query?: string }).query;
    if (query) queries.push({ where: `variable $${v.name}`, expr: query });
  }
  return queries;
}

/** Checks an expression's metrics exist and its label names belong to the metrics it selects. */
function unknownReferences(expr: string, exported: Map<string, Set<string>>): string[] {
  const refs = promqlReferences(expr);
  const problems: string[] = [];
  const known = new Set<string>();
  for (const metric of refs.metrics) {
    const labels = exported.get(metric);
    if (!labels) problems.push(`metric ${metric} is not exported`);
    else labels.forEach((l) => known.add(l));
  }
  for (const s of refs.selectors) {
    for (const label of s.labels) if (exported.get(s.metric) && !exported.get(s.metric)?.has(label)) problems.push(`${s.metric} has no label ${label}`);
  }
  for (const label of refs.labels) if (!known.has(label)) problems.push(`label ${label} belongs to none of ${[...refs.metrics].join(', ')}`);
  return problems;
}

describe('alert rules (YAML checks)', () => {
  it('parses as groups of rules, each with alert, expr, for, a severity label, a summary and a description', () => {
    const exported = exportedMetrics();
    expect(Array.isArray(ruleFile.groups) && ruleFile.groups.length > 0).toBe(true);
    for (const group of ruleFile.groups) {
      expect(typeof group.name).toBe('string');
      expect(group.rules.length, group.name).toBeGreaterThan(0);
    }
    for (const rule of rules) {
      const name = String(rule.alert);
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^[A-Z][A-Za-z0-9]+$/);
      expect(typeof rule.expr === 'string' && rule.expr.trim().length > 0, name).toBe(true);
      expect(rule.for, name).toMatch(/^\d+[smhd]$/);
      expect(SEVERITIES, name).toContain(rule.labels?.severity);
      expect(typeof rule.annotations?.summary === 'string' && rule.annotations.summary.length > 0, name).toBe(true);
      expect(typeof rule.annotations?.description === 'string' && rule.annotations.description.length > 0, name).toBe(true);
      // Templates refer to labels the alert has: an aggregation keeps its `by` labels; a bare
      // selection keeps its metric's (target labels included).
      const expr = String(rule.expr);
      const aggregated = /\b(sum|min|max|avg|count|topk|bottomk|quantile|stddev|stdvar|group)\s*(\(|by\b|without\b)/.test(expr);
      const kept = aggregated ? promqlReferences(expr).labels : new Set([...promqlReferences(expr).metrics].flatMap((m) => [...(exported.get(m) ?? [])]));
      const templated = [...`${String(rule.annotations?.summary)} ${String(rule.annotations?.description)}`.matchAll(/\$labels\.(\w+)/g)].map((m) => m[1] as string);
      for (const label of templated) expect(kept.has(label), `${name} templates $labels.${label}`).toBe(true);
    }
    const names = rules.map((r) => String(r.alert));
    expect(new Set(names).size, 'alert names are unique').toBe(names.length);
    expect([...names].sort()).toEqual([...EXPECTED_ALERTS].sort());
  });

  it('uses only metrics bullpen exports, with their label names', () => {
    const exported = exportedMetrics();
    const problems = rules.flatMap((r) => unknownReferences(String(r.expr), exported).map((p) => `${String(r.alert)}: ${p}`));
    expect(problems).toEqual([]);
    // The reference finder itself: it sees the metrics and labels of a real expression.
    const sample = promqlReferences('sum by (queue, exported_job) (increase(bullpen_jobs_total{outcome="failed"}[15m])) > 0 unless up offset 15m');
    expect([...sample.metrics].sort()).toEqual(['bullpen_jobs_total', 'up']);
    expect([...sample.labels].sort()).toEqual(['exported_job', 'outcome', 'queue']);
    expect(unknownReferences('rate(bullpen_nope_total{job="x"}[5m]) and bullpen_jobs_total{stage="x"}', exported)).toEqual([
      'metric bullpen_nope_total is not exported',
      'bullpen_jobs_total has no label stage',
      'label stage belongs to none of bullpen_nope_total, bullpen_jobs_total',
    ]);
  });

  it('leaves schedules on a paused queue out of the lag and deadline alerts, and keeps a long pause in view', () => {
    // Without promtool this is what can be checked; promtool test rules below evaluates them.
    const rule = (name: string) => rules.find((r) => r.alert === name)!;
    for (const name of ['BullpenScheduleLagging', 'BullpenDeadlineMissed']) {
      expect(String(rule(name).expr), name).toMatch(/\)\s*unless on \(schedule\) \(max by \(schedule\) \(bullpen_schedule_paused\) == 1\)\s*$/);
    }
    const paused = rule('BullpenQueuePaused');
    expect([...promqlReferences(String(paused.expr)).metrics]).toEqual(['bullpen_queue_paused']);
    expect(paused.labels?.severity).toBe('info');
    expect(paused.for).toMatch(/^[1-9]\d*h$/);
  });
});

describe('Grafana dashboard', () => {
  it('is an importable dashboard on a ${DS_PROMETHEUS} input with the panels the desk needs', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
    const panels = (dashboard.panels as { id: number; type: string; title: string; gridPos: unknown; datasource?: { uid?: string } }[]).filter((p) => p.type !== 'row');
    for (const panel of panels) {
      expect(panel.datasource?.uid, panel.title).toBe('${DS_PROMETHEUS}');
      expect(panel.gridPos, panel.title).toBeDefined();
    }
    const ids = (dashboard.panels as { id: number }[]).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const text = JSON.stringify(dashboard);
    for (const metric of [
      'bullpen_jobs_total',
      'bullpen_job_duration_seconds_bucket',
      'bullpen_queue_depth',
      'bullpen_schedule_lag_seconds',
      'bullpen_etl_rows_total',
      'bullpen_backfill_chunks_total',
      'bullpen_enrichment_symbols',
      'analytics_rollups_built_total',
      'bullpen_deadline_missed',
    ]) {
      expect(text, metric).toContain(metric);
    }
    expect(text).toContain('histogram_quantile(0.5,');
    expect(text).toContain('histogram_quantile(0.95,');
  });

  it('queries only metrics bullpen exports, with their label names', () => {
    const exported = exportedMetrics();
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(10);
    // Grafana's own variables ($__rate_interval, $queue) are not metrics.
    const problems = queries.flatMap((q) => unknownReferences(q.expr, exported).map((p) => `${q.where}: ${p}`));
    expect(problems).toEqual([]);
  });
});

describe('a real /metrics', () => {
  const prefix = createTestPrefix('alerting');
  let testDb: TestDatabase;
  let app: App;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    const day = 24 * 3600 * 1000;
    const now = Date.now();
    const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    // Crypto (every UTC day is a session), so the derived statuses do not depend on the weekday.
    const symbols: { symbol: string; stored: string; latest: number | null; quality: number | null }[] = [
      { symbol: 'BTC-USD', stored: 'healthy', latest: now, quality: 0.95 },
      { symbol: 'XRP-USD', stored: 'healthy', latest: now - 2 * day, quality: 0.95 }, // 1 session behind
      { symbol: 'ETH-USD', stored: 'healthy', latest: now - 10 * day, quality: 0.95 }, // stored healthy, stale by now
      { symbol: 'DOGE-USD', stored: 'healthy', latest: now, quality: 0.5 }, // stale by quality
      { symbol: 'SOL-USD', stored: 'error', latest: now, quality: 0.95 },
      { symbol: 'ADA-USD', stored: 'not_enriched', latest: null, quality: null },
    ];
    for (const s of symbols) {
      await testDb.sql`
        insert into enrichment.status (symbol, asset_class, status, latest_bar_ts)
        values (${s.symbol}, 'crypto', ${s.stored}, ${s.latest === null ? null : new Date(s.latest)})`;
      if (s.quality !== null && s.latest !== null) {
        await testDb.sql`
          insert into enrichment.data_quality_metrics (symbol, timeframe, metric_date, total_records, validated_records, validation_rate,
            gaps_detected, anomalies_detected, avg_quality_score, data_completeness, features_rate, freshness)
          values (${s.symbol}, '1d', ${isoDay(s.latest)}, 1, 1, 100, 0, 0, ${s.quality}, 1, 1, 1)`;
      }
    }
    const config = loadConfig({
      DATABASE_URL: testDb.url,
      REDIS_URL: TEST_REDIS_URL,
      BULLPEN_PREFIX: prefix,
      PORT: '0',
      HOST: '127.0.0.1',
      BOARD_USER: 'ops',
      BOARD_PASSWORD: 'alerting-test-password',
      LOG_LEVEL: 'silent',
    });
    app = await startApp(config, { role: 'web', logger: createLogger({ level: 'silent', pretty: false }) });
  });

  afterAll(async () => {
    await app?.stop();
    await cleanupPrefix(TEST_REDIS_URL, prefix);
    await testDb?.drop();
  });

  it('serves every metric the alerts and the dashboard use, the scrape-time gauges with values', async () => {
    const before = new Date();
    const response = await fetch(`${app.url}/metrics`);
    expect(response.status).toBe(200);
    const text = await response.text();
    const served = new Set([...text.matchAll(/^# TYPE (\S+) (\w+)$/gm)].flatMap((m) => (m[2] === 'histogram' ? [`${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`] : [m[1] as string])));
    const used = new Set([...rules.map((r) => String(r.expr)), ...dashboardQueries().map((q) => q.expr)].flatMap((e) => [...promqlReferences(e).metrics]));
    used.delete('up'); // Prometheus' own, per target
    expect([...used].filter((m) => !served.has(m))).toEqual([]);

    // Derived now, from the stored facts and the clock: ETH-USD was stored healthy but is stale.
    for (const [status, n] of Object.entries({ healthy: 1, warning: 1, stale: 2, error: 1, not_enriched: 1 })) {
      expect(text).toContain(`bullpen_enrichment_symbols{status="${status}"} ${n}`);
    }
    // The interval the lag alert compares with: the gap between each schedule's next two ticks
    // (as computed before and after the scrape, in case a tick passed meanwhile).
    expect(text).toContain('bullpen_schedule_interval_seconds{schedule="trade-etl"} 300');
    expect(app.services.schedules.length).toBeGreaterThan(0);
    for (const s of app.services.schedules) {
      const served = Number(new RegExp(`^bullpen_schedule_interval_seconds\\{schedule="${s.id}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
      expect([before, new Date()].map((at) => schedulePeriodMs(s.cron, s.tz, at) / 1000), s.id).toContain(served);
      expect(text, s.id).toMatch(new RegExp(`^bullpen_schedule_lag_seconds\\{schedule="${s.id}"\\} \\d+$`, 'm'));
    }

    if (HAS_PROMTOOL) {
      // bullpen's own metrics pass Prometheus' linter (prom-client's default nodejs_* gauges
      // named *_total do not, and are not ours).
      const ours = text
        .split('\n')
        .filter((line) => !/^(# (HELP|TYPE) )?(nodejs_|process_)/.test(line))
        .join('\n');
      expect(ours).toContain('# TYPE bullpen_jobs_total counter');
      const lint = execFileSync(PROMTOOL, ['check', 'metrics'], { input: ours, encoding: 'utf8' });
      expect(lint.trim()).toBe('');
    }
  });

  it('shows a paused queue, and each schedule on it, while it is paused', async () => {
    const scrape = async () => (await fetch(`${app.url}/metrics`)).text();
    const pauseLines = (text: string) => text.split('\n').filter((line) => /^bullpen_(queue|schedule)_paused\{/.test(line)).join('\n');
    const reports = app.services.queues.get('reports')!;
    await reports.pause();
    try {
      // The schedule listing behind /metrics may be a second old: scrape until it has seen the pause.
      let text = '';
      await waitFor(async () => (text = await scrape()).includes('bullpen_schedule_paused{schedule="nightly-report"} 1'), 10_000, () => `a scrape showing the pause:\n${pauseLines(text)}`);
      expect(text).toContain('bullpen_queue_paused{queue="reports"} 1');
      expect(text).toContain('bullpen_queue_paused{queue="etl"} 0');
      expect(text).toContain('bullpen_schedule_paused{schedule="trade-etl"} 0');
    } finally {
      await reports.resume();
    }
    let text = '';
    await waitFor(async () => (text = await scrape()).includes('bullpen_schedule_paused{schedule="nightly-report"} 0'), 10_000, () => `a scrape showing the resume:\n${pauseLines(text)}`);
    expect(text).toContain('bullpen_queue_paused{queue="reports"} 0');
  });
});

/** One `promtool test rules` case: input series, and per eval time the alerts expected (labels only). */
function promtoolTests(rulesPath: string): unknown {
  const t = (labels: string, values: string) => ({ series: labels, values });
  const target = 'job="bullpen"';
  const w1 = `${target},instance="w1:3000"`;
  const w2 = `${target},instance="w2:3000"`;
  const alert = (severity: string, labels: Record<string, string> = {}) => ({ exp_labels: { severity, ...labels } });
  return {
    rule_files: [rulesPath],
    evaluation_interval: '1m',
    tests: [
      {
        interval: '1m',
        input_series: [
          // A job that fails for good at 21m on a process running all along...
          t(`bullpen_jobs_total{${w1},queue="etl",exported_job="trade-etl",outcome="failed"}`, '0x20 1x40'),
          // ...one whose first failure is the series' first sample (a process started at 21m)...
          t(`bullpen_jobs_total{${w2},queue="reports",exported_job="nightly-report",outcome="failed"}`, '_x20 1x40'),
          // ...and attempts that will be retried, which do not page.
          t(`bullpen_jobs_total{${w1},queue="enrichment",exported_job="enrichment-daily",outcome="retrying"}`, '0+1x60'),
          t(`bullpen_backfill_chunks_total{${w1},outcome="failed"}`, '0x10 2x50'),
          t(`bullpen_backfill_chunks_total{${w1},outcome="stored"}`, '0+5x60'),
          // Lag over twice the interval from 15m on; both processes report the same gauge.
          t(`bullpen_schedule_lag_seconds{${w1},schedule="trade-etl"}`, '0x10 400+60x50'),
          t(`bullpen_schedule_lag_seconds{${w2},schedule="trade-etl"}`, '0x10 400+60x50'),
          t(`bullpen_schedule_interval_seconds{${w1},schedule="trade-etl"}`, '300x60'),
          t(`bullpen_schedule_interval_seconds{${w2},schedule="trade-etl"}`, '300x60'),
          t(`bullpen_schedule_lag_seconds{${w1},schedule="nightly-report"}`, '3600x60'),
          t(`bullpen_schedule_interval_seconds{${w1},schedule="nightly-report"}`, '86400x60'),
          t(`bullpen_deadline_missed{${w1},schedule="nightly-report"}`, '0x10 1x50'),
          t(`bullpen_deadline_missed{${w1},schedule="build-rollups"}`, '0x60'),
          // Waiting jobs: rising past 100; high but flat; a drained burst; paused.
          t(`bullpen_queue_depth{${w1},queue="enrichment",state="waiting"}`, '0+10x60'),
          t(`bullpen_queue_depth{${w1},queue="etl",state="waiting"}`, '500x60'),
          t(`bullpen_queue_depth{${w1},queue="rs",state="waiting"}`, '2000-50x40'),
          t(`bullpen_queue_depth{${w1},queue="reports",state="paused"}`, '0+10x60'),
          t(`bullpen_etl_rows_total{${w1},stage="extracted"}`, '0+1000x60'),
          t(`bullpen_etl_rows_total{${w1},stage="rejected"}`, '0+100x60'),
          t(`bullpen_enrichment_symbols{${w1},status="stale"}`, '3x90'),
          t(`bullpen_enrichment_symbols{${w1},status="error"}`, '0x90'),
          t(`bullpen_enrichment_symbols{${w1},status="healthy"}`, '50x90'),
          t(`up{${w1}}`, '1x5 0x60'),
          t(`up{${w2}}`, '1x65'),
        ],
        alert_rule_test: [
          {
            eval_time: '25m',
            alertname: 'BullpenJobFailed',
            exp_alerts: [
              alert('warning', { queue: 'etl', exported_job: 'trade-etl' }),
              alert('warning', { queue: 'reports', exported_job: 'nightly-report' }),
            ],
          },
          { eval_time: '50m', alertname: 'BullpenJobFailed', exp_alerts: [] },
          { eval_time: '15m', alertname: 'BullpenBackfillChunksFailing', exp_alerts: [alert('warning')] },
          { eval_time: '55m', alertname: 'BullpenBackfillChunksFailing', exp_alerts: [] },
          { eval_time: '16m', alertname: 'BullpenScheduleLagging', exp_alerts: [] },
          { eval_time: '25m', alertname: 'BullpenScheduleLagging', exp_alerts: [alert('warning', { schedule: 'trade-etl' })] },
          { eval_time: '15m', alertname: 'BullpenDeadlineMissed', exp_alerts: [alert('critical', { schedule: 'nightly-report' })] },
          { eval_time: '20m', alertname: 'BullpenQueueDepthGrowing', exp_alerts: [] },
          { eval_time: '35m', alertname: 'BullpenQueueDepthGrowing', exp_alerts: [alert('warning', { queue: 'enrichment' })] },
          { eval_time: '30m', alertname: 'BullpenEtlRejectSpike', exp_alerts: [alert('warning')] },
          { eval_time: '30m', alertname: 'BullpenEnrichmentStale', exp_alerts: [] },
          { eval_time: '70m', alertname: 'BullpenEnrichmentStale', exp_alerts: [alert('warning', { status: 'stale' })] },
          { eval_time: '7m', alertname: 'BullpenDown', exp_alerts: [] },
          { eval_time: '10m', alertname: 'BullpenDown', exp_alerts: [alert('critical', { job: 'bullpen', instance: 'w1:3000' })] },
          { eval_time: '30m', alertname: 'BullpenAbsent', exp_alerts: [] },
        ],
      },
      {
        // An operator pauses the reports queue for 40 minutes while nightly-report is late, then
        // resumes it with the partition still not done; the enrichment queue stays paused for hours.
        interval: '1m',
        input_series: [
          t(`bullpen_schedule_lag_seconds{${w1},schedule="nightly-report"}`, '0x10 200000+60x50'),
          t(`bullpen_schedule_interval_seconds{${w1},schedule="nightly-report"}`, '86400x60'),
          t(`bullpen_deadline_missed{${w1},schedule="nightly-report"}`, '0x10 1x50'),
          t(`bullpen_schedule_paused{${w1},schedule="nightly-report"}`, '1x40 0x20'),
          t(`bullpen_schedule_paused{${w2},schedule="nightly-report"}`, '1x40 0x20'),
          t(`bullpen_queue_paused{${w1},queue="reports"}`, '1x40 0x260'),
          t(`bullpen_queue_paused{${w2},queue="reports"}`, '1x40 0x260'),
          t(`bullpen_queue_paused{${w1},queue="enrichment"}`, '1x300'),
          t(`bullpen_queue_paused{${w1},queue="etl"}`, '0x300'),
        ],
        alert_rule_test: [
          { eval_time: '30m', alertname: 'BullpenScheduleLagging', exp_alerts: [] },
          { eval_time: '30m', alertname: 'BullpenDeadlineMissed', exp_alerts: [] },
          // Resumed at 41m: lag pages after its 5 minutes, the deadline after its minute.
          { eval_time: '45m', alertname: 'BullpenScheduleLagging', exp_alerts: [] },
          { eval_time: '50m', alertname: 'BullpenScheduleLagging', exp_alerts: [alert('warning', { schedule: 'nightly-report' })] },
          { eval_time: '45m', alertname: 'BullpenDeadlineMissed', exp_alerts: [alert('critical', { schedule: 'nightly-report' })] },
          { eval_time: '2h', alertname: 'BullpenQueuePaused', exp_alerts: [] },
          { eval_time: '4h', alertname: 'BullpenQueuePaused', exp_alerts: [alert('info', { queue: 'enrichment' })] },
        ],
      },
      {
        // Quiet: few rejects; and no bullpen target at all.
        interval: '1m',
        input_series: [t(`bullpen_etl_rows_total{${w1},stage="extracted"}`, '0+1000x60'), t(`bullpen_etl_rows_total{${w1},stage="rejected"}`, '0+10x60')],
        alert_rule_test: [
          { eval_time: '30m', alertname: 'BullpenEtlRejectSpike', exp_alerts: [] },
          { eval_time: '5m', alertname: 'BullpenAbsent', exp_alerts: [] },
          { eval_time: '15m', alertname: 'BullpenAbsent', exp_alerts: [alert('critical', { job: 'bullpen' })] },
        ],
      },
    ],
  };
}

describe.skipIf(!HAS_PROMTOOL)(HAS_PROMTOOL ? 'promtool' : `promtool (skipped: ${PROMTOOL} not found; apt-get install prometheus to run these; the YAML checks ran instead)`, () => {
  it('promtool check rules accepts ops/prometheus/alerts.yml', () => {
    const out = execFileSync(PROMTOOL, ['check', 'rules', RULES_FILE], { encoding: 'utf8' });
    expect(out).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  it('promtool test rules: each alert fires on the series it is for, and not on the quiet ones', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bullpen-alerting-'));
    try {
      // promtool compares annotations too: test expressions, durations and labels on a copy without them.
      const bare = { groups: ruleFile.groups.map((g) => ({ ...g, rules: g.rules.map(({ annotations: _annotations, ...rule }) => rule) })) };
      fs.writeFileSync(path.join(dir, 'rules.yml'), stringify(bare));
      fs.writeFileSync(path.join(dir, 'tests.yml'), stringify(promtoolTests('rules.yml')));
      let out: string;
      try {
        out = execFileSync(PROMTOOL, ['test', 'rules', 'tests.yml'], { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
      } catch (error) {
        const e = error as { stdout?: string; stderr?: string };
        throw new Error(`promtool test rules failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
      }
      expect(out).toContain('SUCCESS');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
