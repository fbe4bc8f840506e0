"""The rules a catalog must pass, one small class each; ``run_rules`` runs them all."""

from kpi.language.rules.definitions import RULES, Rule, run_rules

__all__ = ["RULES", "Rule", "run_rules"]
