"""Where marketing files land before they are loaded."""

from __future__ import annotations

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

    def landing(self) -> Landing:
        """Listing and reading files under the root, whatever filesystem it is on."""
        return Landing(self.root)
