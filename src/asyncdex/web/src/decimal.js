// Exact decimal <-> engine-unit conversions and fixed-decimal display.
//
// Orders are converted exactly or refused (as the SDK does): a price with more decimals than
// the market's unit holds is an error, never rounded. Display formatting rounds, to the
// market's fixed number of decimals.

/** Decimal places of a decimal string ("0.001" -> 3, "1" -> 0). */
export function decimalsOf(text) {
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : text.length - dot - 1;
}

/** "1.5" with 2 decimals -> 150n; refuses signs, exponents and excess decimals. */
export function toUnits(text, decimals, what = "value") {
  const s = String(text).trim();
  if (!/^[0-9]+(\.[0-9]*)?$|^\.[0-9]+$/.test(s)) throw new Error(`${what}: enter a positive number`);
  const [whole, frac = ""] = s.split(".");
  const trimmed = frac.replace(/0+$/, "");
  if (trimmed.length > decimals) {
    throw new Error(`${what}: at most ${decimals} decimal places`);
  }
  return BigInt((whole || "0") + trimmed.padEnd(decimals, "0"));
}

/** 150n with 2 decimals -> "1.50". */
export function fromUnits(units, decimals) {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(decimals + 1, "0");
  const text = decimals ? `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}` : digits;
  return negative ? `-${text}` : text;
}

const formatters = new Map();

/** A decimal string or number shown with exactly `decimals` places, grouped by thousands. */
export function fmt(value, decimals) {
  if (value === null || value === undefined || value === "") return "—";
  let f = formatters.get(decimals);
  if (!f) {
    f = new Intl.NumberFormat("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
    formatters.set(decimals, f);
  }
  return f.format(Number(value));
}

export function fmtUsd(value) {
  return fmt(value, 2);
}

export function fmtTime(ms) {
  const d = new Date(Number(ms));
  return d.toISOString().slice(11, 19);
}
