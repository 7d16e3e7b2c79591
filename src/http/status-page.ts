/**
 * The status page at `/` (issue 8): every schedule, the partition grid (jobs × trading dates,
 * from ops.job_runs and the calendar), backfills in progress and the last finished ones, and
 * links to Bull Board, the reports and the metrics.
 *
 * One self-contained document: inline CSS and one small inline script, nothing fetched from
 * anywhere but this origin. The first response already holds the data, rendered here from the
 * same functions the JSON APIs use, so it reads without JavaScript; the script then refreshes
 * each section every few seconds from those APIs (GET /api/v1/schedules, /api/v1/partitions,
 * /api/v1/backfills) without reloading, and sends the grid's re-run buttons to
 * POST /api/v1/partitions/rerun with the CSRF token from `<meta name="csrf-token">`.
 *
 * The markup is produced twice, by the functions below and by the script's copies of them; both
 * emit the same elements, classes and `data-*` attributes (the browser test drives the script's
 * version, the page test this one). Every datum is escaped in both.
 */
import { randomBytes } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Config } from '../config.ts';
import type { Sql } from '../db.ts';
import { listBackfills, type BackfillListItem } from '../enrichment/reports.ts';
import { coerceError } from '../errors.ts';
import type { JobDefinition } from '../job-definition.ts';
import type { Logger } from '../logger.ts';
import { redactSecrets } from '../redact.ts';
import { escapeHtml as esc, formatTimestamp, humanizeSeconds } from '../reports/html.ts';
import { resolveSchedules, type Schedule, type ScheduleStatus } from '../scheduler.ts';
import { loadPartitionGrid } from '../status/partitions.ts';
import { wrapAsync } from './error-handler.ts';

/** How often the page refreshes its data. */
export const STATUS_REFRESH_MS = 5000;

/** Finished backfills listed under the ones in progress. */
export const FINISHED_BACKFILLS_SHOWN = 10;

/** Backfills read per refresh: the ones in progress are among the newest requests. */
const BACKFILLS_READ = 100;

const DASH = '—';

/** A cell's state in the partition grid (the GET /api/v1/partitions contract). */
export type PartitionCellState = 'done' | 'failed' | 'missing' | 'running' | 'not_expected';

/** What the page reads of a grid cell. */
export interface PartitionCellView {
  date: string;
  state: PartitionCellState;
  partition: string | null;
  job_id: string | null;
  error: string | null;
  finished_at: string | null;
  attempts: number | null;
  can_rerun: boolean;
  /** Why, in a few words (a holiday, not due yet, covered by another run), for the tooltip. */
  note?: string | null;
}

/** What the page reads of a grid row (one partitioned job). */
export interface PartitionRowView {
  job: string;
  label: string;
  queue: string;
  schedule: { cron: string; tz: string } | null;
  cells: PartitionCellView[];
}

/** What the page reads of GET /api/v1/partitions. */
export interface PartitionGridView {
  from: string;
  to: string;
  /** Weekdays, ascending: the newest date is the rightmost column. */
  dates: string[];
  /** Today in the exchange's zone: its column is marked. */
  today?: string;
  jobs: PartitionRowView[];
  generated_at: string;
}

/** A section's data, or why it could not be read (the rest of the page still renders). */
export type Loaded<T> = { ok: true; value: T } | { ok: false; error: string };

export interface StatusPageData {
  schedules: Loaded<ScheduleStatus[]>;
  /** Null: the page ships without the grid and the script fetches it at once (the renderer allows it; the handler always loads it). */
  grid: Loaded<PartitionGridView> | null;
  backfills: Loaded<BackfillListItem[]>;
  csrfToken: string;
  /** The script's CSP nonce (fresh per response). */
  nonce: string;
  /** Where Bull Board is mounted, for links to a failed cell's job. */
  boardPath: string;
  now: Date;
}

export interface StatusPageDeps {
  db: Sql;
  config: Pick<Config, 'exchangeTz' | 'scheduleOverrides'>;
  logger: Logger;
  /** Job definitions of this process: the grid's rows (as for GET /api/v1/partitions). */
  definitions: readonly JobDefinition[];
  boardPath: string;
  /** The token POST /api/v1/partitions/rerun wants in `X-CSRF-Token`. */
  csrfToken: string;
  listSchedules(): Promise<ScheduleStatus[]>;
  /** @defaultValue `() => new Date()` */
  now?: () => Date;
}

// ---------------------------------------------------------------------------------------------
// Formatting (mirrored in the script)

const NUMBER = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** `in 3 min` / `5 min ago` for an ISO timestamp, relative to `now`. */
function relativeTime(iso: string, now: Date): string {
  const time = Date.parse(iso);
  if (Number.isNaN(time)) return iso;
  const seconds = (time - now.getTime()) / 1000;
  return seconds >= 0 ? `in ${humanizeSeconds(seconds)}` : `${humanizeSeconds(-seconds)} ago`;
}

function timeTag(iso: string | null, now: Date): string {
  if (iso === null) return DASH;
  return `<time datetime="${esc(iso)}" title="${esc(formatTimestamp(iso))}">${esc(relativeTime(iso, now))}</time>`;
}

function weekdayOf(date: string): string {
  const day = new Date(`${date}T00:00:00Z`).getUTCDay();
  return WEEKDAYS[day] ?? '';
}

function sectionError(what: string, error: string): string {
  return `<p class="error" role="alert">Could not load ${esc(what)}: ${esc(error)}</p>`;
}

