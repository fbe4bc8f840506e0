"""Reading landing files: dialects, typing, every kind of bad input, empty files, Parquet,
fsspec landing folders and the choice between several deliveries of the same key.

No warehouse here: real bytes in a temporary folder or in ``memory://``, read by the same
functions the assets use. Expected values are written by hand.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import duckdb
import fsspec
import pandas as pd
import pytest

from assets.settings import catalog
from ingest.csv_dialect import sniff_decimal, sniff_delimiter
from ingest.files import (
    FileFormatError,
    RowProblem,
    convert_currency,
    delivery_order,
    parse_file,
    read_source,
)
from ingest.landing import Landing, content_sha256

D = dt.date
ZONE = "Europe/Copenhagen"
AD_HEADER = "date,platform,channel,campaign,impressions,clicks,cost,currency"


def spec(name: str):
    return catalog().sources[name]


def csv_bytes(*lines: str, end: str = "\n", header: str = AD_HEADER) -> bytes:
    return (end.join([header, *lines]) + end).encode()


def problems_of(data: bytes, name: str = "ad_spend", path: str = "in/ad.csv") -> list:
    return parse_file(data, path, spec(name)).problems


# ---------------------------------------------------------------------------------------------
# Dialects
# ---------------------------------------------------------------------------------------------


def test_danish_excel_export_semicolons_decimal_comma_bom_crlf():
    text = (
        "\ufeffdate;platform;channel;campaign;impressions;clicks;cost;currency\r\n"
        '05-01-2026;google_ads;search;"forår; brand";1.234;56;1.234,56;DKK\r\n'
        "06.01.2026;meta;social;Efterår;12;3;0,5;EUR\r\n"
        "2026-01-07;linkedin;display;b2b;1.000.000;7;12.345.678,9;SEK\r\n"
    )
    parsed = parse_file(text.encode("utf-8"), "in/ad_dk.csv", spec("ad_spend"))

    assert parsed.problems == []
    assert parsed.format == "csv delimiter ';' decimal ',' utf-8-sig CRLF"
    f = parsed.frame
    assert list(f["date"]) == [D(2026, 1, 5), D(2026, 1, 6), D(2026, 1, 7)]
    assert list(f["campaign"]) == ["forår; brand", "Efterår", "b2b"]
    assert list(f["impressions"]) == [1234, 12, 1000000]
    assert list(f["cost"]) == [1234.56, 0.5, 12345678.9]
    assert list(f["currency"]) == ["DKK", "EUR", "SEK"]
    assert list(f["_source_line"]) == [2, 3, 4]
    assert set(f["_source_file"]) == {"in/ad_dk.csv"}


def test_excel_sep_line_and_windows_1252_encoding():
    text = (
        "sep=;\r\n"
        "date;platform;channel;campaign;impressions;clicks;cost;currency\r\n"
        "2026-01-05;meta;social;Forår;10;1;99,95;EUR\r\n"
    )
    parsed = parse_file(text.encode("cp1252"), "in/ad.csv", spec("ad_spend"))
    assert parsed.problems == []
    assert parsed.format == "csv delimiter ';' decimal ',' cp1252 CRLF, sep= line"
    assert parsed.frame["campaign"][0] == "Forår"
    assert parsed.frame["cost"][0] == 99.95
    assert parsed.frame["_source_line"][0] == 3  # line 1 is sep=;, line 2 the header


def test_excel_unicode_text_export_utf16_tabs():
    text = "\t".join(AD_HEADER.split(",")) + "\r\n2026-01-05\tmeta\tsocial\tx\t10\t1\t2.5\tEUR\r\n"
    parsed = parse_file(text.encode("utf-16"), "in/ad.csv", spec("ad_spend"))
    assert parsed.problems == []
    assert parsed.format == "csv delimiter '\\t' decimal '.' utf-16 CRLF"
    assert parsed.frame["cost"][0] == 2.5


def test_quoted_fields_and_physical_line_numbers():
    data = csv_bytes(
        '2026-01-05,meta,social,"brand, ""new""",10,1,2.50,EUR',
        "",  # a blank line still counts as a line
        '2026-01-06,meta,social,"two',
        'lines",11,2,3.00,EUR',
        "2026-01-07,meta,social,plain,12,3,4.00,EUR",
    )
    parsed = parse_file(data, "in/ad.csv", spec("ad_spend"))
    assert parsed.problems == []
    assert list(parsed.frame["campaign"]) == ['brand, "new"', "two\nlines", "plain"]
    assert list(parsed.frame["_source_line"]) == [2, 4, 6]


