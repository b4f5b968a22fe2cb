"""The dashboard's pages from templates: jinja2 with autoescaping, loaded from the package.

Pure: a template name and plain values in, HTML out. A page rendered with ``fragment=True`` is
only its ``<main>`` content, which the page's script fetches and swaps in on every change.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


@cache
def environment() -> jinja2.Environment:
    """The templates under ``nestlab/dashboard/templates`` (HTML autoescaped, undefined is an error)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("nestlab.dashboard", "templates"),
        autoescape=jinja2.select_autoescape(("html", "html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def page(template: str, /, *, fragment: bool = False, **values: Any) -> str:
    """Template ``template`` rendered with ``values`` (the whole page, or only its main part)."""
    values.setdefault("user", "")
    values.setdefault("lab", "")
    values.setdefault("version", 0)
    return environment().get_template(template).render(fragment=fragment, **values)
