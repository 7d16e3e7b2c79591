/**
 * The nightly report as one self-contained HTML page (issue 7), drawn from the report JSON
 * (`types.ts`) and nothing else: no scripts, no external requests (a CSP meta tag forbids
 * them), charts as inline SVG built here. Pure: a report in, a string out.
 *
 * Money stays a decimal string end to end: it is rounded and grouped as text (BigInt), never
 * through a float. Floats are used only for chart geometry.
 */
import type { AccountSection, CurvePoint, DailyReport, Freshness, HourBucket, Mover, Position, ReportSection, RsLeader } from './types.ts';

/** A row of the index page (`/reports/`): one stored report. */
export interface ReportIndexEntry {
  /** YYYY-MM-DD */
  report_date: string;
  /** File names (basenames), linked relative to the index page. */
  json_file: string;
  html_file: string | null;
  generated_at: string;
  summary: { has_trading: boolean; net_pnl?: string; trades?: number } | null;
}

// ---------------------------------------------------------------------------------------------
// Text

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

const esc = escapeHtml;
const DASH = '—';

/** A decimal string as an integer of units of 10^-scale; null for anything else. */
function parseDecimal(value: string): { units: bigint; scale: number } | null {
  const match = /^\s*([+-]?)(\d*)(?:\.(\d*))?\s*$/.exec(value);
  if (!match || (match[2] === '' && !match[3])) return null;
  const fraction = match[3] ?? '';
  const units = BigInt(`${match[2] || '0'}${fraction}`);
  return { units: match[1] === '-' ? -units : units, scale: fraction.length };
}