def test_sniffing_rules():
    expected = ["date", "cost"]
    assert sniff_delimiter("date;cost", expected) == ";"
    assert sniff_delimiter("date,cost", expected) == ","
    # A semicolon inside a quoted header name does not win over the real delimiter.
    assert sniff_delimiter('date,"cost; EUR",cost', expected) == ","
    assert sniff_decimal(["1.234,56"], ",") == ","
    assert sniff_decimal(["12.5", "3"], ";") == "."
    # "1.234" alone is ambiguous: the delimiter decides.
    assert sniff_decimal(["1.234"], ";") == ","
    assert sniff_decimal(["1.234"], ",") == "."


# ---------------------------------------------------------------------------------------------
# Bad input: every problem names file, line, field, value and what was expected
# ---------------------------------------------------------------------------------------------


def test_each_bad_value_is_a_located_problem():
    data = csv_bytes(
        "2026-01-05,meta,social,ok,10,1,2.50,EUR",
        "2026-01-05,meta,social,extra,10,1,2.50,EUR,surplus",  # malformed: 9 fields
        "2026-01-06,meta,social,typo,10,12x,2.50,EUR",  # wrong type
        "2026-01-06,meta,socal,vocab,10,1,2.50,EUR",  # unknown channel
        "2026-01-06,meta,social,,10,1,2.50,EUR",  # missing campaign (part of the key)
        '2026-01-07,meta,social,money,10,1,"2,50",EUR',  # decimal comma in a '.' file
        "2026-01-07,meta,social,cur,10,1,2.50,XYZ",  # unknown currency
        "31-01-2026,meta,social,day,10,1,2.50,EUR",  # day-first date in a ',' file
    )
    problems = problems_of(data)
    assert problems == [
        RowProblem(
            "in/ad.csv",
            3,
            None,
            "2026-01-05,meta,social,extra,10,1,2.50,EUR,surplus",
            "8 fields separated by ',' as in the header, found 9",
        ),
        RowProblem("in/ad.csv", 4, "clicks", "12x", "a whole number like 1234"),
        RowProblem(
            "in/ad.csv",
            5,
            "channel",
            "socal",
            "one of search, social, display (did you mean 'social'?)",
        ),
        RowProblem(
            "in/ad.csv",
            6,
            "campaign",
            "",
            "a value: `campaign` is part of the key (date, platform, campaign)",
        ),
        RowProblem("in/ad.csv", 7, "cost", "2,50", "a number like 1234.56"),
        RowProblem("in/ad.csv", 8, "currency", "XYZ", "one of EUR, USD, GBP, DKK, SEK"),
        RowProblem("in/ad.csv", 9, "date", "31-01-2026", "a date as YYYY-MM-DD"),
    ]
    assert str(problems[1]) == (
        "in/ad.csv:4: field `clicks` value '12x': expected a whole number like 1234"
    )


def test_read_source_raises_with_every_problem_and_loads_nothing(tmp_path):
    folder = tmp_path / "ad_spend"
    folder.mkdir()
    (folder / "good.csv").write_bytes(csv_bytes("2026-01-05,meta,social,ok,10,1,2.50,EUR"))
    (folder / "bad.csv").write_bytes(
        csv_bytes("2026-01-05,meta,social,x,ten,1,2.50,EUR", "2026-01-06,meta,,y,1,1,1,EUR")
    )
    with pytest.raises(FileFormatError) as info:
        read_source(Landing(tmp_path), spec("ad_spend"), ZONE)
    bad = str(folder / "bad.csv")
    assert [(p.file, p.line, p.field, p.value) for p in info.value.problems] == [
        (bad, 2, "impressions", "ten"),
        (bad, 3, "channel", ""),
    ]
    message = str(info.value)
    assert message.startswith(
        "2 problem(s) in 1 landing file(s); the load stopped and wrote nothing"
    )
    assert f"{bad}:2: field `impressions` value 'ten': expected a whole number" in message
    assert f"{bad}:3: field `channel` value '': expected a value: `channel` is declared" in message


