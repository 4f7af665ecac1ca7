"""Small statistics, checked against hand-computed values and closed forms (never against the same code)."""

from __future__ import annotations

import math

import pytest

from experiments.stats import (
    betainc,
    confidence_interval,
    holm,
    mean_std,
    median,
    paired_difference,
    t_cdf,
    t_quantile,
    t_test_p,
)


def test_mean_std_uses_n_minus_1_and_median():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([5.0]) == (5.0, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([4.0, 1.0, 3.0, 2.0]) == 2.5 and math.isnan(median([]))


@pytest.mark.parametrize(
    "df, q",  # two-sided 95% critical values from standard t tables
    [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622), (30, 2.0423), (1e7, 1.9600)],
)
def test_t_quantile_matches_tables(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-q, abs=1e-4)


def test_t_cdf_closed_forms():
    # df = 1 is the Cauchy distribution: F(t) = 1/2 + atan(t)/pi; df = 2: F(t) = 1/2 + t / (2 sqrt(2 + t^2)).
    for t in (-3.0, -0.5, 0.0, 0.7, 2.0, 10.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    assert betainc(1.0, 1.0, 0.3) == pytest.approx(0.3)  # I_x(1, 1) = x
    assert betainc(2.0, 1.0, 0.5) == pytest.approx(0.25)  # I_x(a, 1) = x^a


def test_paired_difference_by_hand():
    # differences 0.5, 1.0, 1.5: mean 1, std 0.5, half-width t_{0.975,2} * 0.5 / sqrt(3) = 1.24207
    d = paired_difference([1.5, 2.0, 2.5], [1.0, 1.0, 1.0])
    assert d["differences"] == [0.5, 1.0, 1.5]
    assert (d["mean"], d["std"], d["n"]) == (1.0, 0.5, 3)
    assert d["ci_low"] == pytest.approx(1 - 4.302653 * 0.5 / math.sqrt(3), abs=1e-5)
    assert d["ci_high"] == pytest.approx(1 + 1.242069, abs=1e-5)


def test_paired_difference_drops_missing_pairs_and_needs_same_seeds():
    d = paired_difference([1.0, None, 3.0, float("nan")], [0.0, 1.0, 1.0, 1.0])
    assert d["differences"] == [1.0, 2.0]
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 2.0])
    one = confidence_interval([4.0])
    assert one["n"] == 1 and math.isnan(one["ci_low"])


def test_t_test_p_by_hand():
    # t = 1 / (0.5 / sqrt(3)) = 3.4641 with 2 df: two-sided p = 2 (1 - F(t)) = 1 - t / sqrt(2 + t^2) = 0.07418
    assert t_test_p(1.0, 0.5, 3) == pytest.approx(1 - 3.4641016 / math.sqrt(2 + 12), abs=1e-6)
    assert paired_difference([1.5, 2.0, 2.5], [1.0, 1.0, 1.0])["p"] == pytest.approx(0.0741799, abs=1e-6)
    assert math.isnan(t_test_p(1.0, 0.5, 1))


def test_holm_by_hand_including_the_cap_at_1():
    # sorted 0.01, 0.02, 0.04 times 3, 2, 1 -> 0.03, 0.04, 0.04 (kept monotone); NaN is not in the family
    assert holm([0.04, 0.01, float("nan"), 0.02]) == pytest.approx([0.04, 0.03, float("nan"), 0.04], nan_ok=True)
    # 0.6 x 2 = 1.2 -> 1; then max(1, 0.9 x 1) = 1: without the cap both would read 1.2
    assert holm([0.6, 0.9]) == [1.0, 1.0]
    # 0.01 x 4 = 0.04; 0.2 x 3 = 0.6; 0.7 x 2 = 1.4 -> 1; max(1, 0.8) = 1
    assert holm([0.7, 0.01, 0.8, 0.2]) == pytest.approx([1.0, 0.04, 1.0, 0.6])
    assert holm([]) == []
