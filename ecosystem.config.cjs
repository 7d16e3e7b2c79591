/**
 * PM2 process file for bullpen: one web, one scheduler, N workers.
 *
 *   DATABASE_URL=postgres://… REDIS_URL=redis://… BOARD_USER=… BOARD_PASSWORD=… \
 *   WORKERS=4 pm2 start ecosystem.config.js        # or ecosystem.config.cjs
 *
 * This CommonJS file is the definition; ecosystem.config.js (the name the docs use)
 * re-exports it. Why two files: package.json has "type": "module", so *.js files are ES
 * modules, and PM2 (up to at least 7.x) loads process files with require(). require() of
 * an ES module works only on Node >= 20.19 / >= 22.12 (this project's engines floor), and
 * PM2 then reads `.apps` from the module namespace, not from `export default` — hence the
 * named `apps` export in ecosystem.config.js. With an older Node running the pm2 CLI, or
 * when in doubt, point PM2 at ecosystem.config.cjs (supported since PM2 5.3.1).
 *
 * Environment: PM2 starts apps with the environment of the `pm2 start` shell, overlaid by
 * `env` below, so BOARD_USER, BOARD_PASSWORD, BULLPEN_PREFIX, CONCURRENCY_<QUEUE>,
 * SCHEDULE_<JOB>, LOG_LEVEL … set in that shell reach every process. Set DATABASE_URL
 * and REDIS_URL: several processes must share one PostgreSQL and one Redis.
 *   WORKERS        number of worker processes (default 2)
 *   WORKER_QUEUES  optional comma-separated queue list for the workers (--queues)
 *   WEB_PORT       port of the web role (default 3000)
 *
 * Shutdown: PM2 sends SIGINT, waits kill_timeout, then SIGKILLs. bullpen stops taking
 * jobs on SIGINT/SIGTERM and lets active ones finish for up to SHUTDOWN_TIMEOUT_MS (default
 * 30000), so kill_timeout (60000) must stay longer than SHUTDOWN_TIMEOUT_MS.
 */
'use strict';

const workers = Number.parseInt(process.env.WORKERS ?? '', 10);
const WORKERS = Number.isInteger(workers) && workers > 0 ? workers : 2;

/** Drops unset variables so they are inherited (or left unset), never passed as "undefined". */
function defined(env) {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
}

const sharedEnv = defined({
  NODE_ENV: 'production',
  DATABASE_URL: process.env.DATABASE_URL,
  SOURCE_DATABASE_URL: process.env.SOURCE_DATABASE_URL,
  REDIS_URL: process.env.REDIS_URL,
});

/** Settings every bullpen process shares. */
const common = {
  script: 'bin/bullpen.js',
  cwd: __dirname,
  exec_mode: 'fork',
  autorestart: true,
  max_memory_restart: '1G',
  // PM2 stops a process with SIGINT (daemon-wide PM2_KILL_SIGNAL; there is no per-app
  // setting), which bullpen handles exactly like SIGTERM: finish active jobs, then exit.
  kill_timeout: 60000,
  // A process that dies within 10 s of starting counts as unstable; back off between restarts.
  min_uptime: 10000,
  exp_backoff_restart_delay: 1000,
  time: true,
};

const workerArgs = ['start', '--role', 'worker'];
if (process.env.WORKER_QUEUES) workerArgs.push('--queues', process.env.WORKER_QUEUES);

module.exports = {
  apps: [
    {
      ...common,
      name: 'bullpen-web',
      args: ['start', '--role', 'web'],
      instances: 1,
      env: { ...sharedEnv, PORT: process.env.WEB_PORT || '3000' },
    },
    {
      ...common,
      name: 'bullpen-scheduler',
      args: ['start', '--role', 'scheduler'],
      // Exactly one: BullMQ Job Schedulers fire once per tick anyway, but catch-up,
      // reconciliation and deadline checks belong to a single process.
      instances: 1,
      // An explicit PORT makes the scheduler serve /healthz, /readyz and /metrics.
      env: { ...sharedEnv, PORT: '3001' },
    },
    {
      ...common,
      name: 'bullpen-worker',
      args: workerArgs,
      instances: WORKERS,
      // Each worker gets its own probe/metrics port: 3100, 3101, …
      increment_var: 'PORT',
      env: { ...sharedEnv, PORT: '3100' },
    },
  ],
};
