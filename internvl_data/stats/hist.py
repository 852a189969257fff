"""Exact integer histograms: the flat-memory accumulator behind ``ivl-data stats``.

Every per-record quantity that stats reports (turns, characters, tiles, tokens...) is an integer, so a
``value -> count`` map holds the whole distribution in memory bounded by the number of *distinct* values, never
by the number of records. Percentiles computed from it equal ``numpy.percentile`` (linear interpolation) of the
expanded values, and ``repeat_time`` scaling multiplies counts, which leaves percentiles unchanged.
No pandas or numpy here: worker processes import this module.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))
PROBLEMS_KEPT = 10  # lines not counted that stats names, per dataset (the count covers them all)
STAT_NAMES = ("count", "mean", "p50", "p90", "p99", "max")


class Hist(Counter):
    """``value -> count``; ``+`` merges, :meth:`scaled` applies a repeat factor."""

    def total_count(self) -> int:
        return sum(self.values())

    def total_sum(self) -> int:
        return sum(v * c for v, c in self.items())

    def scaled(self, factor: int) -> Hist:
        return Hist({v: c * factor for v, c in self.items()})

    def percentile(self, q: float) -> float:
        """``numpy.percentile(values, 100*q)`` (method "linear") without expanding the values."""
        n = self.total_count()
        if n == 0:
            return math.nan
        pos = q * (n - 1)
        lo_rank = int(math.floor(pos))
        frac = pos - lo_rank
        lo = self._value_at(lo_rank)
        hi = self._value_at(lo_rank + 1) if frac else lo
        return lo + frac * (hi - lo)

    def _value_at(self, rank: int) -> int:
        """The value at 0-based ``rank`` of the sorted expanded values."""
        seen = 0
        for v in sorted(self):
            seen += self[v]
            if seen > rank:
                return v
        raise IndexError(rank)

    def describe(self) -> dict[str, float]:
        """count, mean, p50, p90, p99, max (NaN for an empty histogram, count 0)."""
        n = self.total_count()
        if n == 0:
            return {"count": 0, "mean": math.nan, "p50": math.nan, "p90": math.nan, "p99": math.nan, "max": math.nan}
        out: dict[str, float] = {"count": n, "mean": self.total_sum() / n}
        for name, q in QUANTILES:
            out[name] = self.percentile(q)
        out["max"] = max(self)
        return out


@dataclass
class Tally:
    """What one worker learned about one dataset: counters and histograms, mergeable and picklable."""

    lines: int = 0  # lines read (blank or unparsable lines included)
    counts: Counter = field(default_factory=Counter)  # "kind_single", "over_length", "media_unreadable", ...
    hists: dict[str, Hist] = field(default_factory=dict)  # metric -> histogram
    problems: list[tuple[int, str]] = field(default_factory=list)  # (byte offset, why not counted): the first few

    def problem(self, offset: int, message: str) -> None:
        """A line that is not counted: kept (at most :data:`PROBLEMS_KEPT` of them) so that stats can name it."""
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append((offset, message))

    def add(self, metric: str, value: int) -> None:
        try:
            self.hists[metric][value] += 1
        except KeyError:  # the metric's first value
            self.hists[metric] = Hist({value: 1})

    def merge(self, other: Tally) -> Tally:
        self.lines += other.lines
        self.counts.update(other.counts)
        for metric, h in other.hists.items():
            self.hists.setdefault(metric, Hist()).update(h)
        self.problems = sorted(self.problems + other.problems)[:PROBLEMS_KEPT]
        return self

    def scaled(self, factor: int) -> Tally:
        """The tally of the dataset repeated ``factor`` times (``repeat_time`` > 1)."""
        if factor == 1:
            return self
        return Tally(
            self.lines * factor,
            Counter({k: v * factor for k, v in self.counts.items()}),
            {m: h.scaled(factor) for m, h in self.hists.items()},
            self.problems,
        )
