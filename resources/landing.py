"""Where marketing files land before they are loaded."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field


class LandingResource(ConfigurableResource):
    """The landing folder (``LANDING_ROOT``); one sub-folder per declared source."""

    root: str = Field(default="data/landing", description="local folder of landing files")

    @property
    def path(self) -> Path:
        return Path(self.root)
