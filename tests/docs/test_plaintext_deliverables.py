"""The course's plain-text deliverables at the repository's root are generated from the design pages of ``docs/``
(:mod:`aml.devtools.plaintext`) and must not drift from them: each committed file equals a fresh rendering."""

from pathlib import Path

import pytest

from aml.devtools import plaintext

ROOT = Path(__file__).resolve().parents[2]
#: deliverable at the root -> the page it is generated from
DELIVERABLES = {"fraud_detection.txt": "docs/use-case-fraud.md"}


@pytest.mark.parametrize("name", sorted(DELIVERABLES))
def test_the_text_file_is_the_page_rendered(name):
    source = DELIVERABLES[name]
    committed = (ROOT / name).read_text(encoding="utf-8")
    fresh = plaintext.render_file(ROOT / source, source)
    assert committed == fresh, (
        f"{name} has drifted from {source}: regenerate it with "
        f"`PYTHONPATH=shared python -m aml.devtools.plaintext {source} -o {name}`"
    )


def test_the_fraud_deliverable_has_the_three_parts_the_course_asks_for():
    text = (ROOT / "fraud_detection.txt").read_text(encoding="utf-8")
    for part in ("Problem framing", "Why ML", "Solution design"):
        assert f"\n{part}\n{'-' * len(part)}\n" in text
    for row in ("Current state", "Desired state", "Constraints", "Best non-ML alternative", "Feasibility", "reward"):
        assert f"\n{row}\n    guiding question: " in text
    assert "|" not in text and "**" not in text, "plain text, no Markdown left"
