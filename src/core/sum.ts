/**
 * Summation in numpy's order. numpy's float64 `sum` is pairwise: blocks of up to 128 elements are
 * summed with eight interleaved accumulators, larger runs are split in halves (rounded down to a
 * multiple of 8) and the halves added. Reproducing that order is what makes our printed values
 * agree with numpy's to the last digit (a plain left-to-right sum prints 0.5974999999999999 where
 * numpy prints 0.5975). See numpy/_core/src/umath/loops_utils.h.src, pairwise_sum.
 */
const BLOCK = 128;

/** Sum of `a[offset + k*stride]` for k in [0, n), in numpy's pairwise order. */
export function pairwiseSum(a: ArrayLike<number>, offset = 0, n = a.length - offset, stride = 1): number {
  if (n < 8) {
    let res = 0;
    for (let k = 0; k < n; k++) res += a[offset + k * stride];
    return res;
  }
  if (n <= BLOCK) {
    let r0 = a[offset], r1 = a[offset + stride], r2 = a[offset + 2 * stride], r3 = a[offset + 3 * stride];
    let r4 = a[offset + 4 * stride], r5 = a[offset + 5 * stride], r6 = a[offset + 6 * stride], r7 = a[offset + 7 * stride];
    const full = n - (n % 8);
    let k = 8;
    for (; k < full; k += 8) {
      const p = offset + k * stride;
      r0 += a[p]; r1 += a[p + stride]; r2 += a[p + 2 * stride]; r3 += a[p + 3 * stride];
      r4 += a[p + 4 * stride]; r5 += a[p + 5 * stride]; r6 += a[p + 6 * stride]; r7 += a[p + 7 * stride];
    }
    let res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7));
    for (; k < n; k++) res += a[offset + k * stride];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, offset, n2, stride) + pairwiseSum(a, offset + n2 * stride, n - n2, stride);
}