function wrapTable(head: string[], rows: string[], label: string): string {
  return `<div class="table-wrap"><table aria-label="${esc(label)}"><thead><tr>${head.map((h) => `<th scope="col">${h}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table></div>`;
}

// ---------------------------------------------------------------------------------------------
// Sections

/** The schedules table (the inside of `#schedules-body`). */
export function renderSchedulesSection(section: Loaded<ScheduleStatus[]>, now: Date): string {
  if (!section.ok) return sectionError('the schedules', section.error);
  if (section.value.length === 0) return '<p class="none">No schedules: every job runs ad hoc or is switched off.</p>';
  const rows = section.value.map((s) => {
    const state = s.paused ? '<span class="badge paused">paused</span>' : '<span class="badge active">active</span>';
    const extra = [
      s.registered ? '' : '<span class="badge warn" title="No Job Scheduler in Redis: the scheduler process has not registered it">not registered</span>',
      s.running > 0 ? `<span class="badge running">${s.running} running</span>` : '',
    ].join('');
    const success = s.last_success === null ? DASH : `${timeTag(s.last_success, now)}<small>${esc(s.last_success_partition ?? '')}</small>`;
    const failure =
      s.last_failure === null
        ? DASH
        : `<span class="neg" title="${esc(s.last_failure_error ?? '')}">${timeTag(s.last_failure, now)}</span><small>${esc(s.last_failure_partition ?? '')}</small>`;
    const lag = s.lag_seconds > 0 ? `<span class="late">${esc(humanizeSeconds(s.lag_seconds))}</span>` : esc(humanizeSeconds(0));
    return (
      `<tr data-schedule="${esc(s.name)}"><th scope="row">${esc(s.name)}<small>${esc(s.queue)}</small></th>` +
      `<td><code>${esc(s.cron)}</code></td><td>${esc(s.tz)}</td><td>${timeTag(s.next_run, now)}</td>` +
      `<td>${success}</td><td>${failure}</td><td class="num">${lag}</td><td>${state}${extra}</td></tr>`
    );
  });
  return wrapTable(['Schedule', 'Cron', 'Zone', 'Next run', 'Last success', 'Last failure', 'Lag', 'State'], rows, 'Schedules');
}

const CELL_GLYPHS: Record<PartitionCellState, string> = { done: '✓', failed: '✕', running: '●', missing: '?', not_expected: '·' };
const CELL_WORDS: Record<PartitionCellState, string> = { done: 'done', failed: 'failed', running: 'running', missing: 'missing', not_expected: 'not expected' };

/** Bull Board's page of one job (its route is `/queue/:queueName/:jobId`). */
export function boardJobUrl(boardPath: string, queue: string, jobId: string): string {
  return `${boardPath}/queue/${encodeURIComponent(queue)}/${encodeURIComponent(jobId)}`;
}

function cellTitle(row: PartitionRowView, cell: PartitionCellView): string {
  const parts = [`${row.label} ${cell.date}: ${CELL_WORDS[cell.state]}`];
  if (cell.note) parts.push(cell.note);
  if (cell.attempts) parts.push(`attempts ${cell.attempts}`);
  if (cell.finished_at) parts.push(`finished ${formatTimestamp(cell.finished_at)}`);
  if (cell.error) parts.push(cell.error.length > 300 ? `${cell.error.slice(0, 300)}…` : cell.error);
  return parts.join(' · ');
}

function gridCell(row: PartitionRowView, cell: PartitionCellView, boardPath: string): string {
  const word = CELL_WORDS[cell.state];
  let glyph = `<span class="glyph" aria-hidden="true">${CELL_GLYPHS[cell.state]}</span><span class="sr">${esc(word)}</span>`;
  if (cell.state === 'failed' && cell.job_id) {
    glyph = `<a class="job-link" href="${esc(boardJobUrl(boardPath, row.queue, cell.job_id))}" aria-label="${esc(`${row.label} ${cell.date} failed: open the job in Bull Board`)}">${glyph}</a>`;
  }
  const rerun =
    cell.can_rerun && (cell.state === 'failed' || cell.state === 'missing')
      ? `<button type="button" class="rerun" aria-label="${esc(`re-run ${row.label} ${cell.date}`)}" title="re-run ${esc(cell.date)}">↻</button>`
      : '';
  return `<td class="cell s-${cell.state}" data-job="${esc(row.job)}" data-date="${esc(cell.date)}" data-state="${cell.state}" title="${esc(cellTitle(row, cell))}">${glyph}${rerun}</td>`;
}

const LEGEND =
  '<ul class="legend" aria-label="Legend">' +
  (['done', 'failed', 'running', 'missing', 'not_expected'] as const)
    .map((s) => `<li><span class="swatch s-${s}" aria-hidden="true">${CELL_GLYPHS[s]}</span>${CELL_WORDS[s]}</li>`)
    .join('') +
  '</ul>';

/** The partition grid with its legend (the inside of `#grid-body`). */
export function renderGridSection(section: Loaded<PartitionGridView> | null, boardPath: string): string {
  if (section === null) return `<p class="none">Loading the partition grid…</p>${LEGEND}`;
  if (!section.ok) return sectionError('the partition grid', section.error) + LEGEND;
  const grid = section.value;
  if (grid.jobs.length === 0) return `<p class="none">No partitioned jobs.</p>${LEGEND}`;
  const counts = { failed: 0, missing: 0, running: 0 };
  for (const row of grid.jobs) for (const cell of row.cells) if (cell.state in counts) counts[cell.state as keyof typeof counts] += 1;
  const summary =
    `<p class="meta">${esc(grid.from)} to ${esc(grid.to)} · <span class="${counts.failed ? 'neg' : ''}">${counts.failed} failed</span> · ` +
    `${counts.missing} missing · ${counts.running} running</p>`;
  const head =
    '<th scope="col" class="job">Job</th>' +
    grid.dates
      .map((d) => {
        const today = d === grid.today;
        return `<th scope="col" class="date${today ? ' today' : ''}" title="${esc(`${weekdayOf(d)} ${d}${today ? ' (today)' : ''}`)}"><span>${esc(weekdayOf(d))}</span>${esc(d.slice(5))}</th>`;
      })
      .join('');
  const rows = grid.jobs.map((row) => {
    const byDate = new Map(row.cells.map((c) => [c.date, c]));
    const title = row.schedule ? `${row.job} · ${row.schedule.cron} ${row.schedule.tz}` : `${row.job} · ad hoc`;
    const cells = grid.dates.map((d) => {
      const cell = byDate.get(d);
      return cell ? gridCell(row, cell, boardPath) : `<td class="cell" data-job="${esc(row.job)}" data-date="${esc(d)}" data-state="none"></td>`;
    });
    return `<tr data-row="${esc(row.job)}"><th scope="row" class="job" title="${esc(title)}">${esc(row.label)}<small>${esc(row.job)}</small></th>${cells.join('')}</tr>`;
  });
  return `${summary}<div class="grid-wrap"><table class="grid" aria-label="Partitions by job and date"><thead><tr>${head}</tr></thead><tbody>${rows.join('')}</tbody></table></div>${LEGEND}`;
}

const ACTIVE_BACKFILL = new Set(['queued', 'in_progress', 'cancelling']);

function symbolsOf(b: BackfillListItem): string {
  const shown = b.symbols.slice(0, 4).join(', ');
  const more = b.symbols.length > 4 ? ` +${b.symbols.length - 4}` : '';
  return `<span title="${esc(b.symbols.join(', '))}">${esc(shown + more)}</span>`;
}

function backfillLink(b: BackfillListItem): string {
  return `<a href="/api/v1/backfills/${esc(encodeURIComponent(b.backfill_id))}" title="${esc(b.backfill_id)}"><code>${esc(b.backfill_id.slice(0, 8))}</code></a>`;
}

function rate(value: number | null): string {
  return value === null ? DASH : esc(NUMBER.format(value));
}

/** Backfills in progress and the last finished ones (the inside of `#backfills-body`). */
export function renderBackfillsSection(section: Loaded<BackfillListItem[]>, now: Date): string {
  if (!section.ok) return sectionError('the backfills', section.error);
  const active = section.value.filter((b) => ACTIVE_BACKFILL.has(b.status));
  const finished = section.value.filter((b) => !ACTIVE_BACKFILL.has(b.status)).slice(0, FINISHED_BACKFILLS_SHOWN);
  const activeRows = active.map((b) => {
    const failed = b.chunks_failed > 0 ? ` <span class="neg">${b.chunks_failed} failed</span>` : '';
    return (
      `<tr data-backfill="${esc(b.backfill_id)}"><td>${backfillLink(b)}</td><td>${symbolsOf(b)}<small>${esc(b.timeframes.join(', '))}</small></td>` +
      `<td class="range">${esc(b.from)} to ${esc(b.to)}</td><td><span class="badge ${esc(b.status)}">${esc(b.status)}</span></td>` +
      `<td class="progress"><progress max="${b.chunks_total}" value="${b.chunks_done}" aria-label="${esc(`chunks of ${b.backfill_id}`)}"></progress>` +
      `<small>${b.chunks_done}/${b.chunks_total} chunks (${esc(String(b.progress_pct))}%)${failed}</small></td>` +
      `<td class="num">${rate(b.bars_per_second)}</td><td class="num">${b.eta_seconds === null ? DASH : esc(humanizeSeconds(b.eta_seconds))}</td>` +
      `<td>${timeTag(b.started_at, now)}</td></tr>`
    );
  });
  const finishedRows = finished.map((b) => {
    const took = b.started_at && b.finished_at ? humanizeSeconds((Date.parse(b.finished_at) - Date.parse(b.started_at)) / 1000) : DASH;
    return (
      `<tr data-backfill="${esc(b.backfill_id)}"><td>${backfillLink(b)}</td><td>${symbolsOf(b)}<small>${esc(b.timeframes.join(', '))}</small></td>` +
      `<td class="range">${esc(b.from)} to ${esc(b.to)}</td><td><span class="badge ${esc(b.status)}">${esc(b.status)}</span></td>` +
      `<td class="num">${esc(NUMBER.format(b.bars_written))}</td><td class="num">${rate(b.bars_per_second)}</td>` +
      `<td>${timeTag(b.finished_at, now)}</td><td class="num">${esc(took)}</td></tr>`
    );
  });
  return (
    '<h3>In progress</h3>' +
    (activeRows.length
      ? wrapTable(['Backfill', 'Symbols', 'Range', 'Status', 'Progress', 'Bars/s', 'ETA', 'Started'], activeRows, 'Backfills in progress')
      : '<p class="none">No backfill in progress.</p>') +
    `<h3>Last finished</h3>` +
    (finishedRows.length
      ? wrapTable(['Backfill', 'Symbols', 'Range', 'Status', 'Bars', 'Bars/s', 'Finished', 'Took'], finishedRows, 'Finished backfills')
      : '<p class="none">No finished backfills yet.</p>')
  );
}

// ---------------------------------------------------------------------------------------------
// The page

const STYLE = `
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--pos:#1a7f37;--neg:#cf222e;--accent:#0969da;--bg-soft:#f6f8fa;--amber:#bf8700}
*{box-sizing:border-box}
body{margin:0 auto;max-width:80rem;padding:1rem;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);overflow-wrap:break-word}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.25rem;margin:2rem 0 .5rem;border-bottom:1px solid var(--line);padding-bottom:.25rem}
h3{font-size:1.05rem;margin:1.25rem 0 .5rem}
a{color:var(--accent)}.meta,.none,small{color:var(--muted)}
nav ul{list-style:none;padding:0;margin:.5rem 0;display:flex;flex-wrap:wrap;gap:.25rem 1rem}
.neg{color:var(--neg)}.late{color:var(--neg);font-weight:600}
.error{border:2px solid var(--neg);background:#ffebe9;padding:.5rem .75rem;border-radius:6px}
#notice:empty,#refresh-state:empty{display:none}
#notice{border:1px solid var(--line);background:var(--bg-soft);padding:.4rem .75rem;border-radius:6px}
#refresh-state{color:var(--neg)}
.table-wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;white-space:nowrap}.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td small,th small{display:block;font-weight:normal}
code{font-size:.85em;white-space:nowrap}
td.range{white-space:nowrap}
.badge{display:inline-block;margin:0 .25rem .15rem 0;padding:0 .4rem;border-radius:1em;font-size:.8rem;border:1px solid var(--line);white-space:nowrap}
.badge.active,.badge.completed{border-color:var(--pos);color:var(--pos)}
.badge.paused,.badge.warn,.badge.cancelling,.badge.queued{border-color:var(--amber);color:#7d4e00;background:#fff8c5}
.badge.failed{border-color:var(--neg);color:var(--neg)}.badge.running,.badge.in_progress{border-color:var(--accent);color:var(--accent)}
progress{width:100%;min-width:6rem;height:.8rem;accent-color:var(--accent)}
td.progress{min-width:9rem}
.grid-wrap{overflow-x:auto;max-width:100%;border:1px solid var(--line);border-radius:6px}
table.grid{width:auto;border-collapse:separate;border-spacing:2px;font-size:.8rem}
table.grid th,table.grid td{border:0;padding:0}
table.grid th.date{text-align:center;font-weight:normal;color:var(--muted);font-size:.7rem;font-variant-numeric:tabular-nums;padding:.2rem 0;min-width:1.8rem}
table.grid th.date span{display:block}
table.grid th.date.today{color:var(--fg);font-weight:700;box-shadow:inset 0 -2px 0 var(--accent)}
table.grid th.job{position:sticky;left:0;z-index:1;background:#fff;padding:.2rem .5rem .2rem .25rem;max-width:11rem;white-space:normal}
td.cell{width:1.8rem;height:1.8rem;min-width:1.8rem;text-align:center;vertical-align:middle;border-radius:4px;position:relative;color:#fff;font-weight:700;line-height:1}
td.cell .glyph{display:inline-block}
td.cell a.job-link{color:inherit;text-decoration:none;display:inline-block;padding:.15rem}
.s-done{background:var(--pos)}
.s-failed{background:var(--neg)}
.s-running{background:var(--accent);animation:pulse 1.2s ease-in-out infinite}
.s-missing{background:#fff8c5;box-shadow:inset 0 0 0 2px var(--amber);color:#7d4e00}
.s-not_expected{background:#eaeef2;color:#8c959f}
@keyframes pulse{50%{opacity:.45}}
@media (prefers-reduced-motion:reduce){.s-running{animation:none;background-image:repeating-linear-gradient(45deg,transparent 0 4px,rgba(255,255,255,.3) 4px 8px)}}
button.rerun{display:block;margin:.05rem auto 0;padding:0 .15rem;font:inherit;font-size:.7rem;line-height:1.05;border-radius:3px;border:1px solid currentColor;background:#fff;color:var(--fg);cursor:pointer}
td.s-failed button.rerun{color:var(--neg)}
/* A missing cell's button says enough; the outline marks it missing. */
td.s-missing:has(button.rerun) .glyph{display:none}
button.rerun:disabled{opacity:.5;cursor:progress}
.legend{list-style:none;padding:0;margin:.5rem 0;display:flex;flex-wrap:wrap;gap:.25rem 1rem;font-size:.85rem}
.legend .swatch{display:inline-block;width:1.2rem;height:1.2rem;line-height:1.2rem;text-align:center;border-radius:3px;margin-right:.3rem;color:#fff;font-weight:700;vertical-align:middle}
.legend .swatch.s-missing{color:#7d4e00}.legend .swatch.s-not_expected{color:#8c959f}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
@media (max-width:40rem){body{padding:.5rem}h2{margin-top:1.25rem}table{font-size:.8rem}th,td{padding:.25rem .3rem}}
`;

/**
 * The script: refresh every STATUS_REFRESH_MS from the JSON APIs, re-render each section with the
 * same markup as the server, and send re-run clicks. A re-run shows its cell as running (queued)
 * until the grid reports something other than the state it was clicked in, or two minutes pass.
 */
const SCRIPT = String.raw`
(function () {
  'use strict';
  var body = document.body;
  var REFRESH_MS = Number(body.getAttribute('data-refresh-ms')) || 5000;
  var BOARD = body.getAttribute('data-board') || '/admin/queues';
  var FINISHED_SHOWN = Number(body.getAttribute('data-finished-shown')) || 10;
  var PENDING_MS = 120000;
  var meta = document.querySelector('meta[name="csrf-token"]');
  var CSRF = meta ? meta.getAttribute('content') : '';
  var DASH = '\u2014';
  var WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  var GLYPHS = { done: '\u2713', failed: '\u2715', running: '\u25cf', missing: '?', not_expected: '\u00b7' };
  var WORDS = { done: 'done', failed: 'failed', running: 'running', missing: 'missing', not_expected: 'not expected' };
  var ACTIVE = { queued: 1, in_progress: 1, cancelling: 1 };
  var NUMBER = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
  var ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  var pending = {};
  var lastGrid = null;
  var timer = null;
  var busy = false;

  function esc(v) { return String(v).replace(/[&<>"']/g, function (c) { return ESCAPES[c]; }); }
  function humanize(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return DASH;
    var s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min';
    var h = Math.floor(m / 60);
    if (h < 24) return m % 60 ? h + ' h ' + (m % 60) + ' min' : h + ' h';
    var d = Math.floor(h / 24);
    return h % 24 ? d + ' d ' + (h % 24) + ' h' : d + ' d';
  }
  function stamp(iso) {
    if (iso === null || iso === undefined) return DASH;
    var t = Date.parse(iso);
    return isNaN(t) ? String(iso) : new Date(t).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
  }
  function relative(iso, now) {
    var t = Date.parse(iso);
    if (isNaN(t)) return String(iso);
    var s = (t - now) / 1000;
    return s >= 0 ? 'in ' + humanize(s) : humanize(-s) + ' ago';
  }
  function timeTag(iso, now) {
    if (iso === null || iso === undefined) return DASH;
    return '<time datetime="' + esc(iso) + '" title="' + esc(stamp(iso)) + '">' + esc(relative(iso, now)) + '</time>';
  }
  function weekday(date) { return WEEKDAYS[new Date(date + 'T00:00:00Z').getUTCDay()] || ''; }
  function sectionError(what, error) { return '<p class="error" role="alert">Could not load ' + esc(what) + ': ' + esc(error) + '</p>'; }
  function table(head, rows, label) {
    return '<div class="table-wrap"><table aria-label="' + esc(label) + '"><thead><tr>' +
      head.map(function (h) { return '<th scope="col">' + h + '</th>'; }).join('') + '</tr></thead><tbody>' + rows.join('') + '</tbody></table></div>';
  }

  function renderSchedules(list, now) {
    if (list.length === 0) return '<p class="none">No schedules: every job runs ad hoc or is switched off.</p>';
    var rows = list.map(function (s) {
      var state = s.paused ? '<span class="badge paused">paused</span>' : '<span class="badge active">active</span>';
      var extra = (s.registered ? '' : '<span class="badge warn" title="No Job Scheduler in Redis: the scheduler process has not registered it">not registered</span>') +
        (s.running > 0 ? '<span class="badge running">' + esc(s.running) + ' running</span>' : '');
      var success = s.last_success === null ? DASH : timeTag(s.last_success, now) + '<small>' + esc(s.last_success_partition || '') + '</small>';
      var failure = s.last_failure === null ? DASH :
        '<span class="neg" title="' + esc(s.last_failure_error || '') + '">' + timeTag(s.last_failure, now) + '</span><small>' + esc(s.last_failure_partition || '') + '</small>';
      var lag = s.lag_seconds > 0 ? '<span class="late">' + esc(humanize(s.lag_seconds)) + '</span>' : esc(humanize(0));
      return '<tr data-schedule="' + esc(s.name) + '"><th scope="row">' + esc(s.name) + '<small>' + esc(s.queue) + '</small></th>' +
        '<td><code>' + esc(s.cron) + '</code></td><td>' + esc(s.tz) + '</td><td>' + timeTag(s.next_run, now) + '</td>' +
        '<td>' + success + '</td><td>' + failure + '</td><td class="num">' + lag + '</td><td>' + state + extra + '</td></tr>';
    });
    return table(['Schedule', 'Cron', 'Zone', 'Next run', 'Last success', 'Last failure', 'Lag', 'State'], rows, 'Schedules');
  }

  function boardUrl(queue, jobId) { return BOARD + '/queue/' + encodeURIComponent(queue) + '/' + encodeURIComponent(jobId); }
  function cellTitle(row, cell, queued) {
    var parts = [row.label + ' ' + cell.date + ': ' + (queued ? 're-run queued' : WORDS[cell.state])];
    if (cell.note) parts.push(cell.note);
    if (cell.attempts) parts.push('attempts ' + cell.attempts);
    if (cell.finished_at) parts.push('finished ' + stamp(cell.finished_at));
    if (cell.error) parts.push(cell.error.length > 300 ? cell.error.slice(0, 300) + '\u2026' : cell.error);
    return parts.join(' \u00b7 ');
  }
  // A re-run clicked here shows as running (queued) until the grid moves on from the state it was clicked in.
  function effective(row, cell) {
    var key = row.job + '\n' + cell.date;
    var p = pending[key];
    if (!p) return { state: cell.state, queued: false };
    if (cell.state === p.was && Date.now() < p.until) return { state: 'running', queued: true };
    delete pending[key];
    return { state: cell.state, queued: false };
  }
  function cellHtml(row, cell) {
    var shown = effective(row, cell);
    var state = shown.state;
    var queued = shown.queued;
    var glyph = '<span class="glyph" aria-hidden="true">' + GLYPHS[state] + '</span><span class="sr">' + esc(queued ? 're-run queued' : WORDS[state]) + '</span>';
    if (state === 'failed' && cell.job_id) {
      glyph = '<a class="job-link" href="' + esc(boardUrl(row.queue, cell.job_id)) + '" aria-label="' + esc(row.label + ' ' + cell.date + ' failed: open the job in Bull Board') + '">' + glyph + '</a>';
    }
    var rerun = cell.can_rerun && (state === 'failed' || state === 'missing')
      ? '<button type="button" class="rerun" aria-label="' + esc('re-run ' + row.label + ' ' + cell.date) + '" title="re-run ' + esc(cell.date) + '">\u21bb</button>'
      : '';
    return '<td class="cell s-' + state + '" data-job="' + esc(row.job) + '" data-date="' + esc(cell.date) + '" data-state="' + state + '"' +
      (queued ? ' data-queued="true"' : '') + ' title="' + esc(cellTitle(row, cell, queued)) + '">' + glyph + rerun + '</td>';
  }
  function legend() {
    return '<ul class="legend" aria-label="Legend">' + ['done', 'failed', 'running', 'missing', 'not_expected'].map(function (s) {
      return '<li><span class="swatch s-' + s + '" aria-hidden="true">' + GLYPHS[s] + '</span>' + WORDS[s] + '</li>';
    }).join('') + '</ul>';
  }
  function renderGrid(grid) {
    if (grid.jobs.length === 0) return '<p class="none">No partitioned jobs.</p>' + legend();
    var counts = { failed: 0, missing: 0, running: 0 };
    grid.jobs.forEach(function (row) { row.cells.forEach(function (c) { var state = effective(row, c).state; if (state in counts) counts[state] += 1; }); });
    var summary = '<p class="meta">' + esc(grid.from) + ' to ' + esc(grid.to) + ' \u00b7 <span class="' + (counts.failed ? 'neg' : '') + '">' + counts.failed + ' failed</span> \u00b7 ' +
      counts.missing + ' missing \u00b7 ' + counts.running + ' running</p>';
    var head = '<th scope="col" class="job">Job</th>' + grid.dates.map(function (d) {
      var today = d === grid.today;
      return '<th scope="col" class="date' + (today ? ' today' : '') + '" title="' + esc(weekday(d) + ' ' + d + (today ? ' (today)' : '')) + '"><span>' + esc(weekday(d)) + '</span>' + esc(d.slice(5)) + '</th>';
    }).join('');
    var rows = grid.jobs.map(function (row) {
      var byDate = {};
      row.cells.forEach(function (c) { byDate[c.date] = c; });
      var title = row.schedule ? row.job + ' \u00b7 ' + row.schedule.cron + ' ' + row.schedule.tz : row.job + ' \u00b7 ad hoc';
      var cells = grid.dates.map(function (d) {
        var cell = byDate[d];
        return cell ? cellHtml(row, cell) : '<td class="cell" data-job="' + esc(row.job) + '" data-date="' + esc(d) + '" data-state="none"></td>';
      });
      return '<tr data-row="' + esc(row.job) + '"><th scope="row" class="job" title="' + esc(title) + '">' + esc(row.label) + '<small>' + esc(row.job) + '</small></th>' + cells.join('') + '</tr>';
    });
    return summary + '<div class="grid-wrap"><table class="grid" aria-label="Partitions by job and date"><thead><tr>' + head + '</tr></thead><tbody>' + rows.join('') + '</tbody></table></div>' + legend();
  }

  function symbols(b) {
    var shown = b.symbols.slice(0, 4).join(', ') + (b.symbols.length > 4 ? ' +' + (b.symbols.length - 4) : '');
    return '<span title="' + esc(b.symbols.join(', ')) + '">' + esc(shown) + '</span>';
  }
  function backfillLink(b) {
    return '<a href="/api/v1/backfills/' + esc(encodeURIComponent(b.backfill_id)) + '" title="' + esc(b.backfill_id) + '"><code>' + esc(b.backfill_id.slice(0, 8)) + '</code></a>';
  }
  function rate(v) { return v === null || v === undefined ? DASH : esc(NUMBER.format(v)); }
  function renderBackfills(list, now) {
    var active = list.filter(function (b) { return ACTIVE[b.status]; });
    var finished = list.filter(function (b) { return !ACTIVE[b.status]; }).slice(0, FINISHED_SHOWN);
    var activeRows = active.map(function (b) {
      var failed = b.chunks_failed > 0 ? ' <span class="neg">' + esc(b.chunks_failed) + ' failed</span>' : '';
      return '<tr data-backfill="' + esc(b.backfill_id) + '"><td>' + backfillLink(b) + '</td><td>' + symbols(b) + '<small>' + esc(b.timeframes.join(', ')) + '</small></td>' +
        '<td class="range">' + esc(b.from) + ' to ' + esc(b.to) + '</td><td><span class="badge ' + esc(b.status) + '">' + esc(b.status) + '</span></td>' +
        '<td class="progress"><progress max="' + esc(b.chunks_total) + '" value="' + esc(b.chunks_done) + '" aria-label="' + esc('chunks of ' + b.backfill_id) + '"></progress>' +
        '<small>' + esc(b.chunks_done) + '/' + esc(b.chunks_total) + ' chunks (' + esc(b.progress_pct) + '%)' + failed + '</small></td>' +
        '<td class="num">' + rate(b.bars_per_second) + '</td><td class="num">' + (b.eta_seconds === null || b.eta_seconds === undefined ? DASH : esc(humanize(b.eta_seconds))) + '</td>' +
        '<td>' + timeTag(b.started_at === undefined ? null : b.started_at, now) + '</td></tr>';
    });
    var finishedRows = finished.map(function (b) {
      var took = b.started_at && b.finished_at ? humanize((Date.parse(b.finished_at) - Date.parse(b.started_at)) / 1000) : DASH;
      return '<tr data-backfill="' + esc(b.backfill_id) + '"><td>' + backfillLink(b) + '</td><td>' + symbols(b) + '<small>' + esc(b.timeframes.join(', ')) + '</small></td>' +
        '<td class="range">' + esc(b.from) + ' to ' + esc(b.to) + '</td><td><span class="badge ' + esc(b.status) + '">' + esc(b.status) + '</span></td>' +
        '<td class="num">' + esc(NUMBER.format(b.bars_written)) + '</td><td class="num">' + rate(b.bars_per_second) + '</td>' +
        '<td>' + timeTag(b.finished_at, now) + '</td><td class="num">' + esc(took) + '</td></tr>';
    });
    return '<h3>In progress</h3>' +
      (activeRows.length ? table(['Backfill', 'Symbols', 'Range', 'Status', 'Progress', 'Bars/s', 'ETA', 'Started'], activeRows, 'Backfills in progress') : '<p class="none">No backfill in progress.</p>') +
      '<h3>Last finished</h3>' +
      (finishedRows.length ? table(['Backfill', 'Symbols', 'Range', 'Status', 'Bars', 'Bars/s', 'Finished', 'Took'], finishedRows, 'Finished backfills') : '<p class="none">No finished backfills yet.</p>');
  }

  function put(id, html) {
    var el = document.getElementById(id);
    if (el && el.innerHTML !== html) el.innerHTML = html;
  }
  function putGrid(html) {
    var el = document.getElementById('grid-body');
    if (!el || el.innerHTML === html) return;
    var wrap = el.querySelector('.grid-wrap');
    // Keep the reader's horizontal position; the first grid starts scrolled to the newest dates.
    var left = wrap ? wrap.scrollLeft : null;
    el.innerHTML = html;
    var next = el.querySelector('.grid-wrap');
    if (next) next.scrollLeft = left === null ? next.scrollWidth : left;
  }
  function getJson(url) {
    return fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status + ' from ' + url);
      return r.json();
    });
  }
  function refresh() {
    if (busy) return;
    busy = true;
    clearTimeout(timer);
    Promise.allSettled([getJson('/api/v1/schedules'), getJson('/api/v1/partitions'), getJson('/api/v1/backfills?limit=100')]).then(function (results) {
      var now = Date.now();
      var failures = [];
      if (results[0].status === 'fulfilled') put('schedules-body', renderSchedules(results[0].value.schedules, now));
      else failures.push(results[0].reason);
      if (results[1].status === 'fulfilled') { lastGrid = results[1].value; putGrid(renderGrid(lastGrid)); }
      else if (lastGrid === null) { failures.push(results[1].reason); put('grid-body', sectionError('the partition grid', String(results[1].reason.message)) + legend()); }
      else failures.push(results[1].reason);
      if (results[2].status === 'fulfilled') put('backfills-body', renderBackfills(results[2].value.backfills, now));
      else failures.push(results[2].reason);
      var updated = document.getElementById('updated');
      if (updated) { updated.setAttribute('datetime', new Date(now).toISOString()); updated.textContent = stamp(new Date(now).toISOString()); }
      var state = document.getElementById('refresh-state');
      if (state) state.textContent = failures.length ? 'Refresh failed (' + failures.map(function (f) { return f.message; }).join('; ') + '); showing the last data, trying again.' : '';
    }).finally(function () {
      busy = false;
      timer = setTimeout(refresh, REFRESH_MS);
    });
  }
  function showQueued(cell, job, date) {
    cell.className = 'cell s-running';
    cell.setAttribute('data-state', 'running');
    cell.setAttribute('data-queued', 'true');
    cell.title = job + ' ' + date + ': re-run queued';
    cell.innerHTML = '<span class="glyph" aria-hidden="true">' + GLYPHS.running + '</span><span class="sr">re-run queued</span>';
  }
  var noticeTimer = null;
  function notice(text) {
    var el = document.getElementById('notice');
    if (!el) return;
    el.textContent = text;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () { el.textContent = ''; }, 30000);
  }

  document.addEventListener('click', function (event) {
    var button = event.target.closest && event.target.closest('button.rerun');
    if (!button) return;
    var cell = button.closest('[data-job][data-date]');
    if (!cell) return;
    var job = cell.getAttribute('data-job');
    var date = cell.getAttribute('data-date');
    var was = cell.getAttribute('data-state');
    button.disabled = true;
    fetch('/api/v1/partitions/rerun', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'x-csrf-token': CSRF },
      body: JSON.stringify({ job: job, date: date }),
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) { return { status: r.status, body: b }; });
    }).then(function (res) {
      var detail = res.body && (res.body.detail || res.body.error);
      if (res.status === 202 || res.status === 409) {
        // 409: already queued, running or done; the next refresh shows which.
        pending[job + '\n' + date] = { was: was, until: Date.now() + PENDING_MS };
        notice(res.status === 202 ? 'Re-run of ' + job + ' ' + date + ' queued as ' + (res.body.job_id || 'a job') + '.' : 'Not queued: ' + job + ' ' + date + (detail ? ': ' + detail : ' is already queued, running or done.'));
        showQueued(cell, job, date);
        refresh();
      } else {
        button.disabled = false;
        notice('Re-run of ' + job + ' ' + date + ' failed: HTTP ' + res.status + (detail ? ': ' + detail : ''));
      }
    }).catch(function (error) {
      button.disabled = false;
      notice('Re-run of ' + job + ' ' + date + ' failed: ' + error.message);
    });
  });

  // A page served without its grid loads it now; otherwise the data is fresh and waits one period.
  if (document.getElementById('grid-body') && document.getElementById('grid-body').hasAttribute('data-pending')) refresh();
  else {
    var wrap = document.querySelector('#grid-body .grid-wrap');
    if (wrap) wrap.scrollLeft = wrap.scrollWidth;
    timer = setTimeout(refresh, REFRESH_MS);
  }
})();
`;

/** The CSP of the page: its own inline style, the one script carrying this nonce, fetches to this origin only. */
export function statusPageCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'self'",
    // The re-run buttons must not be clickable through someone else's frame.
    "frame-ancestors 'none'",
  ].join('; ');
}

