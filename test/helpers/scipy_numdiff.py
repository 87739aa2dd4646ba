"""SciPy's approx_derivative (and the notebook's numerical_gradient) on the points of a .npy file,
for the bitwise comparisons of test/core/scipy-agreement.test.ts.

usage: scipy_numdiff.py CASES.json, a list of {fn, method, x, out, rel_step?, abs_step?, lower?, upper?, h?}
(one process for every case: importing SciPy costs more than the cases). fn: function_1 |
function_2 | rosenbrock; method: 2-point | 3-point | central (the notebook's). x is a k x n .npy;
out gets k x n. Prints the SciPy version.
"""
import json
import sys

import numpy as np
import scipy
from scipy.optimize import rosen
from scipy.optimize._numdiff import approx_derivative


def function_1(x):
    return 0.01 * x[0] ** 2 + 0.1 * x[0]


def function_2(x):
    return np.sum(x ** 2)


def numerical_gradient(f, x, h):
    # The notebook's _numerical_gradient_no_batch, verbatim but for h.
    grad = np.zeros_like(x)
    for idx in range(x.size):
        tmp_val = x[idx]
        x[idx] = float(tmp_val) + h
        fxh1 = f(x)
        x[idx] = tmp_val - h
        fxh2 = f(x)
        grad[idx] = (fxh1 - fxh2) / (2 * h)
        x[idx] = tmp_val
    return grad


def main():
    cases = json.load(open(sys.argv[1]))
    funcs = {'function_1': function_1, 'function_2': function_2, 'rosenbrock': rosen}
    for c in cases:
        f = funcs[c['fn']]
        X = np.load(c['x'])
        lb = np.load(c['lower']) if c.get('lower') else -np.inf
        ub = np.load(c['upper']) if c.get('upper') else np.inf
        out = np.empty_like(X)
        for k in range(X.shape[0]):
            if c['method'] == 'central':
                out[k] = numerical_gradient(f, X[k].copy(), c.get('h', 1e-4))
            else:
                out[k] = approx_derivative(f, X[k], method=c['method'], rel_step=c.get('rel_step'),
                                           abs_step=c.get('abs_step'), bounds=(lb, ub))
        np.save(c['out'], out)
    print(scipy.__version__)


main()
