/**
 * What `bullpen run --wait` shows while the run goes on (DESIGN.md "Commands": long-running
 * commands with --wait show a progress bar on a terminal and plain lines otherwise): the run's
 * state, how long it has been at it, and what the job last reported (ctx.progress: a percentage,
 * drawn as a bar, or counts such as trade-etl's batches and rows). A job that reports nothing
 * still shows its state and elapsed time, so a long run cannot be taken for a hang.
 */
import type { Job, QueueEvents } from 'bullmq';
import cliProgress from 'cli-progress';

/** Plain lines (no terminal) at most this often while what they say changes… */
const PLAIN_LINE_MS = 3_000;
/** …and at least this often while it does not (the elapsed time moves on). */
const QUIET_LINE_MS = 30_000;
const BAR_WIDTH = 20;

export type RunState = 'waiting' | 'running';

/** Whole seconds as "12s", "3m 05s", "1h 02m" (also the backfill ETA's form). */
export function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}

/** What a job reported, in words: a percentage as a bar, an object as its fields; '' for nothing. */
export function describeProgress(progress: unknown): string {
  if (typeof progress === 'number' && Number.isFinite(progress)) {
    const pct = Math.max(0, Math.min(100, progress));
    const filled = Math.round((pct / 100) * BAR_WIDTH);
    return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${Math.round(pct)}%`;
  }
  if (progress !== null && typeof progress === 'object' && !Array.isArray(progress)) {
    return Object.entries(progress)
      .filter(([, value]) => ['number', 'string', 'boolean'].includes(typeof value))
      .map(([key, value]) => `${key} ${typeof value === 'number' ? value.toLocaleString('en-US') : String(value)}`)
      .join(', ');
  }
  return '';
}

/** One line: "trade-etl 2026-11-21T225112Z: running 12s · batches 12, extracted 1,200". */
export function renderRunProgress(label: string, state: RunState, elapsedMs: number, progress: unknown): string {
  const details = describeProgress(progress);
  return `${label}: ${state} ${formatDuration(Math.floor(elapsedMs / 1000))}${details ? ` · ${details}` : ''}`;
}

export interface RunProgressOptions {
  /** Redraw one line on stderr (a terminal) rather than print plain lines on stdout. */
  tty: boolean;
  /** Prints a plain line. */
  out: (line: string) => void;
  now?: () => number;
}

/**
 * Follows `job` through `events` (its 'active' and 'progress' events) until stopped. The
 * elapsed time counts from when it was seen running (from the start of the watch while it waits).
 */
export async function watchRunProgress(events: QueueEvents, job: Job, label: string, options: RunProgressOptions): Promise<{ stop(): void }> {
  const now = options.now ?? Date.now;
  const started = now();
  let state: RunState = (await job.getState()) === 'active' ? 'running' : 'waiting';
  let since = state === 'running' ? (job.processedOn ?? started) : started;
  // BullMQ starts every job's progress at 0: that is not a report of 0%.
  let progress: unknown = job.progress === 0 ? undefined : job.progress;
  const running = () => {
    if (state === 'running') return;
    state = 'running';
    since = now();
  };
  const onActive = ({ jobId }: { jobId: string }) => {
    if (jobId === job.id) running();
  };
  const onProgress = ({ jobId, data }: { jobId: string; data: unknown }) => {
    if (jobId !== job.id) return;
    running();
    progress = data;
  };
  events.on('active', onActive);
  events.on('progress', onProgress);
  const line = () => renderRunProgress(label, state, now() - since, progress);

  const bar = options.tty ? new cliProgress.SingleBar({ format: '{line}', hideCursor: true, fps: 5 }, cliProgress.Presets.shades_classic) : undefined;
  bar?.start(1, 0, { line: line() });
  let lastText = '';
  let lastAt = 0;
  const tick = () => {
    if (bar) {
      bar.update(0, { line: line() });
      return;
    }
    // Compared without the elapsed time, which changes every second.
    const text = `${state} ${describeProgress(progress)}`;
    const at = now();
    if ((text !== lastText && at - lastAt >= PLAIN_LINE_MS) || at - lastAt >= QUIET_LINE_MS) {
      options.out(line());
      lastText = text;
      lastAt = at;
    }
  };
  const timer = setInterval(tick, bar ? 200 : 1000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      events.off('active', onActive);
      events.off('progress', onProgress);
      bar?.stop();
    },
  };
}
