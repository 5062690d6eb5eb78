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