function groupThousands(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * `value` rounded half away from zero to `digits` decimals, with thousands separators
 * ('1234567.891' → '1,234,567.89', '-0.005' → '-0.01'). A result of zero has no sign.
 * Text that is not a plain decimal comes back unchanged.
 */
export function formatDecimal(value: string, digits: number): string {
  const parsed = parseDecimal(value);
  if (!parsed) return value;
  let { units } = parsed;
  if (parsed.scale <= digits) {
    units *= 10n ** BigInt(digits - parsed.scale);
  } else {
    const divisor = 10n ** BigInt(parsed.scale - digits);
    const remainder = units % divisor; // BigInt division truncates toward zero: same sign as units
    units /= divisor;
    const abs = remainder < 0n ? -remainder : remainder;
    if (abs * 2n >= divisor) units += parsed.units < 0n ? -1n : 1n;
  }
  const negative = units < 0n;
  const text = (negative ? -units : units).toString().padStart(digits + 1, '0');
  const whole = groupThousands(text.slice(0, text.length - digits));
  const fraction = digits > 0 ? `.${text.slice(text.length - digits)}` : '';
  return `${negative ? '-' : ''}${whole}${fraction}`;
}

/** Money: two decimals, grouped. */
export function formatMoney(value: string | null): string {
  return value === null ? DASH : formatDecimal(value, 2);
}

/** Prices and quantities: as many decimals as needed up to `max`, at least `min`. */
function formatTrimmed(value: string | null, min: number, max: number): string {
  if (value === null) return DASH;
  const text = formatDecimal(value, max);
  if (!text.includes('.')) return text;
  const [whole, fraction = ''] = text.split('.');
  const kept = fraction.replace(/0+$/, '').padEnd(min, '0');
  return kept ? `${whole}.${kept}` : (whole ?? text);
}

/** The exact sum of two decimal strings (commissions + fees). */
export function addDecimals(a: string, b: string): string {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  if (!x || !y) return `${a} + ${b}`;
  const scale = Math.max(x.scale, y.scale);
  const sum = x.units * 10n ** BigInt(scale - x.scale) + y.units * 10n ** BigInt(scale - y.scale);
  const negative = sum < 0n;
  const text = (negative ? -sum : sum).toString().padStart(scale + 1, '0');
  const whole = text.slice(0, text.length - scale);
  return `${negative ? '-' : ''}${whole}${scale > 0 ? `.${text.slice(text.length - scale)}` : ''}`;
}

/** A fraction as a percentage, one decimal ('-0.0321' → '-3.2 %'). */
export function formatPercent(fraction: number | null): string {
  return fraction === null || !Number.isFinite(fraction) ? DASH : `${(fraction * 100).toFixed(1)} %`;
}

function formatRatio(value: number | null): string {
  return value === null || !Number.isFinite(value) ? DASH : value.toFixed(2);
}

/** Seconds as the two largest units ('45 s', '12 min', '3 h 5 min', '2 d 4 h'). */
export function humanizeSeconds(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return DASH;
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

/** An ISO timestamp as `YYYY-MM-DD HH:MM:SS UTC`; anything unparseable as given. */
export function formatTimestamp(value: string | null): string {
  if (value === null) return DASH;
  const time = Date.parse(value);
  return Number.isNaN(time) ? value : `${new Date(time).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** 'pos' / 'neg' / '' for colouring a signed decimal string. */
function signClass(value: string | null): string {
  const parsed = value === null ? null : parseDecimal(value);
  if (!parsed || parsed.units === 0n) return '';
  return parsed.units > 0n ? 'pos' : 'neg';
}

/** `daily_YYYYMMDD.json` for a report date. */
export function reportFileName(reportDate: string, ext: 'json' | 'html'): string {
  return `daily_${reportDate.replaceAll('-', '')}.${ext}`;
}

// ---------------------------------------------------------------------------------------------
// Charts (inline SVG). Coordinates are in a fixed viewBox; CSS scales the SVG to the page width.

type ChartKind = 'equity' | 'daily-pnl' | 'pnl-by-hour';

/** A viewBox and the plot area inside it (the rest holds the axis labels). */
interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function createFrame(width: number, height: number): Frame {
  return { width, height, left: 64, right: width - 12, top: 12, bottom: height - 26 };
}

// The equity chart spans the page; the bar charts sit side by side on wide screens.
const EQUITY_FRAME = createFrame(800, 260);
const BAR_FRAME = createFrame(640, 220);

/** A linear map from `domain` to `range`; an empty domain is widened so nothing divides by zero. */
function linearScale([d0, d1]: [number, number], [r0, r1]: [number, number]): (v: number) => number {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** The value range a chart's y axis covers: the data's, widened to include `include` (e.g. 0). */
function extent(values: number[], include?: number): [number, number] {
  let lo = Math.min(...values, include ?? Infinity);
  let hi = Math.max(...values, include ?? -Infinity);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.01 || 1;
    lo -= pad;
    hi += pad;
  }
  return [lo, hi];
}

const round = (v: number) => Math.round(v * 10) / 10;

/** `M x,y L x,y …` through the points. */
function linePath(points: [number, number][]): string {
  return points.map(([x, y], i) => `${i ? 'L' : 'M'}${round(x)},${round(y)}`).join(' ');
}

const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

/** Axis labels at the bottom and top of the y range, and a zero line when it is inside. */
function yAxis(f: Frame, y: (v: number) => number, [lo, hi]: [number, number]): string {
  const labels = [lo, hi].map((v) => `<text class="axis" x="${f.left - 6}" y="${round(y(v))}" text-anchor="end" dominant-baseline="middle">${esc(compact.format(v))}</text>`);
  const zero = lo < 0 && hi > 0 ? `<line class="zero" x1="${f.left}" x2="${f.right}" y1="${round(y(0))}" y2="${round(y(0))}"/>` : '';
  return `<line class="frame" x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${f.bottom}"/>${zero}${labels.join('')}`;
}

function xLabel(f: Frame, x: number, text: string, anchor: 'start' | 'middle' | 'end'): string {
  return `<text class="axis" x="${round(x)}" y="${f.height - 8}" text-anchor="${anchor}">${esc(text)}</text>`;
}

/** First and last label of a date axis. */
function dateLabels(f: Frame, first: string, last: string, count: number): string {
  return xLabel(f, f.left, first, 'start') + (count > 1 ? xLabel(f, f.right, last, 'end') : '');
}

function svg(kind: ChartKind, f: Frame, label: string, body: string): string {
  return `<svg data-chart="${kind}" viewBox="0 0 ${f.width} ${f.height}" role="img" aria-label="${esc(label)}"><title>${esc(label)}</title>${body}</svg>`;
}

function emptyChart(kind: ChartKind, f: Frame, label: string, message: string): string {
  return svg(kind, f, label, `<text class="empty" x="${f.width / 2}" y="${f.height / 2}" text-anchor="middle">${esc(message)}</text>`);
}

/** The equity line, its running peak (dashed) and the drawdown between them shaded. */
function equityChart(curve: CurvePoint[]): string {
  const f = EQUITY_FRAME;
  const label = 'Equity curve; shaded: drawdown below the running peak';
  if (curve.length === 0) return emptyChart('equity', f, label, 'No equity curve yet');
  const equity = curve.map((p) => Number(p.equity));
  // The peak comes from the warehouse's drawdown (equity = peak × (1 + drawdown_pct)), so a curve
  // cut to its last rows still shades from the all-time peak; the window's own running peak only
  // stands in where the warehouse has no drawdown.
  let running = -Infinity;
  const peak = curve.map((p, i) => {
    const v = equity[i] ?? 0;
    running = Math.max(running, v);
    return p.drawdown_pct !== null && p.drawdown_pct > -1 ? v / (1 + p.drawdown_pct) : running;
  });
  const range = extent([...equity, ...peak]);
  const x = linearScale([0, Math.max(curve.length - 1, 1)], [f.left, f.right]);
  const y = linearScale(range, [f.bottom, f.top]);
  const equityPoints = equity.map((v, i): [number, number] => [x(i), y(v)]);
  const peakPoints = peak.map((v, i): [number, number] => [x(i), y(v)]);
  // Along the peak forward, back along equity: the area is zero wherever equity is at its peak.
  const drawdown = `${linePath([...peakPoints, ...[...equityPoints].reverse()])} Z`;
  const single = curve.length === 1 ? `<circle class="equity-dot" cx="${round(x(0))}" cy="${round(y(equity[0] ?? 0))}" r="3"/>` : '';
  const first = curve[0]?.date ?? '';
  const last = curve[curve.length - 1]?.date ?? '';
  return svg(
    'equity',
    f,
    `${label}, ${first} to ${last}`,
    `${yAxis(f, y, range)}<path class="drawdown" d="${drawdown}"/><path class="peak" d="${linePath(peakPoints)}"/><path class="equity" d="${linePath(equityPoints)}"/>${single}` +
      dateLabels(f, first, last, curve.length),
  );
}

interface Bar {
  /** Slot index on the x axis. */
  slot: number;
  value: string;
  title: string;
}

/** Bars from a zero baseline in `slots` equal bands, green up and red down, each with a <title>. */
function barChart(kind: ChartKind, label: string, slots: number, bars: Bar[], xLabels: (band: number) => string): string {
  const f = BAR_FRAME;
  const range = extent(
    bars.map((b) => Number(b.value)),
    0,
  );
  const band = (f.right - f.left) / slots;
  const y = linearScale(range, [f.bottom, f.top]);
  const rects = bars.map((bar) => {
    const top = Math.min(y(Number(bar.value)), y(0));
    const height = Math.max(Math.abs(y(Number(bar.value)) - y(0)), 1); // a zero day still shows a sliver
    const cls = signClass(bar.value) || 'flat';
    return `<rect class="${cls}" x="${round(f.left + bar.slot * band + band * 0.1)}" y="${round(top)}" width="${round(band * 0.8)}" height="${round(height)}"><title>${esc(bar.title)}</title></rect>`;
  });
  return svg(kind, f, label, `${yAxis(f, y, range)}${rects.join('')}${xLabels(band)}`);
}

function dailyPnlChart(days: { date: string; net_pnl: string }[]): string {
  if (days.length === 0) return emptyChart('daily-pnl', BAR_FRAME, 'Daily net PnL', 'No daily PnL yet');
  const bars = days.map((d, slot) => ({ slot, value: d.net_pnl, title: `${d.date}: ${formatMoney(d.net_pnl)}` }));
  const labels = () => dateLabels(BAR_FRAME, days[0]?.date ?? '', days[days.length - 1]?.date ?? '', days.length);
  return barChart('daily-pnl', `Daily net PnL, last ${days.length} dates`, days.length, bars, labels);
}

function pnlByHourChart(hours: HourBucket[]): string {
  const label = 'Net PnL by hour of day (exchange time)';
  if (hours.length === 0) return emptyChart('pnl-by-hour', BAR_FRAME, label, 'No trades on this date');
  const pad = (h: number) => String(h).padStart(2, '0');
  const bars = hours.map((h) => ({
    slot: h.hour,
    value: h.net_pnl,
    title: `${pad(h.hour)}:00–${pad(h.hour)}:59: ${formatMoney(h.net_pnl)} over ${h.trades} trade${h.trades === 1 ? '' : 's'}`,
  }));
  const labels = (band: number) => [0, 3, 6, 9, 12, 15, 18, 21].map((h) => xLabel(BAR_FRAME, BAR_FRAME.left + (h + 0.5) * band, pad(h), 'middle')).join('');
  return barChart('pnl-by-hour', label, 24, bars, labels);
}

function figure(chart: string, caption: string): string {
  return `<figure>${chart}<figcaption>${caption}</figcaption></figure>`;
}

// ---------------------------------------------------------------------------------------------
// Sections

/** A table in a horizontally scrolling wrapper; `rows` are pre-escaped cells. */
function table(headers: string[], rows: string[][], numeric: boolean[]): string {
  const th = headers.map((h, i) => `<th${numeric[i] ? ' class="num"' : ''} scope="col">${esc(h)}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((cell, i) => `<td${numeric[i] ? ' class="num"' : ''}>${cell}</td>`).join('')}</tr>`).join('');
  return `<div class="table-wrap"><table><thead><tr>${th}</tr></thead><tbody>${tr}</tbody></table></div>`;
}

function money(value: string | null): string {
  const cls = signClass(value);
  return cls ? `<span class="${cls}">${esc(formatMoney(value))}</span>` : esc(formatMoney(value));
}

function moversTable(title: string, movers: Mover[], empty: string): string {
  const body = movers.length ? table(['Name', 'Trades', 'Net PnL'], movers.map((m) => [esc(m.name), String(m.trades), money(m.net_pnl)]), [false, true, true]) : `<p class="none">${esc(empty)}</p>`;
  return `<div><h4>${esc(title)}</h4>${body}</div>`;
}

function positionsTable(positions: Position[]): string {
  if (positions.length === 0) return '<p class="none">No open positions.</p>';
  return table(
    ['Symbol', 'Quantity', 'Avg price', 'Close', 'Market value', 'Unrealized PnL'],
    positions.map((p) => [
      esc(p.symbol),
      esc(formatTrimmed(p.quantity, 0, 8)),
      esc(formatTrimmed(p.avg_price, 2, 6)),
      esc(formatTrimmed(p.close, 2, 6)),
      esc(formatMoney(p.market_value)),
      money(p.unrealized_pnl),
    ]),
    [false, true, true, true, true, true],
  );
}

function keyFigures(s: ReportSection): string {
  const figures: [string, string][] = [
    ['Trades', String(s.trades)],
    ['Winners / losers', `${s.winners} / ${s.losers}`],
    ['Win rate', esc(formatPercent(s.win_rate))],
    ['Realized PnL', money(s.realized_pnl)],
    ['Commissions + fees', esc(formatMoney(addDecimals(s.commissions, s.fees)))],
    ['Net PnL', money(s.net_pnl)],
    ['Sharpe 30d', esc(formatRatio(s.sharpe_30d))],
    ['Sortino 30d', esc(formatRatio(s.sortino_30d))],
    ['Equity', esc(formatMoney(s.equity))],
    ['Current drawdown', `${esc(formatPercent(s.current_drawdown_pct))}${s.current_drawdown === null ? '' : ` <small>(${esc(formatMoney(s.current_drawdown))})</small>`}`],
    ['Max drawdown', esc(formatPercent(s.max_drawdown))],
  ];
  return `<dl class="figures">${figures.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${v}</dd></div>`).join('')}</dl>`;
}

function charts(s: ReportSection): string {
  const last = s.equity_curve[s.equity_curve.length - 1];
  const first = s.equity_curve[0];
  const equityCaption =
    first && last
      ? `Equity ${esc(formatMoney(first.equity))} (${esc(first.date)}) → ${esc(formatMoney(last.equity))} (${esc(last.date)}); shaded: drawdown below the running peak (max ${esc(formatPercent(s.max_drawdown))}).`
      : 'Equity curve: no rows yet.';
  const days = s.daily_pnl;
  const up = days.filter((d) => signClass(d.net_pnl) === 'pos').length;
  const down = days.filter((d) => signClass(d.net_pnl) === 'neg').length;
  return (
    `<div class="charts">` +
    figure(equityChart(s.equity_curve), equityCaption) +
    figure(dailyPnlChart(days), `Daily net PnL, last ${days.length} date${days.length === 1 ? '' : 's'}: ${up} up, ${down} down.`) +
    figure(pnlByHourChart(s.pnl_by_hour), 'Net PnL by hour of day (exchange time) on the report date.') +
    `</div>`
  );
}

function section(s: ReportSection, id: string, heading: string, className: string, report: DailyReport): string {
  // On a day nobody traded the banner already says so.
  const noTrades = s.trades === 0 && report.has_trading ? `<p class="note">No trades on ${esc(report.report_date)}.</p>` : '';
  const movers =
    s.trades === 0
      ? ''
      : `<h3>Best and worst</h3><div class="movers">` +
        moversTable('Best instruments', s.best_instruments, 'None.') +
        moversTable('Worst instruments', s.worst_instruments, 'None.') +
        moversTable('Best strategies', s.best_strategies, 'None.') +
        moversTable('Worst strategies', s.worst_strategies, 'None.') +
        `</div>`;
  return (
    `<section class="${className}" id="${esc(id)}"><h2>${heading}</h2>${noTrades}${keyFigures(s)}${charts(s)}${movers}` +
    `<h3>Open positions</h3>${positionsTable(s.positions)}</section>`
  );
}

function accountHeading(a: AccountSection): string {
  return `Account ${esc(a.account_number)} <span class="sub">${esc(a.account_name)}</span>`;
}

function rsSection(rs: DailyReport['rs_leaders'], reportDate: string): string {
  const asOf = rs.as_of_date === null ? '' : rs.as_of_date === reportDate ? ` <span class="sub">scored ${esc(rs.as_of_date)}</span>` : ` <span class="sub">latest scored: ${esc(rs.as_of_date)}</span>`;
  const body =
    rs.leaders.length === 0
      ? '<p class="none">No relative-strength scores for this date.</p>'
      : table(
          ['Symbol', 'Sector', 'RS rating', 'RS score'],
          rs.leaders.map((l: RsLeader) => [esc(l.symbol), esc(l.sector_name), l.rs_rating === null ? DASH : String(l.rs_rating), esc(formatRatio(l.rs_score))]),
          [false, false, true, true],
        );
  return `<section class="rs" id="rs"><h2>RS sector leaders${asOf}</h2>${body}</section>`;
}

const ENRICHMENT_ORDER = ['healthy', 'warning', 'stale', 'error'];

/** "60 failed jobs in 24 h (50 listed)": the count is every failure, the list stops at 50. */
function failedJobsLine(f: Freshness): string {
  const total = f.failed_jobs_24h_count;
  const listed = total > f.failed_jobs_24h.length ? ` (${f.failed_jobs_24h.length} listed)` : '';
  return `${total} failed job${total === 1 ? '' : 's'} in 24 h${listed}`;
}

function freshnessSection(f: Freshness): string {
  const statuses = [...ENRICHMENT_ORDER.filter((k) => k in f.enrichment_status), ...Object.keys(f.enrichment_status).filter((k) => !ENRICHMENT_ORDER.includes(k)).sort()];
  const enrichment = statuses.length
    ? `<ul class="statuses">${statuses.map((k) => `<li class="status-${esc(k)}">${esc(k)}: <strong>${f.enrichment_status[k] ?? 0}</strong></li>`).join('')}</ul>`
    : '<p class="none">No symbols enriched yet.</p>';
  const failed = f.failed_jobs_24h.length
    ? table(
        ['Job', 'Partition', 'At', 'Error'],
        f.failed_jobs_24h.map((j) => [esc(j.job), esc(j.partition), esc(formatTimestamp(j.at)), j.error === null ? DASH : `<pre>${esc(j.error)}</pre>`]),
        [false, false, false, false],
      )
    : '<p class="none">No failed jobs in the last 24 h.</p>';
  const more = f.failed_jobs_24h_count > f.failed_jobs_24h.length ? `<p class="note">The latest ${f.failed_jobs_24h.length} of ${f.failed_jobs_24h_count} are listed.</p>` : '';
  return (
    `<section class="freshness" id="freshness"><h2>Data freshness</h2>` +
    `<dl class="figures"><div><dt>ETL lag</dt><dd>${esc(humanizeSeconds(f.etl_lag_seconds))}</dd></div><div><dt>Last ETL success</dt><dd>${esc(formatTimestamp(f.etl_last_success))}</dd></div></dl>` +
    `<h3>Enrichment status</h3>${enrichment}<h3>Failed jobs, last 24 h</h3>${failed}${more}</section>`
  );
}

// ---------------------------------------------------------------------------------------------
// Page

const STYLE = `
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--pos:#1a7f37;--neg:#cf222e;--accent:#0969da;--bg-soft:#f6f8fa}
*{box-sizing:border-box}
body{margin:0 auto;max-width:64rem;padding:1rem;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);overflow-wrap:break-word}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.25rem;margin:2rem 0 .5rem;border-bottom:1px solid var(--line);padding-bottom:.25rem}
h3{font-size:1.05rem;margin:1.25rem 0 .5rem}h4{font-size:.95rem;margin:.5rem 0 .25rem}
a{color:var(--accent)}.sub,.meta,.none,figcaption,small{color:var(--muted)}.sub{font-weight:normal;font-size:.9em}
.banner{border:2px solid #bf8700;background:#fff8c5;padding:.75rem 1rem;border-radius:6px;font-weight:600}
.note{font-style:italic}
nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.25rem 1rem}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(9.5rem,1fr));gap:.5rem;margin:.5rem 0}
.figures div{border:1px solid var(--line);border-radius:6px;padding:.4rem .6rem;background:var(--bg-soft)}
.figures dt{font-size:.8rem;color:var(--muted)}.figures dd{margin:0;font-weight:600;font-variant-numeric:tabular-nums}
.pos{color:var(--pos)}.neg{color:var(--neg)}
.charts{display:grid;grid-template-columns:1fr;gap:1rem}
figure{margin:0;break-inside:avoid}figure svg{display:block;width:100%;height:auto}
figcaption{font-size:.85rem;margin-top:.25rem}
svg .axis{font-size:15px;fill:#59636e}svg .empty{font-size:18px;fill:#59636e}
svg .frame,svg .zero{stroke:#afb8c1;stroke-width:1}
svg .equity{fill:none;stroke:#0969da;stroke-width:2}svg .equity-dot{fill:#0969da}
svg .peak{fill:none;stroke:#8c959f;stroke-width:1;stroke-dasharray:4 3}svg .drawdown{fill:#cf222e;fill-opacity:.25;stroke:none}
svg rect.pos{fill:#1a7f37}svg rect.neg{fill:#cf222e}svg rect.flat{fill:#8c959f}
.movers{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:0 1.5rem}
.table-wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;white-space:nowrap}.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
pre{margin:0;white-space:pre-wrap;font-size:.8rem;max-width:40rem}
.statuses{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.5rem 1.5rem}
@media (min-width:48rem){.charts{grid-template-columns:1fr 1fr}.charts figure:first-child{grid-column:1/-1}svg[data-chart=equity] .axis{font-size:12px}}
@media print{
  body{max-width:none;padding:0;font-size:11pt;color:#000}
  *{background:transparent!important;box-shadow:none!important}
  nav,.links{display:none}
  a{color:inherit;text-decoration:none}
  .account{break-before:page}
  .table-wrap{overflow:visible}
  h2,h3{break-after:avoid}
  tr,figure,.figures div{break-inside:avoid}
}
`;

// No script, style only inline, images only as data: URLs — and nothing fetched from anywhere.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

function page(title: string, body: string): string {
  return (
    `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width,initial-scale=1">\n` +
    `<meta http-equiv="Content-Security-Policy" content="${CSP}">\n<title>${esc(title)}</title>\n<style>${STYLE}</style>\n</head>\n<body>\n${body}\n</body>\n</html>\n`
  );
}

/** The nightly report page: header, firm-wide, one section per account, RS leaders, freshness. */
export function renderDailyReportHtml(report: DailyReport): string {
  const date = report.report_date;
  const banner = report.has_trading
    ? ''
    : `<p class="banner" role="status">No trading on this date: no account has fills dated ${esc(date)}. Equity, drawdown and data freshness below are as of that date.</p>`;
  const f = report.freshness;
  const header =
    `<header><h1>Daily report ${esc(date)}</h1>` +
    `<p class="meta">Generated ${esc(formatTimestamp(report.generated_at))} · ETL lag ${esc(humanizeSeconds(f.etl_lag_seconds))} · ` +
    `${failedJobsLine(f)}</p>` +
    `<p class="links"><a href="${esc(reportFileName(date, 'json'))}">JSON</a> · <a href="./">All reports</a></p>${banner}</header>`;
  const nav =
    `<nav aria-label="Sections"><ul><li><a href="#firm">Firm-wide</a></li>` +
    report.accounts.map((a) => `<li><a href="#account-${esc(String(a.account_id))}">${esc(a.account_number)}</a></li>`).join('') +
    `<li><a href="#rs">RS leaders</a></li><li><a href="#freshness">Freshness</a></li></ul></nav>`;
  const sections = [
    section(report.firm, 'firm', 'Firm-wide', 'firm', report),
    ...report.accounts.map((a) => section(a, `account-${a.account_id}`, accountHeading(a), 'account', report)),
  ];
  const accountsNote = report.accounts.length === 0 ? '<p class="none">No accounts have an equity curve up to this date.</p>' : '';
  return page(`bullpen daily report ${date}`, `${header}${nav}<main>${sections.join('')}${accountsNote}${rsSection(report.rs_leaders, date)}${freshnessSection(f)}</main>`);
}

/** The `/reports/` page: every report, newest first, linking its HTML (when written) and JSON. */
export function renderReportIndexHtml(reports: ReportIndexEntry[]): string {
  const sorted = [...reports].sort((a, b) => (a.report_date < b.report_date ? 1 : a.report_date > b.report_date ? -1 : 0));
  const href = (file: string) => esc(encodeURIComponent(file));
  const rows = sorted.map((r) => {
    const dateCell = r.html_file ? `<a href="${href(r.html_file)}">${esc(r.report_date)}</a>` : esc(r.report_date);
    const s = r.summary;
    const trading = s === null ? DASH : s.has_trading ? 'yes' : 'no trading';
    return [
      dateCell,
      esc(trading),
      s?.trades === undefined ? DASH : String(s.trades),
      s?.net_pnl === undefined ? DASH : money(s.net_pnl),
      esc(formatTimestamp(r.generated_at)),
      `<a href="${href(r.json_file)}">JSON</a>`,
    ];
  });
  const body = rows.length
    ? table(['Date', 'Trading', 'Trades', 'Net PnL', 'Generated', 'Data'], rows, [false, false, true, true, false, false])
    : '<p class="none">No reports yet: the nightly-report job writes one each night.</p>';
  return page('bullpen reports', `<header><h1>Daily reports</h1><p class="meta">${rows.length} report${rows.length === 1 ? '' : 's'}, newest first.</p></header><main>${body}</main>`);
}
