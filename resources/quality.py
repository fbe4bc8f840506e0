"""Where the data-docs pages of the quality checks go."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from quality.docs import DEFAULT_QUALITY_DIR


class QualityResource(ConfigurableResource):
    """The data-docs folder: ``<docs_folder>/<source>-<run id>.html``, one page per check.

    The code location sets it from ``KPI_QUALITY_DIR`` (default ``data/quality``); the
    quality code takes the folder as an argument and reads no environment.
    """

    docs_folder: str = Field(
        default=str(DEFAULT_QUALITY_DIR),
        description="KPI_QUALITY_DIR: folder the data-docs page of every quality check is "
        "written to",
    )
