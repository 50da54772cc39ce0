"""The book's Sphinx extension (``_config.yml``: ``extra_extensions: qmu_core.book.sphinx``).

Kept apart from the rest of the pipeline so that the Sphinx process loads nothing else.
"""

from __future__ import annotations

import json


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated ``<script>`` entries from a page.

    With Sphinx 7.4, sphinx-thebe 0.3.1 (loaded by Jupyter Book even when thebe is off)
    ends up with its inline ``const THEBE_JS_URL = ...`` script twice on every page, and the
    second copy throws ``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared``
    (one copy is registered with filename None, the other with ""; the same happens to
    sphinx-togglebutton's inline script).
    """
    files = context.get("script_files")
    if not files:
        return
    seen, kept = set(), []
    for js in files:
        attrs = getattr(js, "attributes", {}) or {}
        key = (getattr(js, "filename", str(js)) or "", json.dumps(attrs, sort_keys=True, default=str))
        if key in seen:
            continue
        seen.add(key)
        kept.append(js)
    files[:] = kept


def setup(app):
    app.connect("html-page-context", _dedupe_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