def test_lenient_read_still_stops_on_an_unusable_file_naming_each_problem_once(tmp_path):
    """strict=False quarantines bad rows, but a file that cannot be decoded cannot be read
    row by row: the load stops, and the problem (which has no line) is listed once."""
    folder = tmp_path / "ad_spend"
    folder.mkdir()
    (folder / "good.csv").write_bytes(csv_bytes("2026-01-05,meta,social,ok,10,1,2.50,EUR"))
    # 0x81 and 0x8D are neither UTF-8 nor Windows-1252.
    bad = csv_bytes("2026-01-05,meta,social,BAD,10,1,2,EUR").replace(b"BAD", b"\x81\x8d")
    (folder / "bad.csv").write_bytes(bad)
    with pytest.raises(FileFormatError) as info:
        read_source(Landing(tmp_path), spec("ad_spend"), ZONE, strict=False)
    problems = info.value.problems
    assert len(problems) == 1
    assert problems[0].file == str(folder / "bad.csv") and problems[0].line is None
    assert "UTF-8 or Windows-1252" in str(problems[0])
    assert str(info.value).startswith("1 problem(s) in 1 landing file(s)")


def test_missing_column_names_what_was_expected_and_found():
    data = csv_bytes("2026-01-05,meta,social,x,10,1,2.50", header=AD_HEADER.rsplit(",", 1)[0])
    data = data.replace(b"impressions", b"impresions")
    assert problems_of(data) == [
        RowProblem(
            "in/ad.csv",
            1,
            "impressions",
            None,
            "a column `impressions` separated by ','; found 'date', 'platform', 'channel', "
            "'campaign', 'impresions', 'clicks', 'cost'; did you mean 'impresions'?",
        ),
        RowProblem(
            "in/ad.csv",
            1,
            "currency",
            None,
            "a column `currency` separated by ','; found 'date', 'platform', 'channel', "
            "'campaign', 'impresions', 'clicks', 'cost'",
        ),
    ]


def test_same_key_twice_in_one_file():
    data = csv_bytes(
        "2026-01-05,meta,social,x,10,1,2.50,EUR",
        "2026-01-06,meta,social,x,10,1,2.50,EUR",
        "2026-01-05,meta,social,x,99,9,9.99,EUR",
    )
    assert problems_of(data) == [
        RowProblem(
            "in/ad.csv",
            4,
            "date, platform, campaign",
            "2026-01-05, meta, x",
            "one row per key; this key is already on line 2",
        )
    ]


def test_broken_quoting_is_located():
    data = csv_bytes(
        "2026-01-05,meta,social,x,10,1,2.50,EUR", '2026-01-06,meta,"social"x,y,1,1,1,EUR'
    )
    (problem,) = problems_of(data)
    assert (problem.line, problem.field) == (3, None)
    assert problem.value == '2026-01-06,meta,"social"x,y,1,1,1,EUR'
    assert problem.expected.startswith("well-formed CSV")


def test_timestamps_need_an_offset_and_booleans_are_checked():
    header = (
        "order_id,ordered_at,customer_id,channel,revenue,cost_of_goods,currency,is_new_customer"
    )
    data = csv_bytes(
        "A1,2026-01-05 10:00:00+01:00,c1,Direct,10.00,4.00,EUR,true",
        "A2,2026-01-05 10:00:00,c2,Direct,10.00,4.00,EUR,false",
        "A3,2026-01-05T10:00:00Z,c3,Direct,10.00,,EUR,maybe",
        "A4,2026-01-05T10:00:00Z,c4,Direct,10.00,4.00,USD,0",
        header=header,
    )
    parsed = parse_file(data, "in/orders.csv", spec("orders"))
    assert [(p.line, p.field, p.value) for p in parsed.problems] == [
        (3, "ordered_at", "2026-01-05 10:00:00"),
        (4, "is_new_customer", "maybe"),
        (5, "currency", "USD"),  # orders are not converted: only EUR is allowed
    ]
    assert parsed.frame["ordered_at"][0] == pd.Timestamp("2026-01-05 09:00:00", tz="UTC")
    assert pd.isna(parsed.frame["cost_of_goods"][2])  # optional: empty is fine


# ---------------------------------------------------------------------------------------------
# Empty files load nothing and say so
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "note"),
    [
        (b"", "empty file (0 bytes)"),
        (b"\xef\xbb\xbf\r\n", "empty file (no header)"),
        (AD_HEADER.encode() + b"\r\n", "header only: no rows"),
        ((AD_HEADER + "\n\n;;;;;;;\n").replace(",", ";").encode(), "header only: no rows"),
    ],
    ids=["zero-bytes", "bom-only", "header-only", "header-and-blank-rows"],
)
def test_empty_csv_files_are_not_errors(data, note):
    parsed = parse_file(data, "in/ad.csv", spec("ad_spend"))
    assert (parsed.rows, parsed.problems, parsed.note) == (0, [], note)


