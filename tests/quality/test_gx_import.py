"""Great Expectations is imported without the warehouse clients it is never handed, and
without running scipy.stats and altair until something uses them (quality.gx_import);
all stay importable and work."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from quality.gx_import import DEFERRED_FOR_GX, NOT_FOR_GX, deferred, hidden


def test_gx_validates_without_importing_warehouse_clients_which_import_afterwards() -> None:
    # A fresh interpreter: this one may have imported GX and the clients already.
    code = """
import json, sys
import pandas as pd
from quality import parse_suite, validate_frame
from quality.gx_import import NOT_FOR_GX

suite = parse_suite({"suite": "t", "expectations": [{"type": "not_null", "column": "a"}]}, "m")
report = validate_frame(pd.DataFrame({"a": [1, None]}), suite)
loaded = [name for name in NOT_FOR_GX if name in sys.modules]
import sqlalchemy_bigquery, snowflake.sqlalchemy, google.cloud.bigquery
print(json.dumps([report.outcomes[0].failing_rows, loaded, "great_expectations" in sys.modules]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    failing, loaded, gx = json.loads(done.stdout.splitlines()[-1])
    assert (failing, loaded, gx) == ([1], [], True)
    assert set(NOT_FOR_GX) == {"sqlalchemy_bigquery", "snowflake", "google.cloud"}


def test_hidden_only_in_the_block_only_in_its_thread_and_not_what_is_imported() -> None:
    sys.modules.pop("tabnanny", None)  # a standard module nothing here imports
    other: list[str] = []

    def import_elsewhere() -> None:
        import tabnanny

        other.append(tabnanny.__name__)
        sys.modules.pop("tabnanny", None)

    with hidden(("tabnanny", "json")):
        import json as still_there  # already imported: stays as it is

        with pytest.raises(ModuleNotFoundError, match="tabnanny is not imported"):
            import tabnanny
        thread = threading.Thread(target=import_elsewhere)
        thread.start()
        thread.join()
    import tabnanny

    assert still_there.dumps([1]) == "[1]"
    assert other == ["tabnanny"] and tabnanny.__name__ == "tabnanny"


def test_gx_validates_without_running_scipy_stats_or_altair_which_work_when_used() -> None:
    # A fresh interpreter. GX's import of them (the KL divergence expectation's) makes
    # modules whose code has not run; every expectation type GX validates for the suites
    # (volume and freshness are quality.checks' own) validates so.
    code = """
import json, sys
import pandas as pd
from quality import parse_suite, validate_frame

import datetime as dt
suite = parse_suite({"suite": "t", "expectations": [
    {"type": "columns_present", "columns": ["a", "b", "c"]},
    {"type": "not_null", "column": "a"},
    {"type": "between", "column": "b", "min": 0, "max": 10},
    {"type": "unique", "columns": ["a"]},
    {"type": "unique", "columns": ["a", "c"]},
    {"type": "in_set", "column": "c", "values": ["x", "y", "z"]},
    {"type": "column_type", "column": "c", "dtype": "string"},
    {"type": "row_count", "min": 1},
    {"type": "date_in_partition", "column": "d"},
]}, "m")
days = [dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 2, 1)]
frame = pd.DataFrame({"a": [1, 2, None], "b": [1, 20, 3], "c": ["x", "z", "y"], "d": days})
window = (dt.date(2026, 3, 1), dt.date(2026, 3, 2))
report = validate_frame(frame, suite, partition=window, time_zone="UTC")
ran = [n for n in ("scipy.stats._stats_py", "altair.vegalite") if n in sys.modules]
kinds = sorted({type(sys.modules[n]).__name__ for n in ("scipy.stats", "altair")})
import scipy.stats, altair
used = [float(scipy.stats.norm.cdf(0.0)), altair.Chart.__name__]
used.append("scipy.stats._stats_py" in sys.modules)
print(json.dumps([sorted({r for o in report.outcomes for r in o.failing_rows}), ran, kinds, used]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    failing, ran, kinds, used = json.loads(done.stdout.splitlines()[-1])
    assert failing == [1, 2]  # b = 20 out of range; a missing, d before the window
    assert ran == [] and kinds == ["_LazyModule"]
    assert used == [0.5, "Chart", True]
    assert set(DEFERRED_FOR_GX) == {"scipy.stats", "altair"}


def test_deferred_only_in_the_block_only_in_its_thread_and_not_what_is_imported() -> None:
    sys.modules.pop("tabnanny", None)
    sys.modules.pop("pyclbr", None)
    other: list[str] = []

    def import_elsewhere() -> None:
        import pyclbr

        other.append(type(pyclbr).__name__)
        sys.modules.pop("pyclbr", None)

    with deferred(("tabnanny", "pyclbr", "json")):
        import json as still_there
        import tabnanny

        assert type(tabnanny).__name__ == "_LazyModule"
        thread = threading.Thread(target=import_elsewhere)
        thread.start()
        thread.join()
    import pyclbr

    assert type(still_there).__name__ == "module" and still_there.dumps([1]) == "[1]"
    assert tabnanny.NannyNag.__name__ == "NannyNag"  # runs on first use
    assert type(tabnanny).__name__ == "module"
    assert other == ["module"] and type(pyclbr).__name__ == "module"
