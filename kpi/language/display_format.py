"""The `format:` of a KPI: a small, spreadsheet-style number format, read the same way by
the terminal scorecard, the HTML report, the alerts and any BI tool that reads
``kpi_catalog.format`` / ``kpi_scorecard.display_format``.

    [prefix][+]digits[.decimals][%][suffix]

- ``digits``: ``0`` (no grouping) or ``#,##0`` (thousands separators); ``#``\\s are optional
  digits, at least one ``0`` is required.
- ``.decimals``: as many ``0`` as decimals shown (``0.00``); no optional (``#``) decimals.
- ``%``: the value is a ratio shown as a percentage (x 100).
- ``+``: the sign of a positive value is shown too (``+3.2%``); a negative value always has
  its ``-``, placed before the prefix (``-€1,234``).
- ``prefix`` / ``suffix``: literal text without digits, ``#``, ``,`` or ``.``: ``€``, ``x``,
  `` s``, `` EUR``.

Rounding is half away from zero on the decimal value (``0.125`` -> ``0.13`` with two
decimals), as spreadsheets do, not Python's half-to-even on the binary float; a value that
rounds to zero has no sign (``-0.001`` -> ``0.00``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

_SHAPE = re.compile(
    r"^(?P<prefix>[^0-9#,.+%]*)(?P<sign>\+?)(?P<digits>[#,]*0[0,]*)"
    r"(?:\.(?P<decimals>0+))?(?P<percent>%?)(?P<suffix>[^0-9#,.%]*)$"
)


class FormatError(ValueError):
    """A `format:` that this module cannot render."""


@dataclass(frozen=True)
class DisplayFormat:
    prefix: str
    signed: bool
    grouping: bool
    decimals: int
    percent: bool
    suffix: str

    def render(self, value: float | None) -> str:
        """``value`` in this format; ``-`` when it is missing (NULL, NaN, infinite)."""
        if value is None or not math.isfinite(value):
            return "-"
        scaled = Decimal(repr(float(value))) * (100 if self.percent else 1)
        rounded = scaled.quantize(Decimal(1).scaleb(-self.decimals), rounding=ROUND_HALF_UP)
        if rounded == 0:
            rounded = abs(rounded)  # no "-0.00"
        body = f"{abs(rounded):{',' if self.grouping else ''}.{self.decimals}f}"
        sign = "-" if rounded < 0 else ("+" if self.signed and rounded > 0 else "")
        return f"{sign}{self.prefix}{body}{'%' if self.percent else ''}{self.suffix}"


def parse_format(text: str) -> DisplayFormat:
    """The format ``text`` (see the module), or :class:`FormatError` saying what is wrong."""
    match = _SHAPE.match(text)
    if not match:
        raise FormatError(
            f"format {text!r} is not [prefix][+]digits[.decimals][%][suffix], e.g. "
            "'#,##0', '0.0%', '+0.0%', '€#,##0.00', '0.00x'"
        )
    digits = match["digits"]
    if not re.fullmatch(r"#*(,#*)*0*(,0*)*", digits) or digits.endswith(","):
        raise FormatError(
            f"format {text!r}: the digits {digits!r} must be optional '#' then required "
            "'0', with ',' only between digits (e.g. '#,##0')"
        )
    return DisplayFormat(
        prefix=match["prefix"],
        signed=bool(match["sign"]),
        grouping="," in digits,
        decimals=len(match["decimals"] or ""),
        percent=bool(match["percent"]),
        suffix=match["suffix"],
    )


def render(value: float | None, text: str) -> str:
    """``value`` in the format ``text``."""
    return parse_format(text).render(value)
