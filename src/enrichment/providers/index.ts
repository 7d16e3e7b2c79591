/**
 * The provider a backfill names, built from configuration once per process and shared.
 */
import type { Config } from '../../config.ts';
import { ConfigError } from '../../errors.ts';
import { createCsvProvider } from './csv.ts';
import { createPolygonProvider } from './polygon.ts';
import { createSyntheticProvider } from './synthetic.ts';
import type { MarketDataProvider, ProviderName } from './types.ts';

export type ProviderSettings = Pick<Config, 'marketDataCsvDir' | 'polygonApiKey' | 'polygonBaseUrl'>;

/** Returns a function giving each named provider, created on first use. */
export function createProviderRegistry(settings: ProviderSettings): (name: ProviderName) => MarketDataProvider {
  const made = new Map<ProviderName, MarketDataProvider>();
  return (name) => {
    let provider = made.get(name);
    if (!provider) {
      provider = createProvider(name, settings);
      made.set(name, provider);
    }
    return provider;
  };
}

function createProvider(name: ProviderName, settings: ProviderSettings): MarketDataProvider {
  switch (name) {
    case 'synthetic':
      return createSyntheticProvider();
    case 'csv':
      if (!settings.marketDataCsvDir) throw new ConfigError('MARKET_DATA_CSV_DIR: required for source csv');
      return createCsvProvider({ dir: settings.marketDataCsvDir });
    case 'polygon':
      if (!settings.polygonApiKey) throw new ConfigError('POLYGON_API_KEY: required for source polygon');
      return createPolygonProvider({ apiKey: settings.polygonApiKey, baseUrl: settings.polygonBaseUrl });
  }
}

/**
 * The budget a fetch from `name` takes a request from in the job (takeProviderRequest), or null.
 * The enrichment queue's BullMQ limiter is the default source's budget (ENRICHMENT_RATE_MAX) and
 * meters every job on it alike, so a source with a budget of its own that is not the default
 * (polygon on a synthetic deployment) would go unmetered but for this. Local sources have none.
 */
export function requestBudgetOf(config: Pick<Config, 'polygonRateLimit'>, name: ProviderName): Config['polygonRateLimit'] {
  return name === 'polygon' ? config.polygonRateLimit : null;
}
