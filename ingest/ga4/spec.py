"""What a GA4 report asks for: :class:`ReportSpec`, checked against the Data API's limits."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.ga4.filters import (
    DIMENSION_OPERATORS,
    METRIC_OPERATORS,
    ReportFilter,
    field_names,
    leaves,
)

MAX_DIMENSIONS = 9
MAX_METRICS = 10
# Time dimensions a report can be keyed by, and the grain each one gives. ``yearWeek`` weeks
# start on Sunday and restart at week 01 on January 1st (so the week spanning New Year comes
# back as two partial rows); ``isoYearIsoWeek`` weeks are ISO weeks, Monday to Sunday.
TIME_DIMENSIONS: dict[str, str] = {
    "date": "day",
    "isoYearIsoWeek": "week",
    "yearWeek": "week",
    "yearMonth": "month",
}


@dataclass(frozen=True)
class ReportSpec:
    """A named GA4 report: which dimensions and metrics to request, optionally filtered.

    Exactly one time dimension (``date``, ``isoYearIsoWeek``, ``yearWeek`` or ``yearMonth``)
    must be among the dimensions, because loads replace data period by period.
    """

    name: str
    dimensions: tuple[str, ...]
    metrics: tuple[str, ...]
    dimension_filter: ReportFilter | None = None
    metric_filter: ReportFilter | None = None

    @property
    def time_dimension(self) -> str | None:
        """The report's time dimension, or None when it has none (an invalid spec)."""
        return next((d for d in self.dimensions if d in TIME_DIMENSIONS), None)

    @property
    def grain(self) -> str | None:
        """``day``, ``week`` or ``month``: what one value of the time dimension covers."""
        time_dimension = self.time_dimension
        return TIME_DIMENSIONS[time_dimension] if time_dimension else None

    def problems(self) -> list[str]:
        """Return human-readable reasons the API would reject this spec (empty when fine)."""
        return [message for _, message in self.located_problems()]

    def located_problems(self) -> list[tuple[str, str]]:
        """Like :meth:`problems`, each paired with the field it is about (``name``,
        ``dimensions``, ``metrics``, ``dimension_filter`` or ``metric_filter``), so a YAML
        loader can point at the right line."""
        found: list[tuple[str, str]] = []
        if not self.name:
            found.append(("name", "report spec needs a name"))
        if len(self.dimensions) > MAX_DIMENSIONS:
            found.append(
                (
                    "dimensions",
                    f"{len(self.dimensions)} dimensions requested; the GA4 Data API allows at "
                    f"most {MAX_DIMENSIONS} per report",
                )
            )
        if len(self.metrics) > MAX_METRICS:
            found.append(
                (
                    "metrics",
                    f"{len(self.metrics)} metrics requested; the GA4 Data API allows at most "
                    f"{MAX_METRICS} per report",
                )
            )
        if not self.metrics:
            found.append(("metrics", "at least one metric is required"))
        time_dims = [d for d in self.dimensions if d in TIME_DIMENSIONS]
        if not time_dims:
            found.append(
                (
                    "dimensions",
                    f"a time dimension ({', '.join(TIME_DIMENSIONS)}) is required so loads "
                    "can replace whole days, weeks or months",
                )
            )
        elif len(set(time_dims)) > 1:
            found.append(
                (
                    "dimensions",
                    f"only one time dimension per report, got {', '.join(time_dims)}: the "
                    "report's grain must be clear so its rows replace whole periods",
                )
            )
        for kind, names in (("dimension", self.dimensions), ("metric", self.metrics)):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                found.append((f"{kind}s", f"duplicate {kind} names: {', '.join(duplicates)}"))
        both = sorted(set(self.dimensions) & set(self.metrics))
        if both:
            found.append(("metrics", f"names used as both dimension and metric: {', '.join(both)}"))
        if "conversions" in self.metrics:
            found.append(
                ("metrics", "'conversions' was renamed to 'keyEvents' in GA4; request 'keyEvents'")
            )
        found += self._filter_problems()
        return found

    def _filter_problems(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        checks = (
            ("dimension_filter", self.dimension_filter, DIMENSION_OPERATORS, self.metrics),
            ("metric_filter", self.metric_filter, METRIC_OPERATORS, self.dimensions),
        )
        for where, expr, allowed, wrong_names in checks:
            wrong_kind = "metric" if where == "dimension_filter" else "dimension"
            if expr is None:
                continue
            bad_ops = sorted({leaf.op for leaf in leaves(expr)} - allowed)
            if bad_ops:
                found.append((where, f"{where} cannot use {', '.join(bad_ops)}"))
            misplaced = [n for n in field_names(expr) if n in wrong_names]
            if misplaced:
                found.append(
                    (
                        where,
                        f"{where} tests {', '.join(misplaced)}, which this report requests as "
                        f"a {wrong_kind}; GA4 filters dimensions and metrics separately",
                    )
                )
        return found


# Users are not additive across days: monthly counts come from a report at month grain.
USERS_MONTHLY_REPORT = ReportSpec(
    "users_monthly", ("yearMonth",), ("totalUsers", "newUsers", "activeUsers")
)

TRAFFIC_REPORT = ReportSpec(
    "traffic",
    (
        "date",
        "sessionDefaultChannelGroup",
        "sessionSource",
        "sessionMedium",
        "sessionCampaignName",
        "deviceCategory",
    ),
    ("sessions", "engagedSessions", "newUsers", "keyEvents", "transactions", "purchaseRevenue"),
)
