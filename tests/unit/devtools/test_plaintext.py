"""The Markdown-to-plain-text rendering behind the course's text deliverables (``fraud_detection.txt``)."""

import pytest

from aml.devtools import plaintext

PAGE = """# Use-case design: a title

A paragraph with **bold**, *emphasis*, `code`, a {py:func}`aml.core.metrics.choose_threshold` role, an
[external link](https://example.org/data) and an [internal one](howto.md#add-a-dataset).

## Problem framing

| | guiding question | for this use case |
| --- | --- | --- |
| **Current state** | How is it solved today? | By hand. |
| **Desired state** | What should change? | Automatically. |

| choice | for this use case |
| --- | --- |
| **data** | A CSV file. |

- first item
- second item

1. one
2. two

```{toctree}
:hidden:

use-case-spam
```

```
code stays
```
"""


@pytest.fixture(scope="module")
def text():
    return plaintext.render(PAGE)


def test_headings_are_underlined(text):
    assert text.startswith("Use-case design: a title\n========================\n\n")
    assert "\nProblem framing\n---------------\n" in text


def test_inline_markup_is_dropped_and_external_links_keep_their_address(text):
    paragraph = text.split("\n\n")[1].replace("\n", " ")
    assert paragraph == (
        "A paragraph with bold, emphasis, code, a aml.core.metrics.choose_threshold role, an external link "
        "(https://example.org/data) and an internal one."
    )


def test_a_table_becomes_labelled_entries_with_column_headings(text):
    assert "Current state\n    guiding question: How is it solved today?\n    for this use case: By hand.\n" in text
    assert "Desired state\n    guiding question: What should change?\n    for this use case: Automatically." in text
    # one text column: no heading prefix
    assert "data\n    A CSV file." in text


def test_lists_stay_together_and_directives_are_left_out(text):
    assert "- first item\n- second item" in text
    assert "1. one\n2. two" in text
    assert "toctree" not in text and "use-case-spam" not in text
    assert "    code stays" in text


def test_long_lines_are_wrapped():
    words = " ".join(["word"] * 60)
    out = plaintext.render(f"{words}\n\n| | |\n| --- | --- |\n| **label** | {words} |\n", width=40)
    assert max(len(line) for line in out.splitlines()) <= 40
    assert all(line.startswith("    ") for line in out.split("label\n")[1].splitlines())


def test_the_command_writes_checks_and_reports_drift(tmp_path, capsys):
    page, out = tmp_path / "page.md", tmp_path / "page.txt"
    page.write_text("# Title\n\nText.\n")
    assert plaintext.main([str(page), "-o", str(out)]) == 0
    assert out.read_text().endswith("Title\n=====\n\nText.\n")
    assert "edit the page, not this file" in out.read_text().splitlines()[0]
    assert plaintext.main([str(page), "-o", str(out), "--check"]) == 0
    page.write_text("# Title\n\nChanged.\n")
    assert plaintext.main([str(page), "-o", str(out), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert "Text." in out.read_text(), "--check never writes"
    with pytest.raises(SystemExit):
        plaintext.main([str(tmp_path / "missing.md")])
