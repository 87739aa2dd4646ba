"""SciPy anchors of the registered-functions bench (bench/functions.ts), one JSON line on stdout.

  scipy_functions.py cpu N MS RUNS     approx_derivative (3-point) of a ~MS ms pure-Python function
                                       at N coordinates: one process, then workers=Pool(2).map
  scipy_functions.py rosen N RUNS      approx_derivative (3-point) of scipy.optimize.rosen, likewise
"""
import json
import math
import sys
import time
from multiprocessing import Pool

import numpy as np
from scipy.optimize import rosen
from scipy.optimize._numdiff import approx_derivative

ITERS = 1000


def burn(x):
    n = x.size
    s = 0.0
    xs = x.tolist()
    for i in range(ITERS):
        v = xs[i % n]
        s += math.sqrt(i + v * v)
    return s


def per_eval(x):
    # The fastest of 5 batches of 10: what an evaluation costs when the machine lets it run.
    best = float('inf')
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(10):
            burn(x)
        best = min(best, (time.perf_counter() - t0) / 10)
    return best


def calibrate(ms, x):
    global ITERS
    for _ in range(4):
        ITERS = max(1, int(ITERS * (ms / 1000) / per_eval(x)))


def timed(f, runs):
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        out.append(time.perf_counter() - t0)
    return out


def init_worker(iters):
    global ITERS
    ITERS = iters


def main():
    mode = sys.argv[1]
    rng = np.random.default_rng(0)
    if mode == 'cpu':
        n, ms, runs = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
        x0 = rng.uniform(-1, 1, n)
        calibrate(ms, x0)
        per = per_eval(x0)
        f = burn
    else:
        n, runs = int(sys.argv[2]), int(sys.argv[3])
        x0 = rng.uniform(-2, 2, n)
        per = None
        f = rosen
    one = timed(lambda: approx_derivative(f, x0, method='3-point'), runs)
    with Pool(2, initializer=init_worker, initargs=(ITERS,)) as pool:
        approx_derivative(f, x0, method='3-point', workers=pool.map)
        two = timed(lambda: approx_derivative(f, x0, method='3-point', workers=pool.map), runs)
    print(json.dumps({'one': one, 'two': two, 'evalSeconds': per, 'iters': ITERS}))


if __name__ == '__main__':
    main()
