"""The fault table: each fault test adds `fault → expected → observed`; the session writes var/faults.md.

docs/faults.md is a copy of that file from a run, committed with the command that produced it.
"""

from __future__ import annotations

from pathlib import Path

ROWS: list[tuple[str, str, str]] = []
TABLE = Path(__file__).resolve().parents[2] / "var" / "faults.md"


def record_fault(fault: str, expected: str, observed: str) -> None:
    ROWS.append((fault, expected, observed))


def write_table() -> Path | None:
    if not ROWS:
        return None
    lines = ["| Fault | Expected | Observed |", "|---|---|---|"]
    lines += [f"| {f} | {e} | {o} |" for f, e, o in ROWS]
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text("\n".join(lines) + "\n")
    return TABLE
