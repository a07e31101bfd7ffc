"""Sphinx extension of the book's website: everything a page needs is served from the site itself.

- MathJax 3: copied from the `sphinx-mathjax-offline` package into `_static/mathjax/` (the config's
  `mathjax_path` points there), instead of Sphinx's default CDN address.
- The altair charts: `tools/build_html.py` turned each vega-lite output into a `<div class="vega-chart">`
  and its spec; here, pages holding one end with vega, vega-lite and vega-embed as one local script
  (bundled by vl-convert-python) and `annotated-bert-charts.js` (next to this file), which draws them.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

CHART_MARKER = 'class="vega-chart"'
VEGA_BUNDLE = "vega/vega-embed-bundle.js"
CHART_SCRIPT = "vega/annotated-bert-charts.js"
# tex-chtml.js is the one combined MathJax component the pages load; it fetches the rest (TeX
# extensions on demand, fonts, the menu's accessibility tools) from the folders next to it.
MATHJAX_ENTRY = "tex-chtml.js"


def mathjax_source() -> Path:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("sphinx-mathjax-offline is not installed: pip install -e '.[docs]'")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"


def copy_mathjax(target: Path) -> None:
    source = mathjax_source()

    def other_bundles(folder: str, names: list[str]) -> list[str]:
        if Path(folder) != source:
            return []
        return [name for name in names if name.endswith(".js") and name != MATHJAX_ENTRY]

    shutil.copytree(source, target, ignore=other_bundles, dirs_exist_ok=True)


def vega_bundle() -> str:
    """vega + vega-lite + vega-embed as one classic script that sets window.vegaEmbed."""
    import vl_convert

    # The chapters' charts are vega-lite v5 (altair 5): take the newest 5.x the bundler knows.
    v5 = [v for v in vl_convert.get_vegalite_versions() if v.startswith("5.")]
    newest = max(v5, key=lambda v: tuple(int(part) for part in v.split(".")))
    bundle = vl_convert.javascript_bundle(vl_version=newest)
    # Its top-level names (`_` among them) would clash with Sphinx's globals in the page's shared
    # scope: wrap it in a function. It exports through window.vegaEmbed, window.vega, window.vegaLite.
    return f"(function () {{\n{bundle}\n}})();\n"


def add_chart_scripts(app, pagename, templatename, context, doctree) -> None:
    """Pages with charts end with the two scripts that draw them (loaded after the charts' markup)."""
    body = context.get("body", "")
    if CHART_MARKER in body:
        pathto = context["pathto"]
        scripts = "".join(
            f'<script src="{pathto("_static/" + name, 1)}"></script>\n'
            for name in (VEGA_BUNDLE, CHART_SCRIPT)
        )
        context["body"] = body + scripts


def unique_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated <script>s. Sphinx 7.4 lists an inline script twice when an extension adds it after
    the builder starts (once with filename None, once with ''): sphinx-thebe's `const THEBE_JS_URL`
    then fails as a redeclaration, a console error on every page."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def write_assets(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    copy_mathjax(static / "mathjax")
    bundle = static / VEGA_BUNDLE
    bundle.parent.mkdir(parents=True, exist_ok=True)
    bundle.write_text(vega_bundle(), encoding="utf-8")
    # Kept out of book/_static/, whose scripts Jupyter Book would load on every page.
    shutil.copy2(Path(__file__).with_name("annotated-bert-charts.js"), static / CHART_SCRIPT)


def setup(app):
    app.connect("html-page-context", add_chart_scripts)
    app.connect("html-page-context", unique_scripts, priority=999)
    app.connect("build-finished", write_assets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
