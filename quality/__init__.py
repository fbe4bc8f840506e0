"""Data-quality suites declared in YAML and run with Great Expectations (no Dagster here)."""

from quality.suites import Suite, SuiteError, load_suite, parse_suite
from quality.validate import ExpectationOutcome, ValidationReport, validate_frame

__all__ = [
    "ExpectationOutcome",
    "Suite",
    "SuiteError",
    "ValidationReport",
    "load_suite",
    "parse_suite",
    "validate_frame",
]
