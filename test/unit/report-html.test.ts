import { describe, expect, it } from 'vitest';
import { addDecimals, escapeHtml, formatDecimal, formatMoney, humanizeSeconds, renderDailyReportHtml, renderReportIndexHtml } from '../../src/reports/html.ts';
import type { DailyReport, ReportSection } from '../../src/reports/types.ts';
import { buildDailyReport } from '../fixtures/daily-report.ts';

const MALICIOUS = '<script>alert(1)</script>';

function chartCount(html: string, kind: string): number {
  return html.match(new RegExp(`<svg data-chart="${kind}"`, 'g'))?.length ?? 0;
}

/** Strips every `<svg>…</svg>` so assertions about page text are not confused by chart labels. */
function withoutSvg(html: string): string {
  return html.replace(/<svg[\s\S]*?<\/svg>/g, '');
}

describe('formatMoney', () => {
  it.each([
    ['1234567.891', '1,234,567.89'],
    ['-0.005', '-0.01'],
    ['0.005', '0.01'],
    ['0.004', '0.00'],
    ['-0.004', '0.00'],
    ['-1234.5', '-1,234.50'],
    ['999.995', '1,000.00'],
    ['-999999.995', '-1,000,000.00'],
    ['0', '0.00'],
    ['12', '12.00'],
    ['.5', '0.50'],
    ['123456789012345678901234.125', '123,456,789,012,345,678,901,234.13'],
  ])('%s → %s', (input, expected) => {
    expect(formatMoney(input)).toBe(expected);
  });

  it('shows — for null and returns text that is not a decimal unchanged', () => {
    expect(formatMoney(null)).toBe('—');
    expect(formatMoney('NaN')).toBe('NaN');
  });

  it('rounds to other precisions half away from zero', () => {
    expect(formatDecimal('182.33505', 4)).toBe('182.3351');
    expect(formatDecimal('-1.5', 0)).toBe('-2');
  });

  it('adds decimal strings exactly', () => {
    expect(addDecimals('12.50', '3.255')).toBe('15.755');
    expect(addDecimals('0.1', '0.2')).toBe('0.3');
    expect(addDecimals('-5', '2.25')).toBe('-2.75');
  });
});

