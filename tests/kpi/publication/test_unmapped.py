"""GA4 rows GA4 left without a channel get one from the taxonomy, and the values no rule
places are counted in ``kpi.unmapped_dimension_values``, never dropped: worked out by hand
on four GA4 rows of 2 March 2026, on both warehouses."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from kpi.compute.tables import KpiTables
from kpi.language.loader import load_catalog
from kpi.publication.unmapped import refresh_unmapped_view
from kpi.refresh import refresh_catalog, refresh_kpi_values, refresh_periods
from kpi.warehouse.connection import Warehouse

DAY = dt.date(2026, 3, 2)
# (GA4's channel group, source, medium, campaign, sessions)
ROWS = [
    ("Paid Search", "google", "cpc", "brand", 10),  # GA4's group is kept
    ("Unassigned", "FB", "Paid_Social", "spring", 5),  # normalised, aliased: Paid Social
    ("Unassigned", "weird", "thing", "x", 3),  # no rule: stays Unassigned, counted
    (None, "newsletter", "email", "weekly", 2),  # no group at all: Email
]


def test_unassigned_ga4_rows_are_classified_and_the_rest_counted(warehouse_url):
    tables = KpiTables.for_catalog(load_catalog(), use_cubes=True)
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables(tables.all_tables())
        frame = pd.DataFrame(
            [
                {
                    "property_id": "1",
                    "date": DAY,
                    "session_default_channel_group": group,
                    "session_source": source,
                    "session_medium": medium,
                    "session_campaign_name": campaign,
                    "device_category": "desktop",
                    "sessions": sessions,
                    "is_other_row": False,
                }
                for group, source, medium, campaign, sessions in ROWS
            ]
        )
        wh.replace_rows(tables.raw_tables["ga4_traffic"], None, frame)
        refresh_catalog(wh, tables)
        refresh_periods(wh, tables, DAY)
        refresh_kpi_values(wh, tables)
        values = wh.read(
            sa.text(
                "SELECT channel, value FROM kpi.kpi_values WHERE kpi_id = 'sessions' AND grain "
                "= 'day' AND device IS NULL AND campaign IS NULL ORDER BY channel NULLS FIRST"
            )
        )
        assert refresh_unmapped_view(wh, tables) == "kpi.unmapped_dimension_values"
        unmapped = wh.read(sa.text("SELECT * FROM kpi.unmapped_dimension_values"))
    finally:
        wh.dispose()
    by_channel = dict(zip(values["channel"].fillna("(all)"), values["value"], strict=True))
    assert by_channel == {
        "(all)": 20.0,
        "Email": 2.0,
        "Paid Search": 10.0,
        "Paid Social": 5.0,
        "Unassigned": 3.0,
    }
    assert unmapped.to_dict("records") == [
        {
            "source": "ga4_traffic",
            "dimension": "channel",
            "column": "session_source / session_medium / session_campaign_name",
            "value": "weird / thing / x",
            "channel": "Unassigned",
            "rows": 1,
            "first_seen": DAY,
            "last_seen": DAY,
        }
    ]
