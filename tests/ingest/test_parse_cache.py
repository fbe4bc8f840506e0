"""Parsed landing files kept between runs (ingest.files.parse_cache).

Real files in a temporary landing folder, read by ``read_source`` as the file assets read
them, once without the cache and then through it: a read served from the cache must be the
same read, and anything that changes a parse (the bytes, the declaration) must parse again.
"""

from __future__ import annotations

import os

import pandas as pd

from assets.settings import catalog
from ingest.files import read_source
from ingest.files.parse_cache import SUFFIX, ParseCache
from ingest.landing import Landing

ZONE = "Europe/Copenhagen"
HEADER = "date,platform,channel,campaign,impressions,clicks,cost,currency"
JANUARY = [
    "2026-01-05,google_ads,search,brand,1000,50,120.50,EUR",
    "2026-01-06,meta,social,spring,800,not a number,80.25,EUR",  # a bad value: a problem
]
FEBRUARY = ["2026-02-02,google_ads,search,brand,900,45,99.00,EUR"]


def _spec():
    return catalog().sources["ad_spend"]


def _landing(tmp_path, **files: list[str]) -> Landing:
    folder = tmp_path / "landing" / "ad_spend"
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        (folder / f"{name}.csv").write_text("\n".join([HEADER, *lines]) + "\n")
    return Landing(tmp_path / "landing")


def _read(landing: Landing, cache: ParseCache | None = None):
    return read_source(landing, _spec(), ZONE, strict=False, cache=cache)


def _same(a, b) -> None:
    pd.testing.assert_frame_equal(a.frame, b.frame)
    pd.testing.assert_frame_equal(a.rejected, b.rejected)
    assert a.files == b.files


def _entries(folder) -> list:
    return sorted((folder / "ad_spend").glob(f"*{SUFFIX}"))


def test_a_read_from_the_cache_is_the_read_without_it(tmp_path):
    landing = _landing(tmp_path, ad_2026_01=JANUARY, ad_2026_02=FEBRUARY)
    plain = _read(landing)
    assert len(plain.rejected) == 1  # the bad clicks value, quarantined either way

    first = ParseCache(tmp_path / "cache", "ad_spend", _spec())
    _same(_read(landing, first), plain)
    assert first.hits == 0 and len(_entries(tmp_path / "cache")) == 2

    second = ParseCache(tmp_path / "cache", "ad_spend", _spec())
    _same(_read(landing, second), plain)
    assert second.hits == 2


def test_a_changed_file_is_parsed_again_and_its_old_parse_dropped(tmp_path):
    landing = _landing(tmp_path, ad_2026_01=JANUARY, ad_2026_02=FEBRUARY)
    _read(landing, ParseCache(tmp_path / "cache", "ad_spend", _spec()))
    before = _entries(tmp_path / "cache")

    # The open month's file grows by a day, as it does every day.
    more = [*FEBRUARY, "2026-02-03,google_ads,search,brand,950,47,101.00,EUR"]
    landing = _landing(tmp_path, ad_2026_02=more)
    cache = ParseCache(tmp_path / "cache", "ad_spend", _spec())
    batch = _read(landing, cache)
    assert cache.hits == 1  # January, unchanged
    assert sorted(batch.frame["cost"].astype(float)) == [99.0, 101.0, 120.5]
    after = _entries(tmp_path / "cache")
    assert len(after) == 2 and len(set(after) - set(before)) == 1  # February's old parse gone
    _same(batch, _read(landing))


def test_a_changed_declaration_parses_everything_again(tmp_path):
    landing = _landing(tmp_path, ad_2026_01=JANUARY)
    _read(landing, ParseCache(tmp_path / "cache", "ad_spend", _spec()))
    spec = _spec()
    changed = spec.model_copy(update={"description": f"{spec.description or ''} (edited)"})
    cache = ParseCache(tmp_path / "cache", "ad_spend", changed)
    read_source(landing, changed, ZONE, strict=False, cache=cache)
    assert cache.hits == 0


def test_a_changed_value_rule_parses_again_and_applies_it(tmp_path):
    # A column's range and vocabulary are kept out of the declaration's dump (they change
    # no number, so no definition version), yet the parser applies them: a cached parse
    # under the old rule would load a value the new rule refuses.
    landing = _landing(tmp_path, ad_2026_01=JANUARY)
    _read(landing, ParseCache(tmp_path / "cache", "ad_spend", _spec()))
    spec = _spec()
    column = spec.columns["impressions"].model_copy(update={"max": 900.0})
    capped = spec.model_copy(update={"columns": {**spec.columns, "impressions": column}})
    assert capped.model_dump() == spec.model_dump()  # the dump alone cannot tell them apart
    cache = ParseCache(tmp_path / "cache", "ad_spend", capped)
    batch = read_source(landing, capped, ZONE, strict=False, cache=cache)
    assert cache.hits == 0
    plain = read_source(landing, capped, ZONE, strict=False)
    _same(batch, plain)
    assert len(plain.rejected) == 2  # 1000 impressions is above the new maximum


def test_the_same_bytes_under_a_new_name_carry_the_new_name(tmp_path):
    landing = _landing(tmp_path, ad_2026_01=JANUARY)
    _read(landing, ParseCache(tmp_path / "cache", "ad_spend", _spec()))
    folder = tmp_path / "landing" / "ad_spend"
    os.rename(folder / "ad_2026_01.csv", folder / "january.csv")
    cache = ParseCache(tmp_path / "cache", "ad_spend", _spec())
    batch = _read(landing, cache)
    assert cache.hits == 1
    assert set(batch.frame["_source_file"]) == {str(folder / "january.csv")}
    assert set(batch.rejected["_source_file"]) == {str(folder / "january.csv")}
    _same(batch, _read(landing))


def test_an_unreadable_entry_is_parsed_again_and_rewritten(tmp_path):
    landing = _landing(tmp_path, ad_2026_01=JANUARY)
    _read(landing, ParseCache(tmp_path / "cache", "ad_spend", _spec()))
    (entry,) = _entries(tmp_path / "cache")
    entry.write_bytes(b"not a pickle")
    cache = ParseCache(tmp_path / "cache", "ad_spend", _spec())
    _same(_read(landing, cache), _read(landing))
    assert cache.hits == 0
    again = ParseCache(tmp_path / "cache", "ad_spend", _spec())
    _read(landing, again)
    assert again.hits == 1


def test_a_folder_that_is_a_file_keeps_nothing_and_loads_as_before(tmp_path):
    """An unwritable cache folder (here: a file in its place, which stops root as well as
    anyone) leaves the read as it was without a cache."""
    landing = _landing(tmp_path, ad_2026_01=JANUARY)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    cache = ParseCache(blocked, "ad_spend", _spec())
    _same(_read(landing, cache), _read(landing))
    assert cache.hits == 0
