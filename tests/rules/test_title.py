"""Title templates: the subset of Jinja2 a rule may use, and the bound on its cost."""

from __future__ import annotations

import pytest

from app.rules.title import MAX_FILTER_TEXT, TitleTemplateError, compile_title


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        (
            "{{ labels.alertname }} on {{ labels.instance }}",
            {"labels": {"alertname": "A", "instance": "db-1"}},
            "A on db-1",
        ),
        (
            "{% if severity == 'critical' %}CRIT{% else %}warn{% endif %}: {{ summary | upper }}",
            {"severity": "critical", "summary": "disk"},
            "CRIT: DISK",
        ),
        ("{{ labels.job | default('no job') }}", {"labels": {}}, "no job"),
        ("{{ summary | truncate(8, true, '') }}", {"summary": "a very long summary"}, "a very l"),
        ("{{ labels.a | int * 2 }}", {"labels": {"a": "21"}}, "42"),
        ("{{ [labels.a, labels.b] | join('/') }}", {"labels": {"a": "x", "b": "y"}}, "x/y"),
        ("{{ 'yes' if labels.a is defined else 'no' }}", {"labels": {}}, "no"),
    ],
)
def test_allowed_templates_render(source: str, variables: dict[str, object], expected: str) -> None:
    assert compile_title(source).render(variables) == expected


@pytest.mark.parametrize(
    ("source", "words"),
    [
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "loops",
        ),
        ("{{ 9 ** 9 ** 9 }}", "the ** operator"),
        ("{{ '%999999999s' % 'x' }}", "the % operator"),
        ("{{ 'x'.ljust(999999999) }}", "calls"),
        ("{{ range(10) }}", "calls"),
        ("{% set x = 1 %}{{ x }}", "assignments"),
        ("{% macro m() %}x{% endmacro %}", "macros"),
        ("{% filter upper %}x{% endfilter %}", "filter blocks"),
        ("{{ 'x' | center(999999999) }}", "filter 'center'"),
        ("{{ 'x' | indent(999999999) }}", "filter 'indent'"),
        ("{{ 'x' | format }}", "filter 'format'"),
        ("{{ 'a' * 100000000 }}", "* accepts numbers only"),
        ("{{ 3 * [1] }}", "* accepts numbers only"),
        ("{{ labels.__class__.__mro__ }}", "attributes starting with _"),
        ("{{ summary ", "syntax error at line 1"),
        ("{{ summary is nothing_like_this }}", "syntax error at line 1"),
    ],
)
def test_costly_templates_rejected(source: str, words: str) -> None:
    with pytest.raises(TitleTemplateError) as error:
        compile_title(source)
    assert words in str(error.value)


def test_star_on_text_fails() -> None:
    template = compile_title("{{ summary * labels.n | int }}")
    with pytest.raises(TitleTemplateError, match="numbers only in titles"):
        template.render({"summary": "x", "labels": {"n": "1000000000"}})


def test_filter_output_is_capped() -> None:
    # Each replace would multiply the text by 50; capped, the chain stays at the cap.
    source = "{{ summary" + (" | replace('x', '" + "x" * 50 + "')") * 3 + " }}"
    rendered = compile_title(source).render({"summary": "x" * 100})
    assert len(rendered) == MAX_FILTER_TEXT
