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
 * The request budget of source `name` (takeProviderRequest), or null when it has none. Each source
 * is metered on its own: ENRICHMENT_RATE_MAX is the default source's budget (polygon's where it is
 * the default: 5 a minute unless set), POLYGON_RATE_MAX polygon's where another source is the
 * default. A budget holds only its own source's fetches; the other sources' series sharing the
 * enrichment queue go on.
 */
export function requestBudgetOf(config: Pick<Config, 'marketDataSource' | 'enrichmentRateLimit' | 'polygonRateLimit'>, name: ProviderName): Config['enrichmentRateLimit'] {
  if (name === config.marketDataSource) return config.enrichmentRateLimit;
  return name === 'polygon' ? config.polygonRateLimit : null;
}
