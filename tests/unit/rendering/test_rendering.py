"""``mailer.rendering``: the sandbox, its bounds, autoescaping of html only, and the cache of
compiled versions."""

import time

import pytest

from mailer.rendering import MAX_RANGE, Renderer, RenderError

VARIABLES = {"name": "<b>Ann</b>", "items": ["a", "b"]}


def render(html, variables=VARIABLES, max_bytes=1024 * 1024, renderer=None):
    """``html`` rendered as a version's html field (subject "s")."""
    renderer = renderer or Renderer()
    return renderer.render((1, 1), {"subject": "s", "html": html}, variables, max_bytes).html


def refused(html, **options):
    """The RenderError of ``html``, which must come within a second."""
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        render(html, **options)
    assert time.monotonic() - started < 1
    return caught.value


@pytest.mark.parametrize(
    "html",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ namespace.__init__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ items.append(1) }}",
    ],
)
def test_no_python_insides(html):
    error = refused(html)
    assert error.field == "html"


@pytest.mark.parametrize(
    "html",
    [
        "{% for i in range(10**9) %}x{% endfor %}",
        f"{{% for i in range({MAX_RANGE + 1}) %}}{{% endfor %}}",
        "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}",
        "{{ 'x' * 10**9 }}",
        "{{ [1] * 10**9 }}",
        "{{ 2 ** 100000000 }}",
        "{{ '%1000000000d' % 1 }}",
        "{{ '{:>1000000000}'.format(1) }}",
        "{{ 'x'|center(10**9) }}",
        "{{ 'x'.ljust(10**9) }}",
        "{{ ('x' * 1000)|replace('x', 'y' * 100000) }}",
        "{{ ('x' * 100000).join(range(10000)|map('string')) }}",
        "{% macro f(s, n) %}{{ f(s ~ s, n - 1) if n else s }}{% endmacro %}{{ f('ab', 40) }}",
        "{% set ns = namespace(x='a') %}{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}"
        "{% endfor %}",
        "{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}",
        "{{ lipsum(10**6) }}",
    ],
)
def test_bounded(html):
    refused(html)


def test_output_is_bounded_by_max_bytes():
    assert len(render("{% for i in range(100) %}é{% endfor %}", max_bytes=201)) == 100
    error = refused("{% for i in range(101) %}é{% endfor %}", max_bytes=201)
    assert "201 bytes" in error.message


def test_a_missing_variable_is_named():
    error = refused("Hi {{ first_name }}")
    assert (error.field, error.message) == (
        "variables.first_name",
        "Used by the template, not given",
    )
    assert render("{{ first_name is defined }}") == "False"


def test_html_is_escaped_subject_and_text_are_not():
    rendered = Renderer().render(
        (1, 1), {"subject": "{{ name }}", "text": "{{ name }}", "html": "{{ name }}"}, VARIABLES
    )
    assert rendered.subject == rendered.text == "<b>Ann</b>"
    assert rendered.html == "&lt;b&gt;Ann&lt;/b&gt;"


def test_compile_errors_name_field_and_line():
    errors = Renderer().compile_errors({"subject": "ok", "text": "a\n{% if %}", "html": "{{"})
    assert [error["field"] for error in errors] == ["text", "html"]
    assert errors[0]["message"].startswith("line 2: ")


def test_compiled_versions_are_cached_per_version_and_bounded():
    renderer = Renderer(cache_size=2)
    first = renderer.compiled((1, 1), {"subject": "a"})
    assert renderer.compiled((1, 1), {"subject": "ignored: a version never changes"}) is first
    renderer.compiled((1, 2), {"subject": "b"})
    renderer.compiled((2, 1), {"subject": "c"})
    assert list(renderer._compiled) == [(1, 2), (2, 1)]
