"""Platform-claimed conversions are never added up across platforms.

Every ad platform counts a conversion when one of its ads came before it, by its own
attribution window: Google Ads and Meta both claim the order a customer placed after seeing
both. A column declared ``claimed_by: platform`` therefore adds up within one platform and
never across them. A measure summing it must pin one platform in its filter
(``platform = 'google_ads'``), or the KPI must say it sets all claims against observed
conversions on purpose (``reconciles_claims: true``). CPA and ROAS use observed conversions
(GA4 key events, orders) for this reason.
"""

from __future__ import annotations

import re

from kpi.language.catalog import Catalog
from kpi.language.expressions import ExpressionError, referenced_names
from kpi.language.models import Agg
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule, all_measures, problem_at


def _pins_one(filter_text: str | None, column: str) -> bool:
    """True when ``filter_text`` keeps one value of ``column`` (``column = 'x'``)."""
    if not filter_text:
        return False
    return re.search(rf"\b{re.escape(column)}\s*=\s*'[^']*'", filter_text) is not None


class ClaimedConversionsRule(Rule):
    name = "claimed_conversions"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems: list[Problem] = []
        for kpi, role, m in all_measures(catalog):
            src = catalog.sources.get(m.source)
            if src is None or m.expr is None or m.agg not in (Agg.sum, Agg.average):
                continue
            if kpi.reconciles_claims:
                continue
            try:
                names = referenced_names(m.expr)
            except ExpressionError:
                continue  # the expression rule reports it
            for name in sorted(names):
                col = src.columns.get(name)
                if col is None or col.claimed_by is None or _pins_one(m.filter, col.claimed_by):
                    continue
                problems.append(
                    problem_at(
                        catalog,
                        kpi,
                        role,
                        "expr",
                        message=f"{role}: sums `{name}`, which each {col.claimed_by} claims by "
                        "its own attribution (several claim the same order): keep one "
                        f"{col.claimed_by} (filter: \"{col.claimed_by} = '...'\"), use observed "
                        "conversions (orders, GA4 key events), or declare "
                        "`reconciles_claims: true` on a KPI that sets the claims against them",
                    )
                )
        return problems
