"""The taxonomy compiled to SQL (kpi.compute.channel_sql) gives every case the channel the
Python reference gives it, on a real DuckDB and a real PostgreSQL: the same normalisation,
aliases, lists and regex searches (DuckDB's ``~`` would be a full match)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa
import yaml

from kpi.compute.channel_sql import channel_expression
from kpi.language.loader import load_catalog
from kpi.warehouse.connection import Warehouse

CASES = yaml.safe_load((Path(__file__).parents[1] / "language" / "channel_cases.yaml").read_text())


def test_sql_and_python_give_every_case_the_same_channel(warehouse_url):
    taxonomy = load_catalog().taxonomy
    metadata = sa.MetaData()
    rows = sa.Table(
        "utm_cases",
        metadata,
        sa.Column("i", sa.Integer),
        sa.Column("source", sa.String),
        sa.Column("medium", sa.String),
        sa.Column("campaign", sa.String),
    )
    wh = Warehouse(warehouse_url)
    try:
        wh.ensure_tables([rows])
        frame = pd.DataFrame(
            [
                {"i": i, **{k: c[k] for k in ("source", "medium", "campaign")}}
                for i, c in enumerate(CASES)
            ]
        )
        wh.replace_rows(rows, None, frame)
        channel = channel_expression(taxonomy, rows.c.source, rows.c.medium, rows.c.campaign)
        got = wh.read(sa.select(rows.c.i, channel.label("channel")).order_by(rows.c.i))
    finally:
        wh.dispose()
    expected = [taxonomy.classify(c["source"], c["medium"], c["campaign"]) for c in CASES]
    assert list(got["channel"]) == expected == [c["channel"] for c in CASES]
