"""The comparisons with their targets: the one query the report and the alerts both read.

``kpi_comparisons`` holds a KPI's value, target and status per period and slice;
``kpi_targets`` holds what the comparison does not repeat, the target band of a within-band
KPI. Readers that show a KPI against its target want the total rows (no dimension slice) of
one grain, each with the band of its period.
"""

from __future__ import annotations

import sqlalchemy as sa


def totals_with_targets(
    comparisons: sa.Table,
    targets: sa.Table,
    dimensions: list[str],
    grain: str,
    *columns: sa.ColumnElement,
) -> sa.Select:
    """``columns`` of the total rows of ``comparisons`` at ``grain``, then the period's
    target ``band_min`` and ``band_max`` (NULL without a band)."""
    c, t = comparisons, targets
    return (
        sa.select(*columns, t.c.band_min, t.c.band_max)
        .select_from(
            c.outerjoin(
                t,
                sa.and_(
                    t.c.kpi_id == c.c.kpi_id,
                    t.c.grain == c.c.grain,
                    t.c.period_start == c.c.period_start,
                ),
            )
        )
        .where(c.c.grain == str(grain), *(c.c[d].is_(None) for d in dimensions))
    )
