"""HTML pages and reports rendered from templates in one place (``aml/core/templates/``).

Presentation apart from computation: a module that computes a report returns data; the page is a Jinja2 template
rendered here (Jinja2 is Flask's own template engine, so the service image already carries it), with autoescaping on,
so a message text or a file name shown in a page can never inject markup.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render(template: str, **context: Any) -> str:
    """The template ``template`` (a file name under ``aml/core/templates/``) rendered with ``context``.

    Undefined names are errors (``jinja2.UndefinedError``), not empty strings: a page never silently drops a field.
    """
    return _environment().get_template(template).render(**context)


def render_string(source: str, **context: Any) -> str:
    """A template given as a string, rendered with autoescaping (for small fragments and tests)."""
    return _environment().from_string(source).render(**context)


def table(frame, floats: Callable[[float], str] = str, missing: str = "") -> dict[str, Any]:
    """A pandas frame as the report templates' ``frame`` macro (``macros.html``) takes it: its columns, its index's
    name and its rows as ``(index, cells)``, float cells formatted by ``floats`` (like pandas' ``float_format``),
    others by ``str``, NaN and ``None`` as ``missing``. The template escapes every cell, so a frame's text (a
    message, a file name) never becomes markup."""

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return missing
        return floats(value) if isinstance(value, float) else str(value)

    rows = zip(frame.index, frame.itertuples(index=False, name=None), strict=True)
    return {
        "columns": [str(c) for c in frame.columns],
        "index_name": "" if frame.index.name is None else str(frame.index.name),
        "rows": [(str(index), [cell(v) for v in row]) for index, row in rows],
    }
