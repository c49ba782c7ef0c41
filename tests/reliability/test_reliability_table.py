"""RELIABILITY.md stays true: at least 40 cases, numbered in order, each naming a real test."""

from __future__ import annotations

import re

from reliability_helpers import REPO

ROW = re.compile(r"^\| (\d+) \|.*\| `([^`]+)` \|$")


def rows() -> list[tuple[int, str]]:
    text = (REPO / "RELIABILITY.md").read_text(encoding="utf-8")
    return [(int(m[1]), m[2]) for line in text.splitlines() if (m := ROW.match(line))]


def test_at_least_forty_cases_numbered_in_order():
    numbers = [n for n, _ in rows()]
    assert len(numbers) >= 40
    assert numbers == list(range(1, len(numbers) + 1))


def test_every_row_names_a_test_that_exists():
    for number, reference in rows():
        path, _, test = reference.partition("::")
        name, _, param = test.partition("[")
        file = REPO / (path if path.startswith("tests/") else f"tests/reliability/{path}")
        assert file.is_file(), (number, reference)
        source = file.read_text(encoding="utf-8")
        assert re.search(rf"^def {re.escape(name)}\(", source, re.M), (number, reference)
        if param:
            assert param.rstrip("]") in source, (number, reference)
