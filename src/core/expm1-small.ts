/** Where the series stops: |x| ≤ 2^-11 (the memo-rows kernel tests against the same limit). */
export const EXPM1_SERIES_LIMIT = 2 ** -11;

/**
 * expm1(x) to within 2 ulps: for |x| ≤ 2^-11 the series x + x²/2 + x³/6 + x⁴/24 + x⁵/120 leaves
 * out x⁶/720, under 4e-20 relative to the result, far below its ulp (the Horner rounding is the
 * ~1 ulp that remains); larger |x| (a huge h, or
 * huge weights) goes to Math.expm1. This is how exp is evaluated, not an approximation of the loss:
 * the logit moves here are |Δz·w| ≲ h/4·|w| ≈ 1e-5.
 */
export function expm1Small(x: number): number {
  if (x > EXPM1_SERIES_LIMIT || x < -EXPM1_SERIES_LIMIT) return Math.expm1(x);
  return x * (1 + x * (0.5 + x * (1 / 6 + x * (1 / 24 + x * (1 / 120)))));
}
