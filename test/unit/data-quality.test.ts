import { describe, expect, it } from 'vitest';
import type { Bar } from '../../src/analytics/bars.ts';
import type { BarReject } from '../../src/analytics/bar-validation.ts';
import { dailyQuality, enrichmentStatus, QUALITY_WEIGHTS, type QualityInput, type StatusInput } from '../../src/analytics/data-quality.ts';
import type { FeatureRow } from '../../src/analytics/features.ts';

const HOUR = 3_600_000;
const utc = (text: string) => Date.parse(text);

/** The seven 1h bar opens of a summer (EDT) session: 09:00 … 15:00 ET. */
const hours = (date: string) => Array.from({ length: 7 }, (_, i) => utc(`${date}T13:00:00Z`) + i * HOUR);
const bar = (ts: number): Bar => ({ ts, open: 10, high: 11, low: 9, close: 10.5, volume: 100 });
const WARM = { sma_50: 10, volatility_50: 0.01, rsi_14: 55, atr_14: 0.4 } as const;

function feature(ts: number, over: Partial<FeatureRow> = {}): FeatureRow {
  return {
    ts,
    return_1bar: null,
    return_1d: null,
    volatility_20: null,
    volatility_50: null,
    atr_14: null,
    sma_20: null,
    sma_50: null,
    ema_20: null,
    ema_50: null,
    rsi_14: null,
    volume_sma_20: null,
    trend_direction: null,
    market_structure: null,
    vsa_no_demand: false,
    vsa_no_supply: false,
    vsa_stopping_volume: false,
    anomaly: false,
    ...over,
  };
}

const reject = (ts: number, reason: BarReject['reason'] = 'ohlc_relation'): BarReject => ({ bar: bar(ts), reason, detail: 'test' });

/** 1h stock input for 2024-06-11 fetched after the close; bars and features built from `times`. */
function input(over: Partial<QualityInput> & { times?: number[]; warm?: boolean } = {}): QualityInput {
  const { times = hours('2024-06-11'), warm = true, ...rest } = over;
  const valid = times.map(bar);
  return {
    timeframe: '1h',
    calendar: 'nyse',
    from: '2024-06-11',
    to: '2024-06-11',
    valid,
    features: valid.map((b) => feature(b.ts, warm ? WARM : {})),
    rejects: [],
    fetchedAt: utc('2024-06-12T12:00:00Z'),
    ...rest,
  };
}

