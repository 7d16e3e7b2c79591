-- Every metered source's fetches now go through enrichment.provider_budget (polygon's whatever
-- the default source is; the default source's when ENRICHMENT_RATE_MAX gives it a budget): the
-- enrichment queue has no BullMQ limiter left, and a 429 no longer pauses the whole queue.
--
-- places: series waiting for a request from a spent budget, each with the instant of its own
-- place in the window (epoch milliseconds, also counted in grants), so those waiting do not all
-- wake when one request frees. Keyed by the series (`<backfill>.<symbol>.<timeframe>`).
-- paused_until: the end of the provider's last 429 (its Retry-After): no fetch from it before.
ALTER TABLE enrichment.provider_budget
  ADD COLUMN places       jsonb       NOT NULL DEFAULT '{}',
  ADD COLUMN paused_until timestamptz;
