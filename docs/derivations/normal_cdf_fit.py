"""Make the coefficients of float32's normal CDF in layers/gelu.py (``TAIL_POLYNOMIAL``).

For a = |x| the left tail is written Phi(-a) = exp(-a**2 / 2) * P(s), s = p a / (1 + p a), which
maps 0 <= a < inf onto 0 <= s < 1 and leaves P smooth (P(s) is the Mills ratio over sqrt(2 pi)).
P has degree 8 and P(0) = 1/2 exactly (so Phi(0) is 1/2); its other coefficients minimise the
largest relative error of Phi(-a) over 0 <= a <= 13.5 (float32's Phi is below 1e-37 beyond), a
linear program on 4,000 Chebyshev points. The coefficients are fixed one at a time, each rounded
to float32 before the rest are fitted again, so that the rounding costs almost nothing; the
script prints the error as measured on a finer grid with the float32 coefficients.

    python docs/derivations/normal_cdf_fit.py
"""
import numpy as np
from scipy.optimize import linprog
from scipy.special import log_ndtr

P, DEGREE, A_MAX, POINTS = 0.4, 8, 13.5, 4000


def fit(fixed: list[float], p: float = P, degree: int = DEGREE, a_max: float = A_MAX,
        points: int = POINTS) -> np.ndarray:
    """The minimax coefficients of P (s**0 first) whose first ``len(fixed)`` are ``fixed``."""
    s_max = p * a_max / (1 + p * a_max)
    s = (1 - np.cos(np.linspace(0, np.pi, points))) * s_max / 2
    a = s / (p * (1 - s))
    target = np.exp(log_ndtr(-a) + a * a / 2)            # Phi(-a) / exp(-a**2 / 2), exactly
    relative = np.vander(s, degree + 1, increasing=True) / target[:, None]
    # minimise e subject to -e <= relative @ c - 1 <= e and the fixed c; unknowns (c, e)
    ones, pinned = np.ones((points, 1)), np.eye(len(fixed), degree + 2)
    result = linprog(np.r_[np.zeros(degree + 1), 1],
                     A_ub=np.block([[relative, -ones], [-relative, -ones]]),
                     b_ub=np.r_[np.ones(points), -np.ones(points)], A_eq=pinned, b_eq=fixed,
                     bounds=[(None, None)] * (degree + 1) + [(0, None)], method="highs",
                     options={"primal_feasibility_tolerance": 1e-10,   # the default 1e-7 is
                              "dual_feasibility_tolerance": 1e-10})    # as large as the error
    return result.x[:-1]


def measured(coefficients: np.ndarray, p: float = P, a_max: float = A_MAX) -> float:
    """The largest relative error of ``exp(-a**2/2) P(s)`` against ``ndtr(-a)``, in float64
    arithmetic, on a grid ten times finer than the fit's."""
    a = np.linspace(0, a_max, 40_001)
    s = p * a / (1 + p * a)
    return float(np.abs(np.polyval(coefficients[::-1], s) / np.exp(log_ndtr(-a) + a * a / 2) - 1).max())


if __name__ == "__main__":
    fixed = [0.5]
    while len(fixed) <= DEGREE:
        fixed.append(float(np.float32(fit(fixed)[len(fixed)])))
    print(f"largest relative error, float32 coefficients: {measured(np.array(fixed)):.2e}")
    print(", ".join(np.format_float_positional(np.float32(c)) for c in fixed))
