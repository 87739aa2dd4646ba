import { EXPM1_SERIES_LIMIT } from '../expm1-small.js';
import { CLASSES } from '../layout.js';
import { CEE_DELTA } from '../losses.js';
import { Body, emitModule, i32, v128 } from './emit.js';

/**
 * The memo rows of the finite-difference engine (FdEngine.computeRow in fd-engine.ts) as a
 * WebAssembly SIMD kernel that is bitwise identical to the JS loop. For each row (sample n, pixel
 * level v) and hidden unit j, the "+" and "−" moves of a1[n][j] run side by side in the two lanes of
 * an f64x2: lane 0 is what the JS loop calls P, lane 1 M. Each lane performs exactly the JS
 * operations, in the JS order, separately rounded (f64x2.mul, f64x2.add, f64x2.div: never a fused
 * multiply-add, never relaxed SIMD):
 *
 *   dz   = 1 / (1 + u·v±) − z                     (v± = exp(∓s), s = h·(v/255): a table per level,
 *                                                  computed with the same Math.exp as the JS loop)
 *   g_k  = e_k · (x·(1 + x·(0.5 + x·(1/6 + x·(1/24 + x·(1/120))))))   with x = dz·W2[j][k]
 *   dS   = ((0 + g_0) + g_1) + … + g_9,   dt = g_t
 *   p±   = (e_t + dt) / (S + dS)
 *   out  = (p₋ + 1e-7) / (p₊ + 1e-7)              (one scalar division of the two lanes)
 *
 * The JS loop then takes Math.log of `out` (the same function of the same value as in computeRow).
 *
 * expm1Small evaluates the series only where |x| ≤ 2^-11 and calls Math.expm1 beyond. The kernel
 * flags a row instead (and the caller computes it with the JS loop): the test is per hidden unit,
 * fl(|dz|·max_k|W2[j][k]|) > 2^-11, which is conservative because rounding is monotone — no
 * |fl(dz·W2[j][k])| can exceed fl(|dz|·max_k|W2[j][k]|) — so an unflagged row used the series for
 * every term, exactly as the JS loop would. (NaN compares false in both.)
 */


export type Run = (r0: number, r1: number, hidden: number, w2: number, maxw: number, u: number, z: number, e: number, s: number, t: number, rs: number, rl: number, out: number, flags: number) => void;

