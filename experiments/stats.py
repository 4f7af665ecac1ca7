"""Small statistics for paired-seed benchmarks: mean ± std, median, Student-t quantiles, paired differences, Holm.

Pure Python (``math`` only), so no scipy is needed. Every number is computed from the
per-seed values it is given; nothing here is a typed-in constant except the algorithm's own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``n - 1`` in the denominator; 0.0 for one value)."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def median(values: Sequence[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count; NaN for none)."""
    v = sorted(values)
    n = len(v)
    if n == 0:
        return float("nan")
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)`` for ``a, b > 0``, ``0 <= x <= 1``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on ``t_cdf``)."""
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"need 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def confidence_interval(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean, sample std, n and the two-sided t interval ``mean ± t_{(1+c)/2, n-1} · std / √n``.

    With fewer than two values the interval is undefined and given as NaN.
    """
    n = len(values)
    mean, std = mean_std(values)
    if n < 2:
        return {"mean": mean, "std": std, "n": n, "ci_low": float("nan"), "ci_high": float("nan"), "t": float("nan")}
    t = t_quantile(0.5 + confidence / 2.0, n - 1)
    half = t * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci_low": mean - half, "ci_high": mean + half, "t": t}


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """Per-seed differences ``a[s] - b[s]`` summarised by ``confidence_interval``.

    ``a`` and ``b`` must be the same seeds in the same order; pairs where either value is
    missing (``None`` or NaN) are dropped. The result also holds the differences themselves.
    """
    if len(a) != len(b):
        raise ValueError(f"paired values need the same seeds: {len(a)} vs {len(b)} values")
    diffs = [x - y for x, y in zip(a, b) if _ok(x) and _ok(y)]
    ci = confidence_interval(diffs, confidence)
    return {**ci, "p": t_test_p(ci["mean"], ci["std"], ci["n"]), "differences": diffs}


def t_test_p(mean: float, std: float, n: int) -> float:
    """Two-sided p-value of a one-sample t test of ``mean == 0`` (NaN with fewer than two values)."""
    if n < 2:
        return float("nan")
    if std == 0:
        return 1.0 if mean == 0 else 0.0
    return 2.0 * (1.0 - t_cdf(abs(mean) / (std / math.sqrt(n)), n - 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (NaN stays NaN and is not counted).

    Rejecting where the adjusted value is below alpha controls the family-wise error at alpha.
    """
    order = sorted((p, i) for i, p in enumerate(p_values) if _ok(p))
    m, running, adjusted = len(order), 0.0, [float("nan")] * len(p_values)
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def _ok(v) -> bool:
    return v is not None and math.isfinite(v)
