"""The rules a catalog must pass, one small class each, in one module per concern.

``RULES`` lists them in the order their problems are reported; ``run_rules`` runs them all.
"""

from __future__ import annotations

from kpi.language.catalog import Catalog
from kpi.language.problems import Problem
from kpi.language.rules.additivity import AdditivityRule
from kpi.language.rules.alerts import AlertRulesRule
from kpi.language.rules.base import Rule
from kpi.language.rules.channels import ChannelPatternRule, ClassifyRule, ShadowedChannelRule
from kpi.language.rules.claims import ClaimedConversionsRule
from kpi.language.rules.dimensions import DimensionRule
from kpi.language.rules.display_formats import DisplayFormatRule
from kpi.language.rules.engine_names import EngineColumnNameRule
from kpi.language.rules.expressions import ExpressionRule
from kpi.language.rules.file_sources import FileSourceDeclarationRule
from kpi.language.rules.grains import GrainRule
from kpi.language.rules.kpi_types import (
    CumulativeRule,
    GrowthInputRule,
    KpiTypeFieldsRule,
    ShiftedGrowthRule,
)
from kpi.language.rules.references import CycleRule, KpiReferenceRule
from kpi.language.rules.sources import SourceDeclarationRule, UnknownSourceRule
from kpi.language.rules.targets import GoalDeadlineRule, SeasonalPhasingRule, TargetRule
from kpi.language.rules.unions import UnionSourceRule
from kpi.language.rules.zeros import ZeroDenominatorRule

RULES: list[Rule] = [
    SourceDeclarationRule(),
    UnknownSourceRule(),
    UnionSourceRule(),
    ExpressionRule(),
    ZeroDenominatorRule(),  # right after ExpressionRule, which used to report these itself
    KpiTypeFieldsRule(),
    KpiReferenceRule(),
    CycleRule(),
    AdditivityRule(),
    ClaimedConversionsRule(),
    GrainRule(),
    DimensionRule(),
    EngineColumnNameRule(),
    CumulativeRule(),
    ShiftedGrowthRule(),
    GrowthInputRule(),
    TargetRule(),
    SeasonalPhasingRule(),
    GoalDeadlineRule(),
    DisplayFormatRule(),
    AlertRulesRule(),
    FileSourceDeclarationRule(),
    ChannelPatternRule(),
    ShadowedChannelRule(),
    ClassifyRule(),
]


def run_rules(catalog: Catalog) -> list[Problem]:
    """Every problem every rule finds."""
    problems: list[Problem] = []
    for rule in RULES:
        problems.extend(rule.check(catalog))
    return problems


__all__ = ["RULES", "Rule", "run_rules"]
