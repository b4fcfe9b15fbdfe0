"""mkdocs hook: a Sphinx role left in a rendered page fails the strict build.

mkdocstrings renders Markdown, so ``:func:`name``` in a docstring shows up
literally on the API pages. Cross-references are written
``[`name`][sparsediff.module.name]`` instead (see docs/api/index.md). This
hook logs a warning for every page that still shows a raw role; ``mkdocs build
--strict`` turns the warning into a failed build.
"""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["ROLE", "on_page_content"]

log = logging.getLogger("mkdocs.plugins.no_raw_roles")

#: A Sphinx cross-reference role as it appears in rendered HTML or in source text.
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|data|mod|attr|exc|obj|const):(?:`|<code>)")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Warn (an error under ``--strict``) when the rendered page shows a raw role."""
    found = ROLE.findall(html)
    if found:
        log.warning(
            "%s shows %d raw Sphinx role(s) such as %r: write [`name`][target] instead",
            page.file.src_path,
            len(found),
            found[0],
        )
    return html
