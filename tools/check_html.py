"""Open the built website in headless Chromium with the network off and check that every page renders.

    python tools/check_html.py                      # checks _build/html (build it first: make html)
    python tools/check_html.py --screenshot 06_bert --chromium /usr/bin/chromium

Every page (the front page and each chapters/NN_topic.html) is opened from disk (file://). A request for
anything that is not a local file is blocked and fails the check, naming the address. Each page must:
load without console errors or failed local requests; have MathJax typeset every piece of math (no math
left as TeX, no MathJax errors); draw every altair chart (an SVG or canvas inside each chart, as many
charts as the chapter's notebook has vega-lite outputs); load every image; show highlighted code, the
page's table of contents, links to the previous/next page, and working links to the chapter's .ipynb and
.py; and no code cell's input may scroll sideways in this 1280-px window (every chapter code line fits
its column: book/_static/annotated-bert.css). The front page must link every chapter. Screenshots of one
chapter go to _build/screenshots/.

Drives the system's chromium through playwright (no browser download): apt-get install chromium.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
# Tags and attributes that make a browser fetch something as a page loads.
FETCHING_ATTRIBUTE = re.compile(
    r"<(?:script|img|iframe|source|audio|video|embed)\b[^>]*\bsrc\s*=\s*[\"']?(https?:)?//",
    re.IGNORECASE,
)
FETCHING_LINK = re.compile(r"<link\b[^>]*>", re.IGNORECASE)
CSS_REMOTE = re.compile(r"(?:url\(\s*[\"']?|@import\s+[\"']?)(?:https?:)?//", re.IGNORECASE)

PAGE_METRICS = """
() => {
  const visible = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const math = Array.from(document.querySelectorAll(".math"));
  const charts = Array.from(document.querySelectorAll("div.vega-chart"));
  const images = Array.from(document.querySelectorAll("img"));
  const link = (selector) => { const a = document.querySelector(selector); return a ? a.href : null; };
  const code = Array.from(document.querySelectorAll("div.cell_input pre"));
  const longest = (text) => text.split("\\n").reduce((a, b) => (b.length > a.length ? b : a), "");
  return {
    title: document.title,
    math: math.length,
    math_typeset: math.filter((e) => e.querySelector("mjx-container")).length,
    math_errors: document.querySelectorAll("mjx-merror").length,
    mjx_containers: document.querySelectorAll("mjx-container").length,
    charts: charts.length,
    charts_drawn: charts.filter((e) => Array.from(e.querySelectorAll("svg, canvas")).some(visible)).length,
    images: images.length,
    images_loaded: images.filter((e) => e.complete && e.naturalWidth > 0).length,
    broken_images: images.filter((e) => !(e.complete && e.naturalWidth > 0)).map((e) => e.src),
    highlighted_code: document.querySelectorAll("div.highlight pre span").length,
    code_blocks: code.length,
    code_scrolling: code.filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => ({
      overflow: e.scrollWidth - e.clientWidth, font_size: getComputedStyle(e).fontSize, line: longest(e.textContent),
    })),
    page_toc_links: document.querySelectorAll("nav.bd-toc-nav a, .bd-toc a.nav-link").length,
    prev_next_links: document.querySelectorAll(".prev-next-area a").length,
    notebook_link: link("a.run-notebook"),
    source_link: link("a.run-source"),
    chapter_links: Array.from(document.querySelectorAll("article a[href]")).map((a) => a.href),
  };
}
"""

# Lazy images below the fold would never load in a headless window: load them all, then wait for them.
WAIT_FOR_IMAGES = """
() => Promise.all(Array.from(document.images).map((image) => {
  image.loading = "eager";
  return image.complete ? null : new Promise((done) => { image.onload = image.onerror = done; });
}))
"""

WAIT_FOR_RENDERING = """
async () => {
  if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
    await window.MathJax.startup.promise;
  }
  if (window.annotatedBertCharts) { await window.annotatedBertCharts; }
  await document.fonts.ready;
}
"""


@dataclass
class PageResult:
    name: str
    metrics: dict = field(default_factory=dict)
    console_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def expected_outputs(stem: str) -> tuple[int, int] | None:
    """(altair charts, images) among the outputs of chapters/<stem>.ipynb."""
    notebook = ROOT / "chapters" / f"{stem}.ipynb"
    if not notebook.exists():
        return None
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    outputs = [output.get("data", {}) for cell in cells for output in cell.get("outputs", [])]
    charts = sum(any("vegalite" in key for key in data) for data in outputs)
    images = sum(
        any(key.startswith("image/") for key in data) and not any("vegalite" in key for key in data)
        for data in outputs
    )
    return charts, images


def local_file(url: str | None) -> Path | None:
    if not url or not url.startswith("file:"):
        return None
    return Path(unquote(urlparse(url).path))


def static_scan(site: Path) -> list[str]:
    """Markup in the built files that would fetch from the internet as a page loads."""
    problems = []
    for path in sorted(site.rglob("*.html")):
        text = path.read_text(encoding="utf-8", errors="replace")
        where = path.relative_to(site)
        for match in FETCHING_ATTRIBUTE.finditer(text):
            tag = text[match.start() : text.find(">", match.start()) + 1]
            problems.append(f"{where}: loads from the internet: {tag[:160]}")
        for tag in FETCHING_LINK.findall(text):
            if re.search(r"\bhref\s*=\s*[\"']?(https?:)?//", tag) and re.search(
                r"\brel\s*=\s*[\"']?[^\"'>]*(stylesheet|preload|modulepreload|icon|prefetch|preconnect)",
                tag,
                re.IGNORECASE,
            ):
                problems.append(f"{where}: loads from the internet: {tag[:120]}")
    for path in sorted(site.rglob("*.css")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in CSS_REMOTE.finditer(text):
            start = max(match.start() - 40, 0)
            problems.append(f"{path.relative_to(site)}: {text[start:match.end() + 40]!r}")
    return problems


def check_page(context, site: Path, page: Path) -> PageResult:
    stem = page.stem
    result = PageResult(name=str(page.relative_to(site)))
    browser_page = context.new_page()
    browser_page.on(
        "console", lambda m: m.type == "error" and result.console_errors.append(m.text[:300])
    )
    browser_page.on("pageerror", lambda e: result.console_errors.append(f"uncaught: {e}"[:300]))

    def on_failed(request):
        # Internet addresses are blocked on purpose, and reported as such by main().
        if request.url.startswith("file:"):
            result.failed.append(f"{request.url[:160]} ({request.failure})")

    browser_page.on("requestfailed", on_failed)
    browser_page.goto(page.as_uri(), wait_until="load", timeout=90_000)
    browser_page.evaluate(WAIT_FOR_RENDERING)
    browser_page.evaluate(WAIT_FOR_IMAGES)
    metrics = browser_page.evaluate(PAGE_METRICS)
    result.metrics = metrics
    browser_page.close()

    problems = result.problems
    if result.console_errors:
        problems.append(f"{len(result.console_errors)} console errors: {result.console_errors[:3]}")
    if result.failed:
        problems.append(f"{len(result.failed)} local requests failed: {result.failed[:5]}")
    if metrics["math_typeset"] != metrics["math"] or metrics["math_errors"]:
        problems.append(
            f"math: {metrics['math_typeset']} of {metrics['math']} typeset, "
            f"{metrics['math_errors']} MathJax errors"
        )
    if metrics["images_loaded"] != metrics["images"]:
        problems.append(f"images not loaded: {metrics['broken_images'][:5]}")
    if metrics["charts_drawn"] != metrics["charts"]:
        problems.append(f"altair charts: {metrics['charts_drawn']} of {metrics['charts']} drew")
    for block in metrics["code_scrolling"]:
        line = block["line"]
        problems.append(
            f"a code cell scrolls sideways ({block['overflow']} px too wide at {block['font_size']}): its longest "
            f"line, {len(line)} characters: {line[:100]!r}{'...' if len(line) > 100 else ''}"
        )

    if page.parent.name == "chapters":
        expected = expected_outputs(stem)
        if expected is not None:
            charts, images = expected
            if metrics["charts"] != charts:
                problems.append(
                    f"{charts} vega-lite outputs in chapters/{stem}.ipynb, {metrics['charts']} charts on page"
                )
            if metrics["images"] < images:
                problems.append(
                    f"{images} image outputs in chapters/{stem}.ipynb, {metrics['images']} images on the page"
                )
        if not metrics["highlighted_code"]:
            problems.append("no syntax-highlighted code")
        if not metrics["page_toc_links"]:
            problems.append("no table of contents for the page")
        if not metrics["prev_next_links"]:
            problems.append("no links to the previous/next page")
        for key, suffix in (("notebook_link", ".ipynb"), ("source_link", ".py")):
            target = local_file(metrics[key])
            if target is None or target.name != f"{stem}{suffix}" or not target.is_file():
                problems.append(f"no working link to {stem}{suffix} (found {metrics[key]})")
    return result


def check_front_page(metrics: dict, chapter_pages: list[Path]) -> list[str]:
    linked = {local_file(url).name for url in metrics["chapter_links"] if local_file(url)}
    return [f"the front page does not link {p.name}" for p in chapter_pages if p.name not in linked]


def screenshots(context, page: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    browser_page = context.new_page()
    browser_page.goto(page.as_uri(), wait_until="load", timeout=90_000)
    browser_page.evaluate(WAIT_FOR_RENDERING)
    written = [out / f"{page.stem}.png"]
    browser_page.screenshot(path=written[-1])
    for selector, suffix in (("div.vega-chart", "chart"), ("div.math", "math")):
        element = browser_page.query_selector(selector)
        if element is not None:
            element.scroll_into_view_if_needed()
            browser_page.wait_for_timeout(200)
            written.append(out / f"{page.stem}_{suffix}.png")
            element.screenshot(path=written[-1])
    browser_page.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--screenshot", default="06_bert", help="the chapter to photograph ('' for none)")
    parser.add_argument("--screenshots-dir", type=Path, default=ROOT / "_build" / "screenshots")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    site = args.site.resolve()
    if not (site / "index.html").is_file():
        print(f"no {site}/index.html: run `make html` first", file=sys.stderr)
        return 1
    chapter_pages = sorted([*(site / "chapters").glob("[0-9][0-9]_*.html"), *(site / "chapters").glob("A[0-9]_*.html")])
    present = sorted(p.stem for pattern in ("[0-9][0-9]_*.ipynb", "A[0-9]_*.ipynb")
                     for p in (ROOT / "chapters").glob(pattern))
    problems = [f"chapters/{stem}.ipynb has no page: rebuild with `make html`"
                for stem in present if not (site / "chapters" / f"{stem}.html").exists()]
    problems += static_scan(site)

    start = time.perf_counter()
    results: list[PageResult] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
        blocked_now: list[str] = []

        def route(route_request):
            url = route_request.request.url
            if url.startswith(LOCAL_SCHEMES):
                route_request.continue_()
            else:
                blocked_now.append(url)
                route_request.abort("internetdisconnected")

        context.route("**/*", route)
        context.set_offline(True)
        for page in [site / "index.html", *chapter_pages]:
            blocked_now.clear()
            result = check_page(context, site, page)
            result.blocked = sorted(set(blocked_now))
            if result.blocked:
                result.problems.append(
                    f"requested {len(result.blocked)} internet addresses: {result.blocked[:5]}"
                )
            if page.name == "index.html":
                result.problems += check_front_page(result.metrics, chapter_pages)
            results.append(result)
        shots = []
        if args.screenshot:
            target = site / "chapters" / f"{args.screenshot}.html"
            if target.exists():
                shots = screenshots(context, target, args.screenshots_dir)
            else:
                problems.append(f"no page {target.relative_to(site)} to photograph")
        browser.close()

    header = (f"{'page':38} {'math':>9} {'charts':>7} {'images':>7} {'code':>5} {'fit':>7} {'errors':>6} "
              f"{'blocked':>7}")
    print(header)
    for r in results:
        m = r.metrics
        print(
            f"{r.name:38} {m['math_typeset']:>4}/{m['math']:<4} {m['charts_drawn']:>3}/{m['charts']:<3} "
            f"{m['images_loaded']:>3}/{m['images']:<3} {m['highlighted_code']:>5} "
            f"{m['code_blocks'] - len(m['code_scrolling']):>3}/{m['code_blocks']:<3} "
            f"{len(r.console_errors):>6} {len(r.blocked):>7}"
        )
    keys = ("math_typeset", "math", "charts_drawn", "charts", "images_loaded", "images")
    totals = {key: sum(r.metrics[key] for r in results) for key in keys}
    code_blocks = sum(r.metrics["code_blocks"] for r in results)
    code_fitting = code_blocks - sum(len(r.metrics["code_scrolling"]) for r in results)
    print(
        f"{len(results)} pages in {time.perf_counter() - start:.0f} s, network off: "
        f"{totals['math_typeset']}/{totals['math']} math typeset, "
        f"{totals['charts_drawn']}/{totals['charts']} altair charts drawn, "
        f"{totals['images_loaded']}/{totals['images']} images loaded, "
        f"{code_fitting}/{code_blocks} code cells fit their width (no sideways scrolling), "
        f"{sum(len(r.blocked) for r in results)} internet requests blocked, "
        f"{sum(len(r.console_errors) for r in results)} console errors"
    )
    for shot in shots:
        print(f"screenshot: {shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot}")
    for r in results:
        problems += [f"{r.name}: {p}" for p in r.problems]
    if not totals["math"] or not totals["charts"]:
        problems.append("no math or no chart anywhere: the checks of typesetting and drawing saw nothing")
    if problems:
        print(f"\n{len(problems)} problems:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("the site renders offline: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
