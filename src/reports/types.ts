/**
 * The nightly report's JSON (`reports/daily_YYYYMMDD.json`), the one document the HTML page is
 * drawn from. Money is a decimal string, exact as the warehouse holds it; ratios and returns are
 * numbers; a value the warehouse has no answer for is null, never 0.
 */

export interface Mover {
  /** Instrument symbol or strategy name. */
  name: string;
  trades: number;
  net_pnl: string;
}

export interface HourBucket {
  /** Hour of day in EXCHANGE_TZ, 0–23. */
  hour: number;
  trades: number;
  net_pnl: string;
}

export interface Position {
  symbol: string;
  /** Signed: negative is short. */
  quantity: string;
  avg_price: string | null;
  /** The 1d close of the date; null when market.bars has none (then so are the next two). */
  close: string | null;
  market_value: string | null;
  unrealized_pnl: string | null;
}

export interface CurvePoint {
  date: string;
  equity: string;
  net_pnl: string;
  /** ≤ 0, a fraction of the running peak. */
  drawdown_pct: number | null;
}

export interface ReportSection {
  trades: number;
  winners: number;
  losers: number;
  /** winners / (winners + losers); null with neither. */
  win_rate: number | null;
  realized_pnl: string;
  commissions: string;
  fees: string;
  net_pnl: string;
  /** Over the 30 curve rows ending at the date (performance_metrics window '30d'). */
  sharpe_30d: number | null;
  sortino_30d: number | null;
  /** Worst peak-to-trough of the whole curve up to the date, a negative fraction. */
  max_drawdown: number | null;
  /** Drawdown on the date: equity − running peak (≤ 0), and as a fraction of the peak. */
  current_drawdown: string | null;
  current_drawdown_pct: number | null;
  equity: string | null;
  best_instruments: Mover[];
  worst_instruments: Mover[];
  best_strategies: Mover[];
  worst_strategies: Mover[];
  /** Every hour with trades, ascending. */
  pnl_by_hour: HourBucket[];
  /** Open at the end of the date. */
  positions: Position[];
  /** The equity curve up to the date (at most its last 250 rows). */
  equity_curve: CurvePoint[];
  /** Net PnL of the last 30 curve dates up to the date. */
  daily_pnl: { date: string; net_pnl: string }[];
}

export interface AccountSection extends ReportSection {
  account_id: number;
  account_number: string;
  account_name: string;
}

export interface RsLeader {
  symbol: string;
  sector_name: string;
  rs_rating: number | null;
  rs_score: number | null;
}

export interface Freshness {
  /** Seconds between the report's generation and the newest source row the trade ETL has loaded; null before any load. */
  etl_lag_seconds: number | null;
  etl_last_success: string | null;
  /** Symbols per enrichment status (healthy, warning, stale, error) as derived at generation, statuses with none left out. */
  enrichment_status: Record<string, number>;
  /** Jobs (runs of a partition) failed for good in the 24 h before the report was generated. */
  failed_jobs_24h_count: number;
  /** The latest 50 of them, newest first. */
  failed_jobs_24h: { job: string; partition: string; error: string | null; at: string }[];
}

export interface DailyReport {
  kind: 'daily';
  /** The date reported on (YYYY-MM-DD): fills whose trading date it is. */
  report_date: string;
  generated_at: string;
  /** False when warehouse.fact_trades has no fill dated that date: the page says "no trading" rather than showing empty tables. */
  has_trading: boolean;
  firm: ReportSection;
  /** Every account with an equity curve up to the date, traded that day or not. */
  accounts: AccountSection[];
  /** The RS sector leaders scored for the date (or the latest date before it), best first. */
  rs_leaders: { as_of_date: string | null; leaders: RsLeader[] };
  freshness: Freshness;
}