/** The whole page. Pure: everything it shows is in `data`. */
export function renderStatusPage(data: StatusPageData): string {
  const links =
    '<nav aria-label="Links"><ul>' +
    `<li><a href="${esc(data.boardPath)}">Bull Board</a></li>` +
    '<li><a href="/reports/">Reports</a></li>' +
    '<li><a href="/metrics">Metrics</a></li>' +
    '<li><a href="/api/v1/schedules">Schedules (JSON)</a></li>' +
    '<li><a href="/api/v1/partitions">Partitions (JSON)</a></li>' +
    '<li><a href="/api/v1/backfills">Backfills (JSON)</a></li>' +
    '</ul></nav>';
  const now = data.now.toISOString();
  const gridAttrs = data.grid === null ? ' data-pending' : '';
  return (
    `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width,initial-scale=1">\n` +
    `<meta name="csrf-token" content="${esc(data.csrfToken)}">\n<link rel="icon" href="data:,">\n<title>bullpen status</title>\n<style>${STYLE}</style>\n</head>\n` +
    `<body data-board="${esc(data.boardPath)}" data-refresh-ms="${STATUS_REFRESH_MS}" data-finished-shown="${FINISHED_BACKFILLS_SHOWN}">\n` +
    `<header><h1>bullpen status</h1>` +
    `<p class="meta">Updated <time id="updated" datetime="${esc(now)}">${esc(formatTimestamp(now))}</time> · refreshes every ${STATUS_REFRESH_MS / 1000} s</p>` +
    `<p id="refresh-state" role="status"></p><p id="notice" role="status" aria-live="polite"></p>${links}</header>\n<main>\n` +
    `<section id="schedules" aria-labelledby="schedules-h"><h2 id="schedules-h">Schedules</h2><div id="schedules-body">${renderSchedulesSection(data.schedules, data.now)}</div></section>\n` +
    `<section id="partitions" aria-labelledby="partitions-h"><h2 id="partitions-h">Partitions</h2><div id="grid-body"${gridAttrs}>${renderGridSection(data.grid, data.boardPath)}</div></section>\n` +
    `<section id="backfills" aria-labelledby="backfills-h"><h2 id="backfills-h">Backfills</h2><div id="backfills-body">${renderBackfillsSection(data.backfills, data.now)}</div></section>\n` +
    `</main>\n<script nonce="${esc(data.nonce)}">${SCRIPT}</script>\n</body>\n</html>\n`
  );
}