describe('dailyQuality', () => {
  it('the weights are the seed’s', () => {
    expect(QUALITY_WEIGHTS).toEqual({ completeness: 0.4, validation: 0.3, features: 0.2, freshness: 0.1 });
  });

  it('a full day with features warmed up scores 1', () => {
    expect(dailyQuality(input())).toEqual([
      {
        date: '2024-06-11',
        totalRecords: 7,
        validatedRecords: 7,
        validationRate: 100,
        gapsDetected: 0,
        anomaliesDetected: 0,
        completeness: 1,
        featuresRate: 1,
        freshness: 1,
        qualityScore: 1,
      },
    ]);
  });

  it('a full day without warmed-up features loses the features weight', () => {
    const [row] = dailyQuality(input({ warm: false }));
    expect(row).toMatchObject({ completeness: 1, validationRate: 100, featuresRate: 0, qualityScore: 0.8 });
  });

  it('a feature counts as warmed up only with all of SMA 50, volatility 50, RSI 14 and ATR 14', () => {
    const times = hours('2024-06-11');
    const features = times.map((ts, i) => {
      if (i === 0) return feature(ts, { ...WARM, sma_50: null });
      if (i === 1) return feature(ts, { ...WARM, volatility_50: null });
      if (i === 2) return feature(ts, { ...WARM, rsi_14: null });
      if (i === 3) return feature(ts, { ...WARM, atr_14: null });
      return feature(ts, { ...WARM, sma_20: null, ema_50: null }); // other columns do not matter
    });
    const [row] = dailyQuality(input({ features }));
    expect(row?.featuresRate).toBe(0.43); // 3/7
  });

  it('a 1m full day: 390 bars, completeness 1', () => {
    const first = utc('2024-06-11T13:30:00Z');
    const times = Array.from({ length: 390 }, (_, i) => first + i * 60_000);
    const [row] = dailyQuality(input({ timeframe: '1m', times }));
    expect(row).toMatchObject({ totalRecords: 390, gapsDetected: 0, completeness: 1, qualityScore: 1 });
  });

  it('gaps: missing slots lower completeness', () => {
    const times = hours('2024-06-11').filter((_, i) => i !== 2 && i !== 5);
    const [row] = dailyQuality(input({ times }));
    expect(row).toMatchObject({ totalRecords: 5, validatedRecords: 5, gapsDetected: 2, completeness: 0.71, validationRate: 100 });
    expect(row?.qualityScore).toBe(0.89); // 0.4·5/7 + 0.3 + 0.2 + 0.1 = 0.8857
  });

  it('a score by hand: 5 of 7 slots, 1 reject, 3 of 5 warmed up, fetched mid-session', () => {
    const all = hours('2024-06-11');
    const times = all.slice(0, 5);
    const features = times.map((ts, i) => feature(ts, i < 3 ? WARM : {}));
    const rows = dailyQuality(input({ times, features, rejects: [reject(all[5] as number)], fetchedAt: utc('2024-06-11T17:30:00Z') }));
    // 0.4·5/7 + 0.3·5/6 + 0.2·3/5 + 0.1·0.5 = 0.2857 + 0.25 + 0.12 + 0.05 = 0.7057
    expect(rows).toEqual([
      {
        date: '2024-06-11',
        totalRecords: 6,
        validatedRecords: 5,
        validationRate: 83.33,
        gapsDetected: 2,
        anomaliesDetected: 0,
        completeness: 0.71,
        featuresRate: 0.6,
        freshness: 0.5,
        qualityScore: 0.71,
      },
    ]);
  });

  it('rejects count in total_records and lower the validation rate, not completeness', () => {
    const all = hours('2024-06-11');
    const rejects = [reject(all[0] as number, 'duplicate_timestamp'), reject((all[1] as number) + 60_000, 'misaligned_timestamp')];
    const [row] = dailyQuality(input({ rejects }));
    expect(row).toMatchObject({ totalRecords: 9, validatedRecords: 7, validationRate: 77.78, completeness: 1, gapsDetected: 0 });
    expect(row?.qualityScore).toBe(0.93); // 0.4 + 0.3·7/9 + 0.2 + 0.1 = 0.9333
  });

  it('a reject with a bad timestamp is not counted on any day', () => {
    const rows = dailyQuality(input({ rejects: [reject(Number.NaN, 'bad_timestamp'), reject(1.5, 'bad_timestamp')] }));
    expect(rows).toHaveLength(1);
    expect(rows[0]?.totalRecords).toBe(7);
  });

  it('rejects on a day outside from..to make no row; on a closed day in range they do', () => {
    const sat = utc('2024-06-15T14:00:00Z');
    expect(dailyQuality(input({ rejects: [reject(utc('2024-06-12T14:00:00Z'), 'out_of_range')] })).map((r) => r.date)).toEqual(['2024-06-11']);
    const rows = dailyQuality(input({ from: '2024-06-15', to: '2024-06-16', times: [], rejects: [reject(sat, 'outside_session')], fetchedAt: utc('2024-06-20T00:00:00Z') }));
    expect(rows).toEqual([
      {
        date: '2024-06-15',
        totalRecords: 1,
        validatedRecords: 0,
        validationRate: 0,
        gapsDetected: 0,
        anomaliesDetected: 0,
        completeness: 1,
        featuresRate: 0,
        freshness: 1,
        qualityScore: 0.5,
      },
    ]);
  });

  it('counts anomalies from the feature rows', () => {
    const times = hours('2024-06-11');
    const features = times.map((ts, i) => feature(ts, { ...WARM, anomaly: i === 1 || i === 4 }));
    expect(dailyQuality(input({ features }))[0]?.anomaliesDetected).toBe(2);
  });

  it('freshness: 1 once the session has closed, 0.5 before', () => {
    const fresh = (fetchedAt: number) => dailyQuality(input({ fetchedAt }))[0]?.freshness;
    expect(fresh(utc('2024-06-11T20:00:00Z'))).toBe(1); // 16:00 ET exactly
    expect(fresh(utc('2024-06-11T19:59:59.999Z'))).toBe(0.5);
    expect(fresh(utc('2024-06-11T10:00:00Z'))).toBe(0.5);
    const early = (fetchedAt: number) =>
      dailyQuality({ ...input({ times: [] }), from: '2024-11-29', to: '2024-11-29', fetchedAt })[0]?.freshness;
    expect(early(utc('2024-11-29T18:00:00Z'))).toBe(1); // 13:00 EST
    expect(early(utc('2024-11-29T17:59:59Z'))).toBe(0.5);
    const crypto = (fetchedAt: number) =>
      dailyQuality({ ...input({ times: [] }), calendar: '24x7', from: '2024-06-15', to: '2024-06-15', fetchedAt })[0]?.freshness;
    expect(crypto(utc('2024-06-16T00:00:00Z'))).toBe(1);
    expect(crypto(utc('2024-06-15T23:59:59Z'))).toBe(0.5);
  });

  it('fresh vs provisional changes the score by 0.05', () => {
    const final = dailyQuality(input())[0]?.qualityScore;
    const provisional = dailyQuality(input({ fetchedAt: utc('2024-06-11T15:00:00Z') }))[0]?.qualityScore;
    expect(final).toBe(1);
    expect(provisional).toBe(0.95);
  });

  it('a session day with no bars gets a row of zeros with every slot a gap', () => {
    const rows = dailyQuality(input({ from: '2024-06-10', to: '2024-06-11' }));
    expect(rows.map((r) => r.date)).toEqual(['2024-06-10', '2024-06-11']);
    expect(rows[0]).toEqual({
      date: '2024-06-10',
      totalRecords: 0,
      validatedRecords: 0,
      validationRate: 0,
      gapsDetected: 7,
      anomaliesDetected: 0,
      completeness: 0,
      featuresRate: 0,
      freshness: 1,
      qualityScore: 0.1,
    });
  });

  it('tallies each day separately', () => {
    const times = [...hours('2024-06-11').slice(0, 3), ...hours('2024-06-12')];
    const rows = dailyQuality(input({ to: '2024-06-12', times, fetchedAt: utc('2024-06-13T00:00:00Z') }));
    expect(rows.map((r) => [r.date, r.totalRecords, r.gapsDetected, r.completeness])).toEqual([
      ['2024-06-11', 3, 4, 0.43],
      ['2024-06-12', 7, 0, 1],
    ]);
  });

  it('no rows for weekends and holidays without data', () => {
    const rows = dailyQuality(input({ timeframe: '1d', from: '2024-06-14', to: '2024-06-17', times: [] }));
    expect(rows.map((r) => r.date)).toEqual(['2024-06-14', '2024-06-17']);
    const july = dailyQuality(input({ timeframe: '1d', from: '2024-07-03', to: '2024-07-05', times: [] }));
    expect(july.map((r) => r.date)).toEqual(['2024-07-03', '2024-07-05']);
  });

  it('crypto has a row for every day, weekends included', () => {
    const times = Array.from({ length: 24 }, (_, i) => utc('2024-06-15T00:00:00Z') + i * HOUR);
    const rows = dailyQuality(input({ calendar: '24x7', from: '2024-06-15', to: '2024-06-16', times, fetchedAt: utc('2024-06-17T00:00:00Z') }));
    expect(rows.map((r) => [r.date, r.totalRecords, r.gapsDetected, r.completeness])).toEqual([
      ['2024-06-15', 24, 0, 1],
      ['2024-06-16', 0, 24, 0],
    ]);
  });

  it('1w: rows on Mondays only, final once the week is over', () => {
    const times = [utc('2024-06-10T04:00:00Z'), utc('2024-06-17T04:00:00Z')];
    const rows = dailyQuality(input({ timeframe: '1w', from: '2024-06-10', to: '2024-06-23', times, fetchedAt: utc('2024-06-20T12:00:00Z') }));
    expect(rows.map((r) => [r.date, r.totalRecords, r.gapsDetected, r.completeness, r.freshness])).toEqual([
      ['2024-06-10', 1, 0, 1, 1],
      ['2024-06-17', 1, 0, 1, 0.5],
    ]);
  });

  it('1w: the week of a holiday Monday (MLK 2024-01-15) still expects its bar on that Monday', () => {
    const rows = dailyQuality(input({ timeframe: '1w', from: '2024-01-13', to: '2024-01-21', times: [], fetchedAt: utc('2024-02-01T00:00:00Z') }));
    expect(rows.map((r) => [r.date, r.gapsDetected, r.completeness])).toEqual([['2024-01-15', 1, 0]]);
  });
});

