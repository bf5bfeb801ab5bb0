"""Remove duplicated inline <script> blocks from the pages Jupyter Book 1 writes.

With Sphinx 7.4, an inline script that an extension adds after the builder started
(sphinx-thebe's ``const THEBE_JS_URL = ...``, sphinx-togglebutton's selector) is emitted
twice: once with ``filename=None`` and once, from the registry, with ``filename=''``,
which Sphinx does not recognise as the same asset. A second ``const`` declaration is a
JavaScript SyntaxError on every page. This extension keeps the first copy of each
script; it changes nothing else.
"""

from __future__ import annotations


def _key(script):
    return (script.filename or "", tuple(sorted(script.attributes.items())))


def dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique  # the builder restores its own list after each page


def setup(app):
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