/** The kernel module's bytes: imports `env.memory`, exports `rows(...)` (parameters in `Run`). */
export function memoRowsModuleBytes(): Uint8Array {
  const [R0, R1, H, W2, MAXW, U, Z, E, S, T, RS, RL, OUT, FLAGS] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
  const b = new Body(14);
  const [r, n, rowBytes, uP, zP, eP, tt, o, uEnd, wP, mP, fP] = Array.from({ length: 12 }, () => b.local(i32));
  const [vpm, dz, x, p, g, dS, dt, flag, et0, S0] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(() => b.local(v128));
  const [one, c5, c4, c3, half, lim, delta] = [0, 1, 2, 3, 4, 5, 6].map(() => b.local(v128));
  const splatConst = (local: number, value: number): void => {
    b.f64Const(value).f64x2Splat().localSet(local);
  };
  splatConst(one, 1);
  splatConst(c5, 1 / 120);
  splatConst(c4, 1 / 24);
  splatConst(c3, 1 / 6);
  splatConst(half, 0.5);
  splatConst(lim, EXPM1_SERIES_LIMIT);
  splatConst(delta, CEE_DELTA);

  b.localGet(H).i32Const(3).i32Shl().localSet(rowBytes);
  b.localGet(OUT).localSet(o);
  b.localGet(FLAGS).localSet(fP);
  b.localGet(R0).localSet(r);
  b.block();
  b.localGet(r).localGet(R1).i32GeU().brIf(0);
  b.loop();
  {
    // n = rowSample[r]; vpm = (exp(−s), exp(s)) of the row's level.
    b.localGet(RS).localGet(r).i32Const(2).i32Shl().i32Add().i32Load().localSet(n);
    b.localGet(RL).localGet(r).i32Const(2).i32Shl().i32Add().i32Load().i32Const(4).i32Shl().v128Load().localSet(vpm);
    b.localGet(U).localGet(n).localGet(rowBytes).i32Mul().i32Add().localTee(uP).localGet(rowBytes).i32Add().localSet(uEnd);
    b.localGet(Z).localGet(n).localGet(rowBytes).i32Mul().i32Add().localSet(zP);
    b.localGet(E).localGet(n).i32Const(CLASSES * 8).i32Mul().i32Add().localSet(eP);
    b.localGet(T).localGet(n).i32Const(2).i32Shl().i32Add().i32Load().localSet(tt);
    b.localGet(S).localGet(n).i32Const(3).i32Shl().i32Add().v128Load64Splat().localSet(S0);
    b.localGet(eP).localGet(tt).i32Const(3).i32Shl().i32Add().v128Load64Splat().localSet(et0);
    b.localGet(W2).localSet(wP);
    b.localGet(MAXW).localSet(mP);
    b.v128Zero().localSet(flag);
    b.loop();
    {
      // dz = 1 / (1 + u·v±) − z
      b.localGet(one).localGet(one).localGet(uP).v128Load64Splat().localGet(vpm).f64x2Mul().f64x2Add().f64x2Div();
      b.localGet(zP).v128Load64Splat().f64x2Sub().localSet(dz);
      // flag |= |dz|·max_k|W2[j][k]| > 2^-11
      b.localGet(flag).localGet(dz).f64x2Abs().localGet(mP).v128Load64Splat().f64x2Mul().localGet(lim).f64x2Gt().v128Or().localSet(flag);
      b.v128Zero().localSet(dS);
      b.v128Zero().localSet(dt);
      for (let k = 0; k < CLASSES; k++) {
        b.localGet(dz).localGet(wP).v128Load64Splat(8 * k).f64x2Mul().localSet(x);
        // x·(1 + x·(0.5 + x·(1/6 + x·(1/24 + x·(1/120)))))
        b.localGet(x).localGet(one).localGet(x).localGet(half).localGet(x).localGet(c3).localGet(x).localGet(c4);
        b.localGet(x).localGet(c5).f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().f64x2Mul();
        b.localSet(p);
        b.localGet(eP).v128Load64Splat(8 * k).localGet(p).f64x2Mul().localSet(g);
        b.localGet(dS).localGet(g).f64x2Add().localSet(dS);
        b.localGet(g).localGet(dt).localGet(tt).i32Const(k).i32Eq().selectV128().localSet(dt);
      }
      // (p₋ + δ) / (p₊ + δ) with p± = (e_t + dt) / (S + dS)
      b.localGet(et0).localGet(dt).f64x2Add().localGet(S0).localGet(dS).f64x2Add().f64x2Div().localGet(delta).f64x2Add().localSet(p);
      b.localGet(o).localGet(p).f64x2ExtractLane(1).localGet(p).f64x2ExtractLane(0).f64Div().f64Store();
      b.localGet(o).i32Const(8).i32Add().localSet(o);
      b.localGet(zP).i32Const(8).i32Add().localSet(zP);
      b.localGet(mP).i32Const(8).i32Add().localSet(mP);
      b.localGet(wP).i32Const(CLASSES * 8).i32Add().localSet(wP);
      b.localGet(uP).i32Const(8).i32Add().localTee(uP).localGet(uEnd).i32LtU().brIf(0);
    }
    b.end(); // j loop
    b.localGet(fP).localGet(flag).v128AnyTrue().i32Store();
    b.localGet(fP).i32Const(4).i32Add().localSet(fP);
    b.localGet(r).i32Const(1).i32Add().localTee(r).localGet(R1).i32LtU().brIf(0);
  }
  b.end(); // row loop
  b.end(); // block
  return emitModule({
    memory: { import: { module: 'env', field: 'memory' }, min: 1 },
    funcs: [{ name: 'rows', params: [i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32], results: [], body: b }],
  });
}