def test_empty_files_in_a_folder_are_reported_not_failed(tmp_path):
    folder = tmp_path / "ad_spend"
    folder.mkdir()
    (folder / "a_empty.csv").write_bytes(b"")
    (folder / "b_header.csv").write_bytes(csv_bytes())
    no_rows = ", ".join(f"'' AS {column}" for column in AD_HEADER.split(","))
    (folder / "c_no_rows.parquet").write_bytes(parquet_bytes(tmp_path, f"SELECT {no_rows} LIMIT 0"))
    (folder / "d_empty.parquet").write_bytes(b"")  # the same (no) bytes as a_empty.csv
    batch = read_source(Landing(tmp_path), spec("ad_spend"), ZONE)
    assert batch.frame.empty
    assert [(f.status, f.rows, f.note) for f in batch.files] == [
        ("empty", 0, "empty file (0 bytes)"),
        ("empty", 0, "header only: no rows"),
        ("empty", 0, "no rows"),
        ("duplicate", 0, f"same bytes as {folder / 'a_empty.csv'}; not read again"),
    ]


# ---------------------------------------------------------------------------------------------
# Parquet and fsspec landing folders
# ---------------------------------------------------------------------------------------------


def parquet_bytes(tmp_path: Path, select: str) -> bytes:
    """A Parquet file written by DuckDB from ``select``."""
    path = tmp_path / f"{uuid.uuid4().hex}.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
    return path.read_bytes()


def test_parquet_native_types_and_row_numbers(tmp_path):
    data = parquet_bytes(
        tmp_path,
        "SELECT * FROM (VALUES "
        "('A1', TIMESTAMPTZ '2026-01-05 10:00:00+01', 'c1', 'Direct', 10.5::DOUBLE, 4::INT, "
        "'EUR', true), "
        "('A2', TIMESTAMPTZ '2026-01-06 23:30:00+00', 'c2', 'Email', 7.25::DOUBLE, NULL, "
        "'EUR', false)) "
        "AS t(order_id, ordered_at, customer_id, channel, revenue, cost_of_goods, currency, "
        "is_new_customer)",
    )
    parsed = parse_file(data, "in/orders.parquet", spec("orders"))
    assert parsed.problems == []
    assert parsed.format == "parquet"
    f = parsed.frame
    assert list(f["ordered_at"]) == [
        pd.Timestamp("2026-01-05 09:00:00", tz="UTC"),
        pd.Timestamp("2026-01-06 23:30:00", tz="UTC"),
    ]
    assert list(f["revenue"]) == [10.5, 7.25]
    assert f["cost_of_goods"][0] == 4.0 and pd.isna(f["cost_of_goods"][1])
    assert list(f["is_new_customer"]) == [True, False]
    assert list(f["_source_line"]) == [1, 2]  # Parquet rows are numbered from 1


def test_parquet_problems_use_the_same_rules(tmp_path):
    data = parquet_bytes(
        tmp_path,
        "SELECT DATE '2026-01-05' AS date, 'meta' AS platform, 'tv' AS channel, 'x' AS campaign, "
        "1.5::DOUBLE AS impressions, 1 AS clicks, 2.0 AS cost, 'EUR' AS currency",
    )
    assert [(p.line, p.field, p.value) for p in problems_of(data, path="in/ad.parquet")] == [
        (1, "channel", "tv"),
        (1, "impressions", "1.5"),
    ]
    not_parquet = parse_file(b"PAR1 not really", "in/ad.parquet", spec("ad_spend"))
    (problem,) = not_parquet.problems
    assert (problem.line, problem.field) == (None, None)
    assert problem.expected.startswith("a readable file in Parquet")


def test_memory_landing_lists_supported_files_only(tmp_path):
    root = f"memory://landing-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    base = root.removeprefix("memory://")
    fs.pipe(f"/{base}/ad_spend/a.csv", csv_bytes("2026-01-05,meta,social,x,10,1,2.50,EUR"))
    fs.pipe(
        f"/{base}/ad_spend/b.parquet",
        parquet_bytes(
            tmp_path,
            "SELECT DATE '2026-01-06' AS date, 'meta' AS platform, 'social' AS channel, "
            "'y' AS campaign, 5 AS impressions, 1 AS clicks, 1.25 AS cost, 'EUR' AS currency",
        ),
    )
    for ignored in ("c.csv.tmp", ".hidden.csv", "~$lock.csv", "notes.txt"):
        fs.pipe(f"/{base}/ad_spend/{ignored}", b"ignored")
    fs.pipe(f"/{base}/ad_spend/archive/old.csv", b"not read: sub-folders are not sources")

    landing = Landing(root)
    assert [f.path for f in landing.files("ad_spend")] == [
        f"{root}/ad_spend/a.csv",
        f"{root}/ad_spend/b.parquet",
    ]
    batch = read_source(landing, spec("ad_spend"), ZONE)
    assert list(batch.frame["campaign"]) == ["x", "y"]
    assert list(batch.frame["_source_file"]) == [
        f"{root}/ad_spend/a.csv",
        f"{root}/ad_spend/b.parquet",
    ]
    assert list(batch.frame["_source_line"]) == [2, 1]
    assert landing.files("no_such_folder") == []
    fs.rm(f"/{base}", recursive=True)


