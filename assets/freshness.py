"""How fresh the tables must be: analysts read them every morning."""

import datetime as dt

from dagster import FreshnessPolicy

# The daily run lands before the working day; warn after 26 hours, fail after 30.
DAILY_FRESHNESS = FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=30), warn_window=dt.timedelta(hours=26)
)
