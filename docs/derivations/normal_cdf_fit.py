"""Make the coefficients of float32's normal CDF in layers/gelu.py (``TAIL_POLYNOMIAL``).

For a = |x| the left tail is written Phi(-a) = exp(-a**2 / 2) * P(s), s = p a / (1 + p a), which
maps 0 <= a < inf onto 0 <= s < 1 and leaves P smooth (P(s) is the Mills ratio over sqrt(2 pi)).
P has degree 8 and P(0) = 1/2 exactly (so Phi(0) is 1/2); its other coefficients minimise the
largest relative error of Phi(-a) over 0 <= a <= 13.5 (float32's Phi is below 1e-37 beyond), a
linear program on 4,000 Chebyshev points. With p = 0.4 that error is 6.5e-8 in exact arithmetic.

    python docs/derivations/normal_cdf_fit.py
"""
import numpy as np
from scipy.optimize import linprog
from scipy.special import log_ndtr

P, DEGREE, A_MAX, POINTS = 0.4, 8, 13.5, 4000


def fit(p: float = P, degree: int = DEGREE, a_max: float = A_MAX, points: int = POINTS):
    s_max = p * a_max / (1 + p * a_max)
    s = (1 - np.cos(np.linspace(0, np.pi, points))) * s_max / 2
    a = s / (p * (1 - s))
    target = np.exp(log_ndtr(-a) + a * a / 2)            # Phi(-a) / exp(-a**2 / 2), exactly
    relative = np.vander(s, degree + 1, increasing=True) / target[:, None]
    # minimise e subject to -e <= relative @ c - 1 <= e and c[0] = 1/2; unknowns (c, e)
    ones = np.ones((points, 1))
    result = linprog(np.r_[np.zeros(degree + 1), 1],
                     A_ub=np.block([[relative, -ones], [-relative, -ones]]),
                     b_ub=np.r_[np.ones(points), -np.ones(points)],
                     A_eq=np.r_[1.0, np.zeros(degree + 1)][None], b_eq=[0.5],
                     bounds=[(None, None)] * (degree + 1) + [(0, None)], method="highs")
    return result.x[:-1], result.x[-1]


if __name__ == "__main__":
    coefficients, error = fit()
    print(f"largest relative error {error:.2e}")
    print(", ".join(np.format_float_positional(np.float32(c)) for c in coefficients))
