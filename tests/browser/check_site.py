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

Exits 1 with the list of problems, 0 with a summary line otherwise.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

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
    if blocked:
        print(f"(blocked requests to other hosts: {', '.join(sorted(blocked))})")
    seconds = time.perf_counter() - start
    print(f"browser check: {len(pages)} pages, {n_math} with math, {n_problems} problems ({seconds:.1f} s)")
    return 1 if n_problems else 0


if __name__ == "__main__":
    sys.exit(main())