describe('escapeHtml and humanizeSeconds', () => {
  it('escapes the five HTML metacharacters', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it.each([
    [null, '—'],
    [45, '45 s'],
    [720, '12 min'],
    [3725, '1 h 2 min'],
    [7200, '2 h'],
    [187_200, '2 d 4 h'],
  ])('%s s → %s', (seconds, expected) => {
    expect(humanizeSeconds(seconds)).toBe(expected);
  });
});

describe('renderDailyReportHtml', () => {
  const report = buildDailyReport({ accountName: MALICIOUS });
  const html = renderDailyReportHtml(report);

  it('is one HTML document with a viewport, one <style> and no script', () => {
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('<meta name="viewport" content="width=device-width,initial-scale=1">');
    expect(html.match(/<style>/g)).toHaveLength(1);
    expect(html).not.toMatch(/<script/i);
    expect(html).toMatch(/@media print\{[\s\S]*\.account\{break-before:page\}/);
  });

  it('draws the three charts for the firm and each account, each in a figure with a caption', () => {
    const sections = 1 + report.accounts.length;
    for (const kind of ['equity', 'daily-pnl', 'pnl-by-hour']) expect(chartCount(html, kind)).toBe(sections);
    expect(html.match(/<figure>/g)).toHaveLength(3 * sections);
    expect(html.match(/<figcaption>/g)).toHaveLength(3 * sections);
    // The equity chart has its line and the shaded drawdown; the bars carry accessible titles.
    const equity = /<svg data-chart="equity"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    expect(equity).toMatch(/<path class="drawdown" d="M[^"]+Z"/);
    expect(equity).toMatch(/<path class="equity" d="M/);
    const daily = /<svg data-chart="daily-pnl"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    expect(daily.match(/<rect /g)).toHaveLength(30);
    expect(daily).toMatch(/<rect class="pos"[^>]*><title>\d{4}-\d{2}-\d{2}: [\d,]+\.\d{2}<\/title><\/rect>/);
    expect(daily).toMatch(/<rect class="neg"[^>]*><title>\d{4}-\d{2}-\d{2}: -[\d,]+\.\d{2}<\/title><\/rect>/);
    const hours = /<svg data-chart="pnl-by-hour"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    expect(hours.match(/<rect /g)).toHaveLength(4);
    expect(hours).toContain('<title>10:00–10:59: -800.25 over 9 trades</title>');
  });

  it('escapes strings from the data', () => {
    expect(html).not.toContain(MALICIOUS);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('Beta &quot;Macro&quot; Book');
    expect(html).toContain('momentum &amp; breakout');
    expect(html).toContain('upstream 503: &lt;html&gt;Service Unavailable&lt;/html&gt;');
  });

  it('formats money from the decimal strings', () => {
    expect(html).toContain('1,234,567.89');
    expect(html).toContain('-0.01'); // hour 15's '-0.005'
    expect(html).toContain('15.76'); // commissions 12.50 + fees 3.255, rounded once
  });

  it('fetches nothing: no http(s) or protocol-relative src, href, url() or @import', () => {
    expect(html).not.toMatch(/(?:src|href|xlink:href)\s*=\s*["']?\s*(?:https?:)?\/\//i);
    expect(html).not.toMatch(/url\(/i);
    expect(html).not.toMatch(/@import/i);
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`);
  });

  it('links the sibling JSON relatively and has the key figures, freshness and RS leaders', () => {
    expect(html).toContain('href="daily_20261120.json"');
    const text = withoutSvg(html);
    for (const label of ['Trades', 'Winners / losers', 'Win rate', 'Realized PnL', 'Commissions + fees', 'Net PnL', 'Sharpe 30d', 'Sortino 30d', 'Equity', 'Current drawdown', 'Max drawdown']) {
      expect(text).toContain(`<dt>${label}</dt>`);
    }
    expect(text).toContain('<dd>59.5 %</dd>'); // 25 / 42
    expect(text).toContain('1 h 2 min');
    expect(text).toContain('healthy: <strong>480</strong>');
    expect(text).toContain('<td>NVDA</td><td>Technology</td>');
    // NEWCO has no close: its market fields are dashes.
    expect(text).toMatch(/<td>NEWCO<\/td><td class="num">1,000<\/td><td class="num">12.00<\/td><td class="num">—<\/td><td class="num">—<\/td><td class="num">—<\/td>/);
    expect(text).not.toContain('No trading on this date');
    // The second account did not trade while the first did: its section says so.
    expect(text).toContain('No trades on 2026-11-20.');
  });

  it('counts every failed job in the header and says how many are listed when the list stops short', () => {
    const header = (r: DailyReport) => /<p class="meta">[^]*?<\/p>/.exec(renderDailyReportHtml(r))?.[0] ?? '';
    expect(header(report)).toContain('1 failed job in 24 h</p>');
    const listed = Array.from({ length: 50 }, (_, i) => ({ job: 'trade-etl', partition: `tick-${i}`, error: 'connection refused', at: '2026-11-20T06:10:00.000Z' }));
    const outage: DailyReport = { ...report, freshness: { ...report.freshness, failed_jobs_24h_count: 60, failed_jobs_24h: listed } };
    expect(header(outage)).toContain('60 failed jobs in 24 h (50 listed)</p>');
    expect(withoutSvg(renderDailyReportHtml(outage))).toContain('The latest 50 of 60 are listed.');
  });

  it('renders a no-trading day with the banner, the equity so far and freshness', () => {
    const quiet = renderDailyReportHtml(buildDailyReport({ hasTrading: false }));
    expect(quiet).toContain('class="banner"');
    expect(quiet).toContain('No trading on this date');
    expect(quiet).toMatch(/<path class="equity" d="M/);
    expect(quiet).toContain('Data freshness');
    expect(quiet).not.toContain('No trades on 2026-11-20.'); // the banner says it once
    expect(quiet).not.toContain('Best instruments');
  });

  it('handles empty arrays and null metrics', () => {
    const empty: ReportSection = {
      trades: 0,
      winners: 0,
      losers: 0,
      win_rate: null,
      realized_pnl: '0',
      commissions: '0',
      fees: '0',
      net_pnl: '0',
      sharpe_30d: null,
      sortino_30d: null,
      max_drawdown: null,
      current_drawdown: null,
      current_drawdown_pct: null,
      equity: null,
      best_instruments: [],
      worst_instruments: [],
      best_strategies: [],
      worst_strategies: [],
      pnl_by_hour: [],
      positions: [],
      equity_curve: [],
      daily_pnl: [],
    };
    const bare: DailyReport = {
      kind: 'daily',
      report_date: '2026-01-02',
      generated_at: '2026-01-02T23:55:00Z',
      has_trading: false,
      firm: empty,
      accounts: [],
      rs_leaders: { as_of_date: null, leaders: [] },
      freshness: { etl_lag_seconds: null, etl_last_success: null, enrichment_status: {}, failed_jobs_24h_count: 0, failed_jobs_24h: [] },
    };
    const out = renderDailyReportHtml(bare);
    for (const kind of ['equity', 'daily-pnl', 'pnl-by-hour']) expect(chartCount(out, kind)).toBe(1);
    expect(out).toContain('No open positions.');
    expect(out).toContain('No trades on this date'); // the empty hour chart
    expect(out).toContain('No failed jobs in the last 24 h.');
    expect(out).toContain('No relative-strength scores for this date.');
    expect(out).not.toMatch(/NaN|undefined|Infinity/);

    // One curve row and one day draw without dividing by zero.
    const single = renderDailyReportHtml({
      ...bare,
      firm: { ...empty, equity: '100.00', equity_curve: [{ date: '2026-01-02', equity: '100.00', net_pnl: '0', drawdown_pct: 0 }], daily_pnl: [{ date: '2026-01-02', net_pnl: '0' }] },
    });
    expect(single).not.toMatch(/NaN|undefined|Infinity/);
    expect(single).toContain('<circle class="equity-dot"');
  });
});

describe('renderReportIndexHtml', () => {
  it('lists every report newest first with relative, escaped links', () => {
    const html = renderReportIndexHtml([
      { report_date: '2026-11-18', json_file: 'daily_20261118.json', html_file: null, generated_at: '2026-11-18T23:55:00.000Z', summary: null },
      { report_date: '2026-11-20', json_file: 'daily_20261120.json', html_file: 'daily_20261120.html', generated_at: '2026-11-20T23:55:00.000Z', summary: { has_trading: true, net_pnl: '-1234.5', trades: 42 } },
      { report_date: '2026-11-19', json_file: 'daily_20261119.json', html_file: 'a"b<c>.html', generated_at: '2026-11-19T23:55:00.000Z', summary: { has_trading: false } },
    ]);
    const dates = [...html.matchAll(/<tr><td>(?:<a [^>]*>)?(\d{4}-\d{2}-\d{2})/g)].map((m) => m[1]);
    expect(dates).toEqual(['2026-11-20', '2026-11-19', '2026-11-18']);
    expect(html).toContain('<a href="daily_20261120.html">2026-11-20</a>');
    expect(html).toContain('href="daily_20261118.json"');
    expect(html).toContain('-1,234.50');
    expect(html).toContain('no trading');
    expect(html).toContain('href="a%22b%3Cc%3E.html"');
    expect(html).not.toMatch(/(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i);
  });

  it('says so when there are no reports', () => {
    expect(renderReportIndexHtml([])).toContain('No reports yet');
  });
});

describe('equity chart', () => {
  it("shades from the warehouse's peak, not the window's, when the curve starts in a drawdown", () => {
    const report = buildDailyReport();
    // Two rows, both 20 % under an earlier peak of 125 that is no longer in the window.
    const firm = { ...report.firm, equity_curve: [{ date: '2026-11-19', equity: '100', net_pnl: '0', drawdown_pct: -0.2 }, { date: '2026-11-20', equity: '100', net_pnl: '0', drawdown_pct: -0.2 }] };
    const html = renderDailyReportHtml({ ...report, firm });
    const chart = /<svg data-chart="equity"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    const peak = /<path class="peak" d="M[\d.]+,([\d.]+)/.exec(chart)?.[1];
    const equity = /<path class="equity" d="M[\d.]+,([\d.]+)/.exec(chart)?.[1];
    // The peak line sits above (a smaller y than) the equity line.
    expect(Number(peak)).toBeLessThan(Number(equity));
    expect(chart).toContain('>125</text>');
  });
});
