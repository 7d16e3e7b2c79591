/** Wording shared by messages, warnings and summaries. */

/** The first `max` names, then how many more: "AAPL, MSFT and 3 more". */
export function someNames(names: readonly string[], max: number): string {
  const more = names.length - max;
  return `${names.slice(0, max).join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
}