async function settle<T>(what: string, load: () => Promise<T>, logger: Logger): Promise<Loaded<T>> {
  try {
    return { ok: true, value: await load() };
  } catch (thrown) {
    const err = coerceError(thrown);
    logger.warn({ err, section: what }, 'status page section failed to load');
    // The message is shown on the page, to viewers too: a driver error may quote its connection URL.
    return { ok: false, error: redactSecrets(err.message) };
  }
}

/** GET /: loads every section (one failing shows its error; the rest still render) and sends the page. */
export function createStatusPageHandler(deps: StatusPageDeps): RequestHandler {
  const clock = deps.now ?? (() => new Date());
  // Resolved on first use, as the partitions API does: start-up has already validated the overrides.
  let schedules: Schedule[] | undefined;
  const loadGrid = (now: Date): Promise<PartitionGridView> =>
    loadPartitionGrid(deps.db, {
      now,
      definitions: deps.definitions,
      schedules: (schedules ??= resolveSchedules(deps.definitions, deps.config)),
      tz: deps.config.exchangeTz,
    });
  return wrapAsync(async (_req, res) => {
    const now = clock();
    const [scheduleSection, grid, backfills] = await Promise.all([
      settle('schedules', () => deps.listSchedules(), deps.logger),
      // The same grid GET /api/v1/partitions answers without parameters, so the script's refresh replaces like with like.
      settle('partitions', () => loadGrid(now), deps.logger),
      settle('backfills', () => listBackfills(deps.db, { limit: BACKFILLS_READ }), deps.logger),
    ]);
    const nonce = randomBytes(16).toString('base64');
    res
      .set({
        'Content-Security-Policy': statusPageCsp(nonce),
        // The page carries the CSRF token: no shared cache may keep it.
        'Cache-Control': 'no-store',
        'X-Frame-Options': 'DENY',
        'Referrer-Policy': 'same-origin',
      })
      .type('html')
      .send(renderStatusPage({ schedules: scheduleSection, grid, backfills, csrfToken: deps.csrfToken, nonce, boardPath: deps.boardPath, now }));
  });
}
