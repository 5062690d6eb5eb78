"""HTML pages and reports rendered from templates in one place (``aml/core/templates/``).

Presentation apart from computation: a module that computes a report returns data; the page is a Jinja2 template
rendered here (Jinja2 is Flask's own template engine, so the service image already carries it), with autoescaping on,
so a message text or a file name shown in a page can never inject markup.
"""

from __future__ import annotations

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
