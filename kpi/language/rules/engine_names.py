"""A conformed dimension does not take a name the engine writes beside the dimensions."""

from __future__ import annotations

import re

from kpi.language.catalog import Catalog
from kpi.language.models import RESERVED_COLUMN_PREFIX
from kpi.language.problems import Problem
from kpi.language.rules.base import Rule

# Every column that sits beside the dimension columns in a table or statement of the
# engine: kpi_values, kpi_comparisons and its inner query, the working tables (cubes,
# compared_values) and the compiler's and rollups' subqueries. A dimension of one of these
# names makes two columns of one name: the catalogue would load, then its first refresh
# would fail. tests/kpi/language/test_engine_names.py collects these names from the
# compiled statements and tables and checks that this list holds every one.
ENGINE_COLUMNS = frozenset(
    {
        # kpi_values, compared_values and the compiler's subqueries
        "kpi_id", "grain", "period_start", "period_end", "is_complete_period", "value",
        "numerator", "denominator", "sample_size", "definition_version", "computed_at",
        "window_offset", "day", "bucket", "total", "nonnull", "low", "high", "n", "x",
        "rank", "checksum",
        # kpi_comparisons and its inner query
        "kpi_name", "area", "direction", "actual", "judged", "target", "target_full_period",
        "band_min", "band_max", "band_min_full", "band_max_full", "phasing", "attainment",
        "status", "variance", "variance_favourable", "previous", "previous_end",
        "previous_version", "previous_definition_version", "change_abs", "change_rel",
        "last_year", "last_year_end", "last_year_version", "last_year_definition_version",
        "change_ly_abs", "change_ly_rel", "benchmark_value", "benchmark_min",
        "benchmark_max", "benchmark_source", "benchmark_position", "projected", "on_pace",
        "goal_start", "goal_deadline", "goal_target", "goal_target_value", "goal_band_min",
        "goal_band_max", "goal_actual", "goal_actual_to_date", "goal_projected",
        "goal_projected_value", "goal_projection", "goal_will_reach", "changed_at",
        "changed_on", "definition_changed_at", "history_recomputed",
    }
)  # fmt: skip
# Columns named by position or by source: a cube's stored measures (s0_total), a rollup's
# (m0_total) and, in the fused join, a source's rollup columns (orders__m0_total).
_PARTS = "(?:total|nonnull|low|high|n)"
ENGINE_PATTERN = re.compile(rf"^[sm]\d+_{_PARTS}$|__m\d+_{_PARTS}$")


class EngineColumnNameRule(Rule):
    """A conformed dimension is not named like a column the engine writes beside the
    dimensions (``value``, ``status``, ``day``...): its tables and statements carry each
    dimension as a column of that name, so the two would collide at the first refresh."""

    name = "engine_column_name"

    def check(self, catalog: Catalog) -> list[Problem]:
        problems = []
        for dim in catalog.dimensions:
            folded = dim.casefold()  # DuckDB and PostgreSQL fold unquoted names alike
            reserved = folded in ENGINE_COLUMNS or ENGINE_PATTERN.search(folded)
            if not reserved and not folded.startswith(RESERVED_COLUMN_PREFIX):
                continue
            file, line = (
                catalog.sources_location.at("dimensions", dim)
                if catalog.sources_location is not None
                else ("sources.yaml", None)
            )
            # A suggestion the rule accepts: no reserved prefix, and no longer a whole name.
            prefixed = folded.startswith(RESERVED_COLUMN_PREFIX)
            suggested = f"{dim[len(RESERVED_COLUMN_PREFIX) :] if prefixed else dim}_name"
            message = (
                f"dimension `{dim}`: the KPI tables already have a column of that name "
                "beside the dimensions (kpi_values, kpi_comparisons or the engine's working "
                f"tables); rename the dimension, e.g. `{suggested}`"
            )
            problems.append(Problem(file, line, message))
        return problems
