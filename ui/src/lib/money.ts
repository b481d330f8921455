// Money is integer micro-dollars end to end (as the Rust side records it). These format an
// integer as dollars by integer arithmetic only, so $0.000029 stays $0.000029.

const MICROS_PER_USD = 1_000_000;

function groupThousands(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Splits a micro-dollar amount into sign, whole dollars (digits) and six fraction digits. */
function parts(micro: number | bigint): { negative: boolean; whole: string; fraction: string } {
  let value = typeof micro === "bigint" ? micro : BigInt(Math.trunc(Number.isFinite(micro) ? micro : 0));
  const negative = value < 0n;
  if (negative) value = -value;
  const whole = (value / BigInt(MICROS_PER_USD)).toString();
  const fraction = (value % BigInt(MICROS_PER_USD)).toString().padStart(6, "0");
  return { negative, whole, fraction };
}

/**
 * Dollars at full micro-dollar precision: at least cents, trailing zeros beyond them dropped.
 * `29` → `$0.000029`, `1_500_000` → `$1.50`, `1_234_567` → `$1.234567`.
 */
export function formatUsd(micro: number | bigint): string {
  const { negative, whole, fraction } = parts(micro);
  let frac = fraction.replace(/0+$/, "");
  if (frac.length < 2) frac = frac.padEnd(2, "0");
  return `${negative ? "−" : ""}$${groupThousands(whole)}.${frac}`;
}

/**
 * A compact label for chart axes: two significant digits below a cent, cents above.
 * Never used for totals.
 */
export function formatUsdAxis(micro: number): string {
  const rounded = Math.round(micro);
  const abs = Math.abs(rounded);
  if (abs === 0) return "$0";
  if (abs >= 10_000) {
    // Whole cents: round to the cent in integers.
    const cents = Math.round(rounded / 10_000);
    return formatUsd(cents * 10_000);
  }
  // Below a cent: keep two significant micro-dollar digits.
  const digits = abs.toString().length;
  const step = 10 ** Math.max(0, digits - 2);
  return formatUsd(Math.sign(rounded) * Math.round(abs / step) * step);
}

/** Sums integer micro-dollar amounts exactly (BigInt), returned as a bigint. */
export function sumMicros(values: Iterable<number>): bigint {
  let total = 0n;
  for (const v of values) total += BigInt(Math.trunc(v));
  return total;
}

/** Tokens with thousands separators. */
export function formatTokens(n: number): string {
  return groupThousands(Math.trunc(n).toString());
}