# ---------------------------------------------------------------------------------------------
# Several deliveries
# ---------------------------------------------------------------------------------------------


def test_latest_delivery_wins_per_key_and_copies_are_read_once(tmp_path):
    folder = tmp_path / "ad_spend"
    folder.mkdir()
    original = csv_bytes(
        "2026-01-05,meta,social,x,10,1,2.50,EUR", "2026-01-06,meta,social,x,20,2,5.00,EUR"
    )
    corrected = csv_bytes("2026-01-06,meta,social,x,20,2,6.00,EUR")
    (folder / "a.csv").write_bytes(original)
    (folder / "0_copy_of_a.csv").write_bytes(original)
    (folder / "b_fix.csv").write_bytes(corrected)
    os.utime(folder / "a.csv", (1_000, 1_000))
    os.utime(folder / "0_copy_of_a.csv", (3_000, 3_000))  # a later copy is still the old data
    os.utime(folder / "b_fix.csv", (2_000, 2_000))

    batch = read_source(Landing(tmp_path), spec("ad_spend"), ZONE)
    frame = batch.frame.sort_values("date")
    assert list(frame["cost"]) == [2.50, 6.00]
    assert list(frame["_source_file"]) == [str(folder / "a.csv"), str(folder / "b_fix.csv")]
    by_name = {Path(f.path).name: f for f in batch.files}
    assert (by_name["a.csv"].status, by_name["a.csv"].rows_superseded) == ("read", 1)
    assert by_name["0_copy_of_a.csv"].status == "duplicate"
    assert by_name["0_copy_of_a.csv"].duplicate_of == str(folder / "a.csv")
    assert by_name["b_fix.csv"].first_date == by_name["b_fix.csv"].last_date == D(2026, 1, 6)

    # The registry's first load time outranks modification times: content loaded before
    # is older than content never loaded, however the files were touched since.
    landing = Landing(tmp_path)
    files = landing.files("ad_spend")
    pairs = [(f, content_sha256(landing.read(f))) for f in files]
    fix_sha = content_sha256(corrected)
    order = delivery_order(pairs, {fix_sha: dt.datetime(2026, 1, 1, tzinfo=dt.UTC)})
    assert [Path(f.path).name for f, _ in order] == ["b_fix.csv", "a.csv", "0_copy_of_a.csv"]


# ---------------------------------------------------------------------------------------------
# Currency
# ---------------------------------------------------------------------------------------------


def test_currency_conversion_and_missing_rate():
    parsed = parse_file(
        csv_bytes(
            "2026-01-05,meta,social,x,10,1,100.00,USD",
            "2026-01-05,meta,social,y,10,1,50.00,EUR",
            "2026-01-06,meta,social,x,10,1,10.00,SEK",
        ),
        "in/ad.csv",
        spec("ad_spend"),
    )
    rates = pd.DataFrame(
        {"date": [D(2026, 1, 5), D(2026, 1, 6)], "currency": ["USD", "USD"], "rate": [0.9, 0.8]}
    )
    with pytest.raises(FileFormatError) as info:
        convert_currency(parsed.frame, spec("ad_spend"), rates, "EUR", ZONE)
    assert info.value.problems == [
        RowProblem(
            "in/ad.csv",
            4,
            "currency",
            "SEK",
            "an exchange rate SEK -> EUR for 2026-01-06 in the fx_rates source "
            "(none is loaded for that day)",
        )
    ]
    out = convert_currency(parsed.frame.iloc[:2], spec("ad_spend"), rates, "EUR", ZONE)
    assert list(out["cost"]) == [90.0, 50.0]
    assert list(out["original_cost"]) == [100.0, 50.0]
    assert list(out["original_currency"]) == ["USD", "EUR"]
    assert list(out["fx_rate"]) == [0.9, 1.0]
