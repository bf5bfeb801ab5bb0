"""Open every page of the built book in headless Chromium and check what a reader sees.

Usage: python tests/browser/check_site.py [_build/html] [--chromium /usr/bin/chromium]

The site is served from 127.0.0.1 by a small http.server in a thread; nothing is downloaded
(Playwright drives the system's Chromium, no `playwright install`) and every request to
another host is blocked, as it would fail offline anyway. A page fails the check if

- its HTML contains math but MathJax rendered no ``mjx-container``, left some math
  unrendered, or reported a TeX error (``mjx-merror``);
- an image did not load (``naturalWidth == 0``) or a same-origin request failed;
- it raised a JavaScript error or logged a console error (except failed requests to
  other hosts: there is no internet);
- it links to a page or file of the site that does not exist.

A chapter page (``book/NN_*.html``) also fails if

- it lacks a launch link to Binder or Colab for its notebook, or the download link of the
  notebook (``_sources/book/NN_*.ipynb``), or the downloaded notebook does not start with
  the install cell of tests/test_notebooks.py;
- a figure has no number or no caption, or an image or slider figure of a cell output is not
  in a figure;
- it has no folded check cells ("Show checks"), a check fold is open before a click, or
  clicking its summary does not show the code; the install cell shows on the page;
- a slider figure (mininn.plotting.slider_figure) does not show exactly one frame, or moving
  its slider with the keyboard does not show the next frame and its value.

Chapters listed in ``NOT_YET_CONVERTED`` (tests/test_notebooks.py) get the launch and
download checks; their missing captions, folds and install cell are reported, not failed.

Exits 1 with the list of problems, 0 with a summary line otherwise.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import re
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_notebooks import INSTALL_CELL, NOT_YET_CONVERTED  # noqa: E402  (tests/test_notebooks.py)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Generated pages that are not content (Sphinx's index and search pages, notebook
# execution reports) and folders of assets.
SKIP_FILES = {"genindex.html", "search.html", "py-modindex.html"}
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", "reports", ".doctrees", ".jupyter_cache"}
# Sphinx wraps inline and displayed math in elements of class "math"; so do myst-nb's
# text/latex outputs.
MATH_IN_HTML = re.compile(r'class="[^"]*\bmath\b[^"]*"')
# A page that only redirects (Jupyter Book's root index.html): check its target exists.
REDIRECT = re.compile(r'<meta\s+http-equiv="refresh"\s+content="\d+;\s*url=([^"]+)"', re.IGNORECASE)

# Resolves once MathJax 3 has typeset the page (startup.promise covers the first typeset).
WAIT_MATHJAX = """async () => {
    const t0 = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
        if (Date.now() - t0 > %d) return "MathJax did not load";
        await new Promise(r => setTimeout(r, 50));
    }
    await MathJax.startup.promise;
    return "";
}"""

INSPECT_PAGE = r"""async () => {
    const brokenImages = [];
    for (const img of Array.from(document.images)) {
        if (img.loading === "lazy") img.loading = "eager";
        if (!img.complete) {
            await new Promise(r => {
                img.addEventListener("load", r, {once: true});
                img.addEventListener("error", r, {once: true});
                setTimeout(r, 10000);
            });
        }
        if (img.naturalWidth === 0) brokenImages.push(img.getAttribute("src"));
    }
    const mathNodes = Array.from(document.querySelectorAll(".math"))
        .filter(el => !el.parentElement.closest(".math"));
    const unrendered = mathNodes
        .filter(el => !el.querySelector("mjx-container"))
        .map(el => el.textContent.trim().slice(0, 80));
    const texErrors = Array.from(document.querySelectorAll("mjx-merror"))
        .map(el => (el.getAttribute("data-mjx-error") || el.textContent).slice(0, 120));
    // MathJax's noundefined extension renders an unknown macro as red text, not an error.
    for (const el of document.querySelectorAll('mjx-assistive-mml mtext[mathcolor="red"]')) {
        if (el.textContent.startsWith("\\")) texErrors.push("undefined macro " + el.textContent);
    }
    const links = Array.from(document.querySelectorAll("a[href]"))
        .filter(a => !a.getAttribute("href").startsWith("#"))
        .map(a => a.href);
    return {
        brokenImages,
        mathNodes: mathNodes.length,
        containers: document.querySelectorAll("mjx-container").length,
        unrendered,
        texErrors,
        links,
    };
}"""


CHAPTER_PAGE = re.compile(r"book/(\d\d_[\w-]+)\.html")
CHECK_PROMPT = "Show checks"

INSPECT_CHAPTER = r"""() => {
    const article = document.querySelector("article") || document.body;
    const figures = Array.from(article.querySelectorAll("figure")).map(f => ({
        id: f.id || (f.querySelector("[id]") || {}).id || "",
        number: ((f.querySelector("figcaption .caption-number") || {}).textContent || "").trim(),
        caption: ((f.querySelector("figcaption .caption-text") || {}).textContent || "").trim(),
    }));
    const uncaptioned = Array.from(article.querySelectorAll(".cell_output img, .mininn-slider"))
        .filter(el => !el.closest("figure") && !el.parentElement.closest(".mininn-slider")).length;
    return {
        figures,
        uncaptioned,
        links: Array.from(document.querySelectorAll("a[href]")).map(a => a.href),
        installCellShown: article.textContent.includes("importlib.util.find_spec"),
    };
}"""

# The frames a slider figure shows, its slider's value and the value printed next to it.
SLIDER_STATE = r"""root => {
    const frames = Array.from(root.querySelectorAll("img"));
    const input = root.querySelector("input[type=range]");
    return {
        shown: frames.map((img, i) => getComputedStyle(img).display !== "none" ? i : -1).filter(i => i >= 0),
        loaded: frames.every(img => img.naturalWidth > 0),
        values: frames.map(img => img.dataset.value),
        value: input ? Number(input.value) : null,
        max: input ? Number(input.max) : null,
        printed: (root.querySelector("output") || {}).textContent,
    };
}"""


def check_launch_and_download(links: list[str], base: str, root: Path, stem: str) -> list[str]:
    problems = []
    notebook = f"book/{stem}.ipynb"
    # The notebook's path from the repository root, exactly (a "./book/..." path is not found there).
    binder = re.compile(r"https://mybinder\.org/v2/gh/[\w.-]+/[\w.-]+/[\w.-]+\?urlpath=(lab/)?tree/"
                        + re.escape(notebook))
    colab = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/"
                       + re.escape(notebook))
    if not any(binder.fullmatch(link) for link in links):
        problems.append(f"no Binder launch link that opens {notebook}")
    if not any(colab.fullmatch(link) for link in links):
        problems.append(f"no Colab launch link that opens {notebook}")
    download = base + "_sources/" + notebook
    if download not in links:
        problems.append(f"no download link to _sources/{notebook}")
    elif not (root / "_sources" / notebook).is_file():
        problems.append(f"the download link's _sources/{notebook} does not exist")
    return problems


def downloaded_install_cell(root: Path, stem: str) -> bool:
    """Whether the downloadable notebook starts with the install cell, tagged remove-cell."""
    path = root / "_sources" / "book" / f"{stem}.ipynb"
    if not path.is_file():
        return False
    first = json.loads(path.read_text(encoding="utf-8"))["cells"][0]
    source = "".join(first["source"]) if isinstance(first["source"], list) else first["source"]
    return source == INSTALL_CELL and "remove-cell" in first.get("metadata", {}).get("tags", [])


def open_check_folds(page) -> tuple[int, list[str]]:
    """Click every "Show checks" fold; return how many opened and the problems."""
    problems = []
    folds = page.locator(f"details.hide:has(summary:has-text('{CHECK_PROMPT}'))")
    count = folds.count()
    for i in range(count):
        fold = folds.nth(i)
        if fold.evaluate("d => d.open"):
            problems.append(f"check fold {i + 1} is open before a click")
            continue
        # A fold inside a closed dropdown (an exercise's solution): open the dropdown first.
        dropdowns = fold.locator("xpath=ancestor::div[contains(@class, 'dropdown')]")
        for j in range(dropdowns.count()):
            if not fold.locator("summary").is_visible():
                dropdowns.nth(j).locator(".admonition-title").first.click()
        fold.locator("summary").click()
        code = fold.locator("pre").first
        if not fold.evaluate("d => d.open") or not code.is_visible():
            problems.append(f"check fold {i + 1} does not show its code when clicked")
    return count, problems


def move_sliders(page) -> tuple[int, list[str]]:
    """Move every slider figure one step with the keyboard; return how many and the problems."""
    problems = []
    sliders = page.locator(".mininn-slider")
    count = sliders.count()
    for i in range(count):
        slider = sliders.nth(i)
        before = slider.evaluate(SLIDER_STATE)
        if before["value"] is None or len(before["shown"]) != 1 or before["shown"][0] != before["value"]:
            problems.append(f"slider figure {i + 1} does not show exactly the frame of its slider: {before}")
            continue
        if not before["loaded"]:
            problems.append(f"slider figure {i + 1}: a frame did not load")
        key = "ArrowRight" if before["value"] < before["max"] else "ArrowLeft"
        slider.locator("input[type=range]").press(key)
        after = slider.evaluate(SLIDER_STATE)
        expected = before["value"] + (1 if key == "ArrowRight" else -1)
        if after["shown"] != [expected] or after["value"] != expected:
            problems.append(f"slider figure {i + 1}: after {key} shows frames {after['shown']}, "
                            f"expected [{expected}]")
        elif after["printed"] != after["values"][expected]:
            problems.append(f"slider figure {i + 1}: shows the value {after['printed']!r} next to "
                            f"the frame of {after['values'][expected]!r}")
    return count, problems


def check_chapter(page, base: str, root: Path, stem: str) -> tuple[list[str], list[str], dict[str, int]]:
    """(problems, conventions not yet followed, counts) of one chapter page, already loaded."""
    info = page.evaluate(INSPECT_CHAPTER)
    problems = check_launch_and_download(info["links"], base, root, stem)
    pending = []
    for figure in info["figures"]:
        if not figure["number"] or not figure["caption"]:
            pending.append(f"figure {figure['id'] or '(no id)'} has no "
                           + ("number" if not figure["number"] else "caption"))
    if info["uncaptioned"]:
        pending.append(f"{info['uncaptioned']} image(s) of cell outputs not in a numbered, captioned figure")
    if not downloaded_install_cell(root, stem):
        pending.append(f"the downloadable {stem}.ipynb does not start with the install cell")
    if info["installCellShown"]:
        pending.append("the install cell shows on the page (tag it remove-cell)")
    folds, fold_problems = open_check_folds(page)
    pending.extend(fold_problems)
    if folds == 0:
        pending.append(f"no folded check cells ('{CHECK_PROMPT}')")
    sliders, slider_problems = move_sliders(page)
    problems.extend(slider_problems)
    counts = {"figures": len(info["figures"]), "folds": folds, "sliders": sliders}
    if stem in NOT_YET_CONVERTED:
        return problems, pending, counts
    return problems + pending, [], counts


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def serve(root: Path) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def content_pages(root: Path) -> list[Path]:
    pages = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if rel.name in SKIP_FILES or any(part in SKIP_DIRS for part in rel.parts[:-1]):
            continue
        pages.append(rel)
    return pages


def target_exists(root: Path, url_path: str) -> bool:
    """Whether a same-origin URL path names a file of the built site."""
    path = unquote(url_path).lstrip("/")
    target = root / path
    if url_path.endswith("/") or target.is_dir():
        target = target / "index.html"
    return target.is_file()


def check_page(page, base: str, root: Path, rel: Path, mathjax_timeout_ms: int) -> tuple[list[str], bool]:
    problems: list[str] = []
    errors: list[str] = []
    failed: dict[str, str] = {}  # same-origin URL -> first failure seen
    origin = urlsplit(base).netloc

    def on_console(msg):
        if msg.type != "error":
            return
        if msg.text.startswith("Failed to load resource"):
            # Same-origin failures are reported once per URL by the network handlers
            # below; other hosts are blocked on purpose (there is no internet).
            return
        url = (msg.location or {}).get("url", "")
        errors.append(f"console error: {msg.text} ({url})" if url else f"console error: {msg.text}")

    def on_pageerror(exc):
        errors.append(f"JavaScript error: {exc}")

    def on_response(response):
        if urlsplit(response.url).netloc == origin and response.status >= 400:
            failed.setdefault(response.url, f"HTTP {response.status}")

    def on_requestfailed(request):
        if urlsplit(request.url).netloc == origin:
            failed.setdefault(request.url, f"request failed ({request.failure})")

    page.on("console", on_console)
    page.on("pageerror", on_pageerror)
    page.on("response", on_response)
    page.on("requestfailed", on_requestfailed)

    html = (root / rel).read_text(encoding="utf-8", errors="replace")
    redirect = REDIRECT.search(html)
    if redirect:
        target = urlsplit(urljoin(base + rel.as_posix(), redirect.group(1)))
        if target.netloc == origin and not target_exists(root, target.path):
            problems.append(f"redirects to a missing page: {redirect.group(1)}")
        return problems, False
    has_math = bool(MATH_IN_HTML.search(html))
    try:
        page.goto(base + rel.as_posix(), wait_until="load", timeout=60_000)
        if has_math:
            failure = page.evaluate(WAIT_MATHJAX % mathjax_timeout_ms)
            if failure:
                problems.append(failure)
        info = page.evaluate(INSPECT_PAGE)
        page.wait_for_timeout(100)  # let late console messages arrive
    except PlaywrightError as exc:
        return [f"could not be checked: {exc}"], has_math

    if has_math:
        if info["containers"] == 0:
            problems.append("contains math but MathJax rendered no mjx-container")
        for text in info["unrendered"][:5]:
            problems.append(f"math not rendered: {text!r}")
        if len(info["unrendered"]) > 5:
            problems.append(f"... and {len(info['unrendered']) - 5} more math elements not rendered")
        for text in info["texErrors"][:5]:
            problems.append(f"TeX error: {text}")
    for src in info["brokenImages"]:
        problems.append(f"image did not load: {src}")
    for href in sorted(set(info["links"])):
        parts = urlsplit(href)
        if parts.scheme in ("http", "https") and parts.netloc == origin:
            if not target_exists(root, parts.path):
                problems.append(f"broken internal link: {parts.path}")
    problems.extend(dict.fromkeys(errors))  # unique, in order
    base_path = urlsplit(base).path
    for url, reason in failed.items():
        problems.append(f"{reason}: {urlsplit(url).path.removeprefix(base_path)}")
    return problems, has_math


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--mathjax-timeout", type=float, default=30.0, help="seconds")
    args = parser.parse_args(argv)

    root = args.root.resolve()
    if not (root / "index.html").is_file():
        print(f"browser check: {root}/index.html not found; build the book first (make book)")
        return 1
    pages = content_pages(root)
    if not pages:
        print(f"browser check: no pages found under {root}")
        return 1
    if not Path(args.chromium).exists():
        print(f"browser check: {args.chromium} not found (apt-get install chromium)")
        return 1

    start = time.perf_counter()
    server = serve(root)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    origin = urlsplit(base).netloc
    report: dict[str, list[str]] = {}
    not_converted: dict[str, list[str]] = {}  # chapters of NOT_YET_CONVERTED: reported only
    totals: dict[str, int] = {}
    n_math = 0
    blocked: set[str] = set()

    def route(route_, request):
        if urlsplit(request.url).netloc == origin or request.url.startswith(("data:", "blob:")):
            route_.continue_()
        else:
            blocked.add(urlsplit(request.url).netloc)
            route_.abort()

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            context = browser.new_context(service_workers="block")
            context.route("**/*", route)
            for rel in pages:
                page = context.new_page()
                problems, has_math = check_page(page, base, root, rel, int(args.mathjax_timeout * 1000))
                chapter = CHAPTER_PAGE.fullmatch(rel.as_posix())
                if chapter and not any(p.startswith("could not be checked") for p in problems):
                    try:
                        chapter_problems, pending, counts = check_chapter(page, base, root, chapter.group(1))
                    except PlaywrightError as exc:
                        chapter_problems, pending, counts = [f"chapter checks failed: {exc}"], [], {}
                    problems += chapter_problems
                    if pending:
                        not_converted[rel.as_posix()] = pending
                    for key, value in counts.items():
                        totals[key] = totals.get(key, 0) + value
                    totals["chapters"] = totals.get("chapters", 0) + 1
                page.close()
                n_math += has_math
                if problems:
                    report[rel.as_posix()] = problems
            browser.close()
    finally:
        server.shutdown()

    n_problems = sum(len(v) for v in report.values())
    for rel, problems in report.items():
        print(f"{rel}:")
        for problem in problems:
            print(f"  - {problem}")
    if not_converted:
        print("not yet converted (tests/test_notebooks.py NOT_YET_CONVERTED), reported only:")
        for rel, pending in not_converted.items():
            print(f"  {rel}: {'; '.join(pending)}")
    if blocked:
        print(f"(blocked requests to other hosts: {', '.join(sorted(blocked))})")
    seconds = time.perf_counter() - start
    chapters = (f"{totals.get('chapters', 0)} chapters ({totals.get('figures', 0)} figures, "
                f"{totals.get('folds', 0)} check folds clicked, {totals.get('sliders', 0)} sliders moved), ")
    print(f"browser check: {len(pages)} pages, {chapters}{n_math} with math, {n_problems} problems "
          f"({seconds:.1f} s)")
    return 1 if n_problems else 0


if __name__ == "__main__":
    sys.exit(main())
