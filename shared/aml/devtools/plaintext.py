"""A design page of ``docs/`` as plain text: the course's deliverables are text files (``fraud_detection.txt`` at the
repository's root), and the site has the same design as a Markdown page. One source, no drift: the text file is
generated from the page (``python -m aml.devtools.plaintext docs/use-case-fraud.md -o fraud_detection.txt``) and a
test (``tests/docs/test_plaintext_deliverables.py``) fails when the committed file differs from a fresh rendering.

The Markdown is parsed by markdown-it-py (the parser under the site's MyST, so the page means the same thing to both);
only the plain-text rendering is written here, since no library renders Markdown tables as readable prose: a table of
the course's form (a label column, then text) becomes one entry per row, the label on its own line and each other cell
indented under it, prefixed by its column's heading. Inline markup is dropped (emphasis, code ticks, MyST roles such as
``{py:func}``), external links keep their address in brackets, links between the site's pages keep only their text,
and MyST directives (``{toctree}``) are left out.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path

WIDTH = 100
_ROLE = re.compile(r"\{[\w:.-]+\}$")


def _inline(token) -> str:
    """The plain text of an inline token's children."""
    parts: list[str] = []
    href: str | None = None
    for child in token.children or []:
        kind = child.type
        if kind == "text":
            parts.append(child.content)
        elif kind == "code_inline":
            if parts and _ROLE.search(parts[-1]):  # a MyST role: {py:func}`name` -> name
                parts[-1] = _ROLE.sub("", parts[-1])
            parts.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif kind == "link_open":
            href = child.attrs.get("href", "")
        elif kind == "link_close":
            if href and re.match(r"https?://", href):
                parts.append(f" ({href})")
            href = None
        elif kind == "image":
            parts.append(child.content or "")
    return re.sub(r"\s+", " ", "".join(parts)).strip()


def _wrap(text: str, indent: str = "", first: str | None = None, width: int = WIDTH) -> str:
    first = indent if first is None else first
    return textwrap.fill(
        text,
        width=width,
        initial_indent=first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _table(rows: list[list[str]], header: list[str], width: int = WIDTH) -> list[str]:
    """A table as entries: the first cell as a label, the others indented beneath it (with their column heading
    when the header names them and there is more than one)."""
    blocks = []
    named = [h for h in header[1:] if h]
    for row in rows:
        label, cells = row[0], row[1:]
        lines = [label] if label else []
        for head, cell in zip(header[1:], cells, strict=False):
            if not cell:
                continue
            prefix = f"{head}: " if head and len(named) > 1 else ""
            lines.append(_wrap(prefix + cell, indent="    ", width=width))
        blocks.append("\n".join(lines))
    return blocks


def render(markdown: str, width: int = WIDTH) -> str:
    """The Markdown page as plain text: headings underlined (``=`` for the title, ``-`` below it), paragraphs and
    list items wrapped at ``width`` characters, tables as indented entries (see the module's docstring)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    blocks: list[str] = []
    list_stack: list[list] = []  # per open list: [ordered, next number]
    item_prefix: str | None = None
    table_rows: list[list[str]] = []
    table_header: list[str] = []
    row: list[str] = []
    in_head = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        kind = token.type
        if kind == "heading_open":
            text = _inline(tokens[i + 1])
            level = int(token.tag[1])
            underline = {1: "=", 2: "-"}.get(level)
            blocks.append(text + ("\n" + underline * len(text) if underline else ""))
            i += 3
            continue
        if kind in ("bullet_list_open", "ordered_list_open"):
            list_stack.append([kind == "ordered_list_open", int(token.attrs.get("start", 1) or 1)])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_stack.pop()
        elif kind == "list_item_open":
            ordered, number = list_stack[-1]
            item_prefix = f"{number}. " if ordered else "- "
            list_stack[-1][1] += 1
        elif kind == "paragraph_open":
            text = _inline(tokens[i + 1])
            depth = max(0, len(list_stack) - 1) * 2
            if list_stack:
                indent = " " * (depth + 2)
                first = " " * depth + (item_prefix or "  ")
                blocks.append(_wrap(text, indent=indent, first=first, width=width))
                item_prefix = None  # a second paragraph of the same item is indented, without a marker
            else:
                blocks.append(_wrap(text, width=width))
            i += 3
            continue
        elif kind in ("fence", "code_block"):
            if not token.info.strip().startswith("{"):  # MyST directives ({toctree}, {eval-rst}) are site-only
                blocks.append(textwrap.indent(token.content.rstrip("\n"), "    "))
        elif kind == "thead_open":
            in_head, table_header, table_rows = True, [], []
        elif kind == "thead_close":
            in_head = False
        elif kind == "tr_open":
            row = []
        elif kind in ("th_open", "td_open"):
            row.append(_inline(tokens[i + 1]))
            i += 3
            continue
        elif kind == "tr_close":
            if in_head:
                table_header = row
            else:
                table_rows.append(row)
        elif kind == "table_close":
            blocks += _table(table_rows, table_header, width)
        elif kind == "hr":
            blocks.append("-" * 20)
        i += 1
    return _join(blocks)


def _join(blocks: list[str]) -> str:
    """Blocks separated by blank lines, except consecutive list items, which stay together."""
    out: list[str] = []
    for block in blocks:
        if out and re.match(r"\s*(- |\d+\. )", block) and re.match(r"\s*(- |\d+\. )", out[-1].splitlines()[0]):
            out[-1] += "\n" + block
        else:
            out.append(block)
    return "\n\n".join(out).rstrip() + "\n"


def header(source: str) -> str:
    """The first lines of a generated text file: where it comes from and how to regenerate it."""
    return (
        f"[Generated from {source}: edit the page, not this file, then regenerate it with\n"
        f" python -m aml.devtools.plaintext {source} -o <this file>]\n\n"
    )


def render_file(source: Path, name: str | None = None) -> str:
    """The generated text of the page ``source``: :func:`header` (naming it as ``name``, default its path) and
    :func:`render`."""
    return header(name or str(source)) + render(Path(source).read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    """``python -m aml.devtools.plaintext PAGE.md [-o OUT.txt] [--check]``: print or write the page as plain text;
    ``--check`` exits 1 (saying so) when ``OUT.txt`` differs from a fresh rendering."""
    parser = argparse.ArgumentParser(prog="python -m aml.devtools.plaintext", description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path, help="a Markdown page, e.g. docs/use-case-fraud.md")
    parser.add_argument("-o", "--output", type=Path, help="the text file to write (default: print)")
    parser.add_argument("--check", action="store_true", help="compare with --output instead of writing it")
    args = parser.parse_args(argv)
    if not args.page.is_file():
        parser.error(f"no such page: {args.page}")
    text = render_file(args.page, args.page.as_posix())
    if args.output is None:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
        if current != text:
            print(f"{args.output} is out of date with {args.page}: regenerate it with -o", file=sys.stderr)
            return 1
        return 0
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
