// A CPU-bound function of tunable cost (args.iters square roots, ~1 ms at the bench's calibration).
export const name = 'burn';
export function f(x, args) {
  const iters = args?.iters ?? 20_000;
  const n = x.length;
  let s = 0;
  for (let i = 0; i < iters; i++) {
    const v = x[i % n];
    s += Math.sqrt(i + v * v);
  }
  return s;
}
