"""Great Expectations is imported without the warehouse clients it is never handed
(quality.gx_import), and they stay importable for the warehouse connections."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from quality.gx_import import NOT_FOR_GX, hidden


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
