#!/usr/bin/env python3
"""The textbook numerical gradient of the chapter-4 net (784-H-10, sigmoid, softmax, cross-entropy
with the 1e-7 guard), timed on a seeded sample of coordinates: numgrad's own baseline for
bench/run.ts.

Same math as ../shared/bench/numpy_reference.py `textbook` (and the book's `numerical_gradient`):
for each coordinate c, p[c] += h -> full forward pass over the batch -> loss; p[c] -= h -> full
forward pass -> loss; g[c] = (f1 - f2) / 2h with h = 1e-4. Every coordinate costs the same two
forward passes, so the time of N sampled coordinates, scaled by (parameter count / N), estimates
the time of the whole gradient.

The sample is seeded (numpy default_rng(seed)) and always holds a few coordinates of each block
(W1, b1, W2, b2), so the accuracy comparison covers all four kinds of derivative.

  textbook.py --data MNIST_DIR --params P.npy --indices I.npy --coords N --seed S [--out G.npy]

Prints one JSON line: {coords, params, seconds, full_gradient_seconds_est, per_coord_ms, numpy,
sampled (the sorted coordinate indices), out, coords_out}. With --out, G.npy is a float64 vector
of the full length with NaN at the coordinates not computed, and G.coords.npy (int64) lists the
computed coordinates. Exit status 3 when numpy is missing, 2 on bad arguments.
"""
import argparse
import json
import os
import sys
import time

try:
    import numpy as np
except ImportError:  # the bench reports numgrad alone when this happens
    sys.stderr.write("textbook.py: numpy is not installed for this python3 "
                     f"({sys.executable}); install it with `python3 -m pip install numpy`\n")
    sys.exit(3)

DELTA = 1e-7
H_STEP = 1e-4
PER_BLOCK = 5  # coordinates always drawn from each of W1, b1, W2, b2


def fail(msg):
    sys.stderr.write(f"textbook.py: {msg}\n")
    sys.exit(2)


def idx_file(path, header):
    if not os.path.exists(path):
        fail(f"{path}: file not found (expected an uncompressed MNIST IDX file)")
    return np.frombuffer(open(path, "rb").read()[header:], dtype=np.uint8)


def load_train(data):
    x = idx_file(f"{data}/train-images-idx3-ubyte", 16).reshape(-1, 784).astype(np.float64) / 255.0
    t = idx_file(f"{data}/train-labels-idx1-ubyte", 8).astype(np.int64)
    return x, t


def hidden_of(size):
    h = (size - 10) // 795
    if h < 1 or 795 * h + 10 != size:
        fail(f"--params: length {size} is not 795*H + 10 for any integer H >= 1")
    return h


def unpack(p, h):
    o = 0
    W1 = p[o:o + 784 * h].reshape(784, h); o += 784 * h
    b1 = p[o:o + h]; o += h
    W2 = p[o:o + h * 10].reshape(h, 10); o += h * 10
    return W1, b1, W2, p[o:o + 10]


def loss(p, h, x, t):
    """The book's TwoLayerNet.loss: predict (sigmoid, softmax) then cross_entropy_error."""
    W1, b1, W2, b2 = unpack(p, h)
    z1 = 1 / (1 + np.exp(-(x @ W1 + b1)))
    a2 = z1 @ W2 + b2
    a2 = a2 - a2.max(axis=1, keepdims=True)
    e = np.exp(a2)
    y = e / e.sum(axis=1, keepdims=True)
    return -np.log(y[np.arange(len(t)), t] + DELTA).sum() / len(t)


def sample_coords(size, h, n, seed):
    """n distinct coordinates: PER_BLOCK from each block first, the rest uniform over what is left."""
    rng = np.random.default_rng(seed)
    blocks = [(0, 784 * h), (784 * h, 785 * h), (785 * h, 795 * h), (795 * h, size)]
    picked = []
    for lo, hi in blocks:
        k = min(PER_BLOCK, hi - lo, max(n - len(picked), 0))
        picked.extend((lo + rng.choice(hi - lo, k, replace=False)).tolist())
    rest = n - len(picked)
    if rest > 0:
        pool = np.setdiff1d(np.arange(size), np.array(picked, dtype=np.int64), assume_unique=True)
        picked.extend(rng.choice(pool, rest, replace=False).tolist())
    return np.sort(np.array(picked, dtype=np.int64))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder with the MNIST IDX files")
    ap.add_argument("--params", required=True, help="float64 parameter vector (.npy)")
    ap.add_argument("--indices", required=True, help="training-set indices of the batch (.npy, integer)")
    ap.add_argument("--coords", type=int, required=True, help="how many coordinates to time (sampled)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the coordinate sample")
    ap.add_argument("--out", help="write the sampled gradient (NaN elsewhere) here, and its coordinates to *.coords.npy")
    a = ap.parse_args()

    p = np.load(a.params)
    if p.dtype != np.float64:
        fail(f"--params {a.params}: dtype {p.dtype}, expected float64")
    p = np.ascontiguousarray(p.ravel()).copy()
    h = hidden_of(p.size)
    if not np.isfinite(p).all():
        fail(f"--params {a.params}: holds NaN or Inf")
    if not 1 <= a.coords <= p.size:
        fail(f"--coords must be an integer in [1, {p.size}], got {a.coords}")
    ind = np.load(a.indices)
    if ind.dtype.kind not in "iu" or ind.ndim != 1 or ind.size == 0:
        fail(f"--indices {a.indices}: expected a non-empty 1-D integer vector, got {ind.dtype} {ind.shape}")
    X, T = load_train(a.data)
    if ind.min() < 0 or ind.max() >= len(T):
        fail(f"--indices {a.indices}: values must be in [0, {len(T)})")
    x, t = X[ind.astype(np.int64)], T[ind.astype(np.int64)]

    coords = sample_coords(p.size, h, a.coords, a.seed)
    g = np.full(p.size, np.nan)
    t0 = time.perf_counter()
    for c in coords:
        old = p[c]
        p[c] = old + H_STEP
        f1 = loss(p, h, x, t)
        p[c] = old - H_STEP
        f2 = loss(p, h, x, t)
        p[c] = old
        g[c] = (f1 - f2) / (2 * H_STEP)
    dt = time.perf_counter() - t0

    coords_out = None
    if a.out:
        np.save(a.out, g)
        base = a.out[:-4] if a.out.endswith(".npy") else a.out
        coords_out = f"{base}.coords.npy"
        np.save(coords_out, coords)
    print(json.dumps({
        "coords": int(len(coords)),
        "params": int(p.size),
        "seconds": dt,
        "full_gradient_seconds_est": dt / len(coords) * p.size,
        "per_coord_ms": dt / len(coords) * 1000,
        "numpy": np.__version__,
        "sampled": coords.tolist(),
        "out": a.out,
        "coords_out": coords_out,
    }))


if __name__ == "__main__":
    main()
