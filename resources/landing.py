"""Where marketing files land before they are loaded."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from ingest.landing import Landing


class LandingResource(ConfigurableResource):
    """The landing folder (``LANDING_ROOT``); one sub-folder per declared source.

    ``root`` is a local path or any fsspec URL (``file://``, ``memory://``, ``s3://`` with
    s3fs installed, which then reads its credentials the usual way, from the environment).
    """

    root: str = Field(
        default="data/landing",
        description="LANDING_ROOT: landing folder, a local path or an fsspec URL such as "
        "s3://bucket/landing",
    )

    parse_cache: str | None = Field(
        default=None,
        description="KPI_PARSE_CACHE_DIR: local folder where parsed landing files are kept "
        "between runs, by content (unset: every run parses every file); writable by the "
        "pipeline alone",
    )

    def parse_cache_folder(self) -> Path | None:
        return Path(self.parse_cache) if self.parse_cache else None

    def landing(self) -> Landing:
        """Listing and reading files under the root, whatever filesystem it is on."""
        return Landing(self.root)