describe('enrichmentStatus', () => {
  const cases: Array<[string, StatusInput, string]> = [
    ['failed wins over everything', { failed: true, qualityScore: 1, sessionsBehind: 0 }, 'error'],
    ['failed without data', { failed: true, qualityScore: null, sessionsBehind: null }, 'error'],
    ['never enriched', { failed: false, qualityScore: null, sessionsBehind: null }, 'not_enriched'],
    ['score but no bar', { failed: false, qualityScore: 0.95, sessionsBehind: null }, 'not_enriched'],
    ['bar but no score', { failed: false, qualityScore: null, sessionsBehind: 0 }, 'not_enriched'],
    ['4 sessions behind', { failed: false, qualityScore: 1, sessionsBehind: 4 }, 'stale'],
    ['score 0.84', { failed: false, qualityScore: 0.84, sessionsBehind: 0 }, 'stale'],
    ['score 0', { failed: false, qualityScore: 0, sessionsBehind: 0 }, 'stale'],
    ['3 sessions behind', { failed: false, qualityScore: 1, sessionsBehind: 3 }, 'warning'],
    ['1 session behind', { failed: false, qualityScore: 1, sessionsBehind: 1 }, 'warning'],
    ['score 0.85', { failed: false, qualityScore: 0.85, sessionsBehind: 0 }, 'warning'],
    ['score 0.9', { failed: false, qualityScore: 0.9, sessionsBehind: 0 }, 'warning'],
    ['score 0.91, up to date', { failed: false, qualityScore: 0.91, sessionsBehind: 0 }, 'healthy'],
    ['score 1, up to date', { failed: false, qualityScore: 1, sessionsBehind: 0 }, 'healthy'],
  ];
  it.each(cases)('%s', (_name, status, expected) => {
    expect(enrichmentStatus(status)).toBe(expected);
  });
});
