"""Differentially private counts and sums by group, with OpenDP (never hand-written noise).

The privacy unit is one row (one person, in the datasets this gateway serves), added or
removed. Counts: OpenDP's `make_count_by_categories` over the public categories (rows outside
them are counted nowhere), then its Laplace (discrete, for integers) or Gaussian measurement.
Sums: each value clamped to the policy's bounds; one row moves one group's sum by at most
max(|lower|, |upper|), the sensitivity OpenDP's bounded `make_sum` reports, and OpenDP's
measurement on the vector of group sums adds the noise. The scale of each measurement is found
by OpenDP's binary search so that its own privacy map meets the grant's epsilon (and delta).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import opendp.prelude as dp

from gateway.model.aggregate import Bounds

dp.enable_features("contrib")


@dataclass(frozen=True)
class Release:
    values: npt.NDArray[np.int64]  # one per category, noisy
    scale: float  # the noise scale OpenDP was given
    epsilon: float  # what OpenDP's privacy map says the release costs
    delta: float


def _gaussian(meas: Any, delta: float) -> Any:
    return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(meas), delta)


def _calibrated(
    make: Any, d_in: int, epsilon: float, delta: float, gaussian: bool
) -> tuple[Any, float]:
    """The measurement with the smallest scale whose privacy map stays within the budget."""
    if gaussian:
        # Searched between bounds that keep OpenDP's conversions finite: a Gaussian calibrated
        # to (epsilon, delta) never has a scale below d_in / epsilon / 2 for delta < 0.1.
        scale = dp.binary_search_param(
            lambda s: _gaussian(make(s), delta),
            d_in=d_in,
            d_out=(epsilon, delta),
            bounds=(d_in / epsilon / 2, d_in / epsilon * 1000),
        )
        return _gaussian(make(scale), delta), float(scale)
    scale = dp.binary_search_param(make, d_in=d_in, d_out=epsilon)
    return make(scale), float(scale)


def count_measurement(
    categories: list[str], mechanism: str, epsilon: Decimal, delta: Decimal
) -> tuple[Any, float]:
    """(measurement from a list of keys to noisy counts per category, its scale)."""
    gaussian = mechanism == "gaussian"
    counts = dp.t.make_count_by_categories(
        dp.vector_domain(dp.atom_domain(T=str)),
        dp.symmetric_distance(),
        categories=categories,
        null_category=False,
        MO=dp.L2Distance[float] if gaussian else dp.L1Distance[int],
        TOA=int,
    )

    def make(scale: float) -> Any:
        return counts >> (dp.m.then_gaussian(scale) if gaussian else dp.m.then_laplace(scale))

    return _calibrated(make, 1, float(epsilon), float(delta), gaussian)


def sum_sensitivity(bounds: Bounds) -> int:
    """How far one row can move a clamped sum (OpenDP's stability map of a bounded sum)."""
    summed = (
        dp.vector_domain(dp.atom_domain(bounds=(bounds.lower, bounds.upper), T="i64")),
        dp.symmetric_distance(),
    ) >> dp.t.then_sum()  # type: ignore[no-untyped-call]  # (OpenDP's partial constructors)
    return int(summed.map(1))


def sum_measurement(
    size: int, bounds: Bounds, mechanism: str, epsilon: Decimal, delta: Decimal
) -> tuple[Any, float, int]:
    """(measurement from the vector of group sums to noisy sums, its scale, the sensitivity)."""
    gaussian = mechanism == "gaussian"
    sensitivity = sum_sensitivity(bounds)
    space = (
        dp.vector_domain(dp.atom_domain(T="i64"), size=size),
        dp.l2_distance(T="i64") if gaussian else dp.l1_distance(T="i64"),
    )

    def make(scale: float) -> Any:
        return space >> (dp.m.then_gaussian(scale) if gaussian else dp.m.then_laplace(scale))

    measurement, scale = _calibrated(make, sensitivity, float(epsilon), float(delta), gaussian)
    return measurement, scale, sensitivity


def noisy_counts(
    keys: list[str], categories: list[str], mechanism: str, epsilon: Decimal, delta: Decimal
) -> Release:
    measurement, scale = count_measurement(categories, mechanism, epsilon, delta)
    spent = measurement.map(1)
    eps, dlt = spent if isinstance(spent, tuple) else (spent, 0.0)
    return Release(np.asarray(measurement(keys), dtype=np.int64), scale, eps, dlt)


def noisy_sums(
    sums: npt.NDArray[np.int64], bounds: Bounds, mechanism: str, epsilon: Decimal, delta: Decimal
) -> Release:
    measurement, scale, sensitivity = sum_measurement(len(sums), bounds, mechanism, epsilon, delta)
    spent = measurement.map(sensitivity)
    eps, dlt = spent if isinstance(spent, tuple) else (spent, 0.0)
    values = measurement([int(v) for v in sums])
    return Release(np.asarray(values, dtype=np.int64), scale, eps, dlt)
