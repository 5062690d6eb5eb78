import jinja2
import pytest

from aml.core import pages


def test_render_fills_the_base_page_and_escapes_markup():
    html = pages.render("base.html", title="<script>x</script>")
    assert "<!doctype html>" in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<script>x</script>" not in html


def test_render_refuses_an_undefined_field():
    with pytest.raises(jinja2.UndefinedError):
        pages.render("base.html")


def test_render_string_escapes_by_default():
    assert pages.render_string("<p>{{ text }}</p>", text="a & b") == "<p>a &amp; b</p>"


def test_table_formats_floats_only_and_marks_missing_values():
    import pandas as pd

    frame = pd.DataFrame({"share": [0.123456, float("nan")], "examples": ["'eggs'", None]}, index=["a", "b"])
    frame.index.name = "check"
    assert pages.table(frame, lambda v: f"{v:.2f}", missing="-") == {
        "columns": ["share", "examples"],
        "index_name": "check",
        "rows": [("a", ["0.12", "'eggs'"]), ("b", ["-", "-"])],
    }


def test_the_frame_macro_escapes_every_cell():
    import pandas as pd

    table = pages.table(pd.DataFrame({"<b>": ["<script>x</script>"]}))
    html = pages.render_string('{% from "macros.html" import frame %}{{ frame(t) }}', t=table)
    assert "<th>&lt;b&gt;</th>" in html and "<td>&lt;script&gt;x&lt;/script&gt;</td>" in html
