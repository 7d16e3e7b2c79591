# bullpen: one image for every role (`start --role all|worker|scheduler|web`).
# tsx is a runtime dependency and bin/bullpen.js runs the TypeScript sources through it,
# so there is no build step: production dependencies plus the sources are the whole image.
FROM node:20-bookworm-slim

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    BULLPEN_HOME=/app/.bullpen \
    REPORTS_DIR=/app/reports \
    npm_config_update_notifier=false

WORKDIR /app

COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=warn \
 && npm cache clean --force

COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY jobs ./jobs
COPY sql ./sql

# Writable state for the unprivileged user: generated reports (mount a volume here to keep
# them) and BULLPEN_HOME (only used when DATABASE_URL / REDIS_URL are left unset).
RUN mkdir -p /app/reports /app/.bullpen && chown node:node /app/reports /app/.bullpen
USER node

EXPOSE 3000

# No curl in the slim image: probe with Node's own fetch.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# SIGTERM (docker stop) stops taking jobs and lets active ones finish for up to
# SHUTDOWN_TIMEOUT_MS (default 30 s); give the container a longer stop grace period.
STOPSIGNAL SIGTERM
CMD ["node", "bin/bullpen.js", "start"]
