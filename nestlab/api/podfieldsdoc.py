"""Print (or ``--write`` into docs/api.md) the pod-field table: ``python -m nestlab.api.podfieldsdoc``.

The table lives in :mod:`nestlab.api.kinds.podfields`; this entry point sits outside the kinds
package because that package imports the table itself (``python -m`` of a module already imported
would run it twice). tests/unit/api/test_podfields.py checks that docs/api.md holds this output, so
whoever flips a row runs this with ``--write`` in the same change.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nestlab.api.kinds import podfields
from nestlab.errors import UsageError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BEGIN, END = "<!-- podfields:begin -->\n", "<!-- podfields:end -->"


def with_table(text: str, table: str) -> str:
    """``text`` (docs/api.md) with the section between the markers replaced by ``table``."""
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise UsageError(f"docs/api.md has no {BEGIN.strip()} ... {END} section for the pod-field table")
    return head + BEGIN + table + END + tail


def main(argv: list[str]) -> None:
    if argv == ["--write"]:
        DOCS.write_text(with_table(DOCS.read_text(), podfields.markdown()))
    elif not argv:
        print(podfields.markdown(), end="")
    else:
        raise SystemExit("usage: python -m nestlab.api.podfieldsdoc [--write]")


if __name__ == "__main__":
    main(sys.argv[1:])
