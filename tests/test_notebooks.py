"""The reading conventions of the chapters, checked on every ``book/*.ipynb`` (fast: no execution).

Writing a chapter (README.md, "Writing a chapter", is the short version):

1. **Install cell.** The first cell is :data:`INSTALL_CELL`, character for character, tagged
   ``remove-cell`` (the page does not show it; nbval still runs it). On Colab or in a
   notebook downloaded on its own it installs ``mininn`` from the repository (and myst-nb,
   for ``glue``); where both import, on Binder and in the repository, it does nothing.
2. **Imports.** The second cell holds the imports and the helpers of the chapter, tagged
   ``hide-input`` with the cell metadata ``"mystnb": {"code_prompt_show": "Show imports and
   helpers", "code_prompt_hide": "Hide imports and helpers"}`` (or tagged ``remove-input``).
   Floating-point settings are not set in a notebook: ``book/conftest.py`` and the Makefile
   set them for every run.
3. **Teaching code is visible.** A cell that computes what the text discusses carries no
   hiding tag and no ``assert`` or ``glue``.
4. **Checks are folded.** Every ``assert`` and every ``glue(...)`` goes into a *check cell*
   placed right after the computation it checks: tagged ``hide-input``, with the cell metadata
   :data:`CHECK_PROMPTS` (the page shows a closed "Show checks" box the reader can open).
   A check cell shows nothing: it prints nothing and glues with ``display=False``.
5. **Figures.** A cell that displays a figure (a matplotlib image, or a
   :func:`mininn.plotting.slider_figure`) displays exactly one and has the cell metadata
   ``"mystnb": {"figure": {"name": "fig-NN-what", "caption": "..."}}``, NN the chapter's
   number; the caption says what to see. The text refers to every figure by
   ``{numref}`fig-NN-what``` and never as "the figure above" or "the earlier figure".
   ``{glue:figure}`` is not used.
6. **Interactive figures.** A figure that depends on one parameter the reader would like to
   vary is a :func:`mininn.plotting.slider_figure`: PNG frames and an ``<input
   type="range">`` in the static page, no server, no internet. Its frames are data URIs,
   which ``tests/nbval_sanitize.cfg`` replaces before nbval compares the outputs, so the
   cell needs no nbval tag.
7. **nbval markers are tags**, never comments: ``nbval-ignore-output``, ``nbval-skip``,
   ``raises-exception`` (a ``# NBVAL_...`` comment is an error).
8. **Short answer.** The ``{admonition} Short answer`` at the top has at most
   :data:`MAX_SHORT_ANSWER_SENTENCES` sentences and :data:`MAX_SHORT_ANSWER_NUMBERS` numbers
   (counted by :func:`short_answer_counts`); the detail belongs in the body.
9. **Glue.** Every ``{glue:text}`name``` in the markdown is glued by a cell of the same
   notebook, so that no number is typed by hand and none is left dangling.
10. **Notation** follows ``book/notation.md``; jargon is defined or linked on first use
    (not checked here: read the chapter).

Chapters not yet converted are listed in :data:`NOT_YET_CONVERTED`; their test is an
expected failure (strict). Converting a chapter means removing it from the set; the test then
has to pass. ``tests/browser/check_site.py`` imports the same set.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from unittest import mock

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))

#: Chapters that do not follow the conventions yet; remove a chapter once it is converted.
NOT_YET_CONVERTED: set[str] = set()

#: The repository the install cell installs from (``repository`` in ``_config.yml``).
REPOSITORY_URL = "https://github.com/mininn-book/relu-second-order"
REPOSITORY_BRANCH = "main"

#: The first cell of every chapter (tag ``remove-cell``).
INSTALL_CELL = f"""\
# Colab, or a notebook downloaded on its own: install the book's package mininn (and myst-nb,
# for glue) from the repository when they are missing. On Binder and in the repository: nothing.
import importlib.util
import subprocess
import sys

_missing = [requirement for module, requirement in [
    ("mininn", "mininn @ {REPOSITORY_URL}/archive/refs/heads/{REPOSITORY_BRANCH}.zip"),
    ("myst_nb", "myst-nb>=1,<2"),
] if importlib.util.find_spec(module) is None]
if _missing:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *_missing], check=True)
    importlib.invalidate_caches()"""

#: Cell metadata of the imports cell when it is folded (tag ``hide-input``).
IMPORTS_PROMPTS = {"code_prompt_show": "Show imports and helpers",
                   "code_prompt_hide": "Hide imports and helpers"}
#: Cell metadata of a check cell (tag ``hide-input``): the label of its fold.
CHECK_PROMPTS = {"code_prompt_show": "Show checks", "code_prompt_hide": "Hide checks"}

MAX_SHORT_ANSWER_SENTENCES = 3
MAX_SHORT_ANSWER_NUMBERS = 3

NBVAL_COMMENT = re.compile(r"^\s*#\s*(NBVAL_|PYTEST_VALIDATE_)", re.MULTILINE)
# Infrastructure that belongs to book/conftest.py and the Makefile, not to a chapter.
FLOATING_POINT_PINNING = re.compile(r"OPENBLAS|NPY_DISABLE_CPU_FEATURES|threadpoolctl|MKL_NUM_THREADS")
FIGURE_NAME = re.compile(r"fig-(\d\d)-[a-z0-9]+(-[a-z0-9]+)*")
# A MyST role: {name}`target`, e.g. {glue:text}`n_params`, {numref}`fig-01-relu`.
ROLE = re.compile(r"\{(?P<role>[\w:.-]+)\}`(?P<target>[^`]*)`")
# Referring to a figure by position instead of by number.
FIGURE_BY_POSITION = re.compile(
    r"\b(?:the|this|that|these|those|earlier|previous|next|following|above|below|left|right)"
    r"\s+(?:\w+\s+)?figures?\b|\bfigures?\s+(?:above|below)\b",
    re.IGNORECASE,
)
SHORT_ANSWER = re.compile(r"^```+\{admonition\} Short answer\n(?P<body>.*?)^```+", re.MULTILINE | re.DOTALL)
INLINE_MATH = re.compile(r"\$[^$]+\$")
CODE_SPAN = re.compile(r"`[^`]*`")
# A number written in prose: digits not inside a word (float64, x86 are names, not numbers).
PROSE_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?(?!\w)")
ABBREVIATIONS = re.compile(r"\b(?:e\.g|i\.e|etc|cf|vs|approx)\.", re.IGNORECASE)
SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
# Outputs that are not shown on the page: glue's records.
HIDDEN_MIME_PREFIX = "application/papermill.record/"
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def mystnb(cell) -> dict:
    return dict(cell.metadata.get("mystnb", {}))


def markdown(nb) -> str:
    return "\n\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


def code_cells(nb):
    """(index in nb.cells, cell) of every code cell."""
    return [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]


def chapter_number(path: Path) -> str:
    return path.name[:2]


def is_check_cell(cell) -> bool:
    return "hide-input" in tags(cell) and all(mystnb(cell).get(k) == v for k, v in CHECK_PROMPTS.items())


def asserts_or_glues(source: str) -> bool:
    """Whether Python source contains an ``assert`` or a call of ``glue``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax (magics): fall back to the words
        return bool(re.search(r"^\s*assert\b|\bglue\(", source, re.MULTILINE))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "glue":
            return True
    return False


def visible_outputs(cell) -> list:
    """The outputs of a code cell that the page shows (glue's records are not shown)."""
    shown = []
    for output in cell.get("outputs", []):
        if output.output_type in ("display_data", "execute_result"):
            if any(not mime.startswith(HIDDEN_MIME_PREFIX) for mime in output.get("data", {})):
                shown.append(output)
        else:
            shown.append(output)
    return shown


def is_figure_output(output) -> bool:
    data = output.get("data", {})
    return any(mime in data for mime in IMAGE_MIME_TYPES) or "mininn-slider" in str(data.get("text/html", ""))


def glued_names(nb) -> set[str]:
    names = set()
    for _, cell in code_cells(nb):
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is not None:
                names.add(name)
    return names


def roles(text: str, prefix: str) -> list[str]:
    """Targets of the roles whose name starts with prefix; ``text <target>`` gives target."""
    targets = []
    for match in ROLE.finditer(text):
        if match["role"].startswith(prefix):
            target = match["target"]
            explicit = re.search(r"<([^<>]+)>\s*$", target)
            targets.append(explicit.group(1) if explicit else target)
    return targets


def short_answer_counts(text: str) -> tuple[int, int, int]:
    """(sentences, numbers, words) of a short answer's MyST text.

    Numbers: each glue role (it shows a computed number), each inline math span that contains
    a digit, and each number written in the prose (a digit group that is not part of a word,
    so ``float64`` is a name, not a number). Targets of other roles ({doc}, {numref}, {eq},
    {cite}...) and code spans are not counted. Sentences: each ``.``, ``!`` or ``?`` followed by
    white space or the end (after removing "e.g.", "i.e."... and math, code and roles), plus
    one for trailing text without a full stop. Words: white-space separated tokens.
    """
    words = len(text.split())
    numbers = sum(1 for match in ROLE.finditer(text) if match["role"].startswith("glue"))
    prose = ROLE.sub(" X ", text)
    numbers += sum(1 for span in INLINE_MATH.findall(prose) if re.search(r"\d", span))
    prose = CODE_SPAN.sub(" X ", INLINE_MATH.sub(" X ", prose))
    numbers += len(PROSE_NUMBER.findall(prose))
    prose = ABBREVIATIONS.sub("X", prose).strip()
    sentences = len(SENTENCE_END.findall(prose))
    if prose and not SENTENCE_END.search(prose[-1]):
        sentences += 1
    return sentences, numbers, words


def short_answer(nb) -> str | None:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = SHORT_ANSWER.search(cell.source)
            if match:
                return "\n".join(line for line in match["body"].splitlines() if not line.startswith(":"))
    return None


# --- one function per convention; each returns the problems it finds ----------------------


def install_cell_problems(nb) -> list[str]:
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "code" or first.source != INSTALL_CELL:
        return ["the first cell is not the install cell (tests/test_notebooks.py INSTALL_CELL)"]
    if "remove-cell" not in tags(first):
        return ["the install cell is not tagged remove-cell"]
    if visible_outputs(first):
        return ["the install cell has outputs (it must do nothing where mininn is installed)"]
    return []


def imports_cell_problems(nb) -> list[str]:
    cells = code_cells(nb)
    if len(cells) < 2:
        return ["no imports cell after the install cell"]
    cell = cells[1][1]
    if "remove-input" in tags(cell):
        return []
    if "hide-input" not in tags(cell) or any(mystnb(cell).get(k) != v for k, v in IMPORTS_PROMPTS.items()):
        return [f"the imports cell (cell {cells[1][0]}) is not folded: "
                f"tag hide-input, metadata {IMPORTS_PROMPTS}"]
    return []


def infrastructure_problems(nb) -> list[str]:
    problems = []
    for i, cell in code_cells(nb):
        if NBVAL_COMMENT.search(cell.source):
            problems.append(f"cell {i}: a # NBVAL_ comment; use a tag (nbval-ignore-output, nbval-skip, ...)")
        if FLOATING_POINT_PINNING.search(cell.source) and i > 0:
            problems.append(f"cell {i}: floating-point settings belong in book/conftest.py and the Makefile")
    return problems


def check_cell_problems(nb) -> list[str]:
    problems = []
    for i, cell in code_cells(nb)[1:]:
        if asserts_or_glues(cell.source) and not is_check_cell(cell):
            problems.append(f"cell {i}: asserts or glues but is not a check cell "
                            f"(tag hide-input, metadata {CHECK_PROMPTS})")
        if is_check_cell(cell) and visible_outputs(cell):
            problems.append(f"cell {i}: a check cell shows output; print in the teaching cell above it")
        if "hide-input" in tags(cell) and not is_check_cell(cell) and i != code_cells(nb)[1][0]:
            problems.append(f"cell {i}: teaching code is hidden (tag hide-input without the check prompts)")
    return problems


def figure_problems(nb, path: Path) -> list[str]:
    problems = []
    names = []
    for i, cell in code_cells(nb):
        figures = [output for output in visible_outputs(cell) if is_figure_output(output)]
        if not figures:
            continue
        if len(figures) > 1:
            problems.append(f"cell {i}: {len(figures)} figures in one cell; one figure per cell")
        options = mystnb(cell).get("figure", {})
        name, caption = options.get("name", ""), str(options.get("caption", "")).strip()
        match = FIGURE_NAME.fullmatch(name)
        if not match or match.group(1) != chapter_number(path):
            problems.append(f"cell {i}: a figure without metadata mystnb.figure.name "
                            f"'fig-{chapter_number(path)}-...' (got {name!r})")
        if not caption:
            problems.append(f"cell {i}: a figure without metadata mystnb.figure.caption")
        names.append(name)
    text = markdown(nb)
    referenced = set(roles(text, "numref"))
    for name in names:
        if name and name not in referenced:
            problems.append(f"figure {name} is never referenced with {{numref}}")
    for target in sorted(referenced):
        if target.startswith("fig-") and target not in names:
            problems.append(f"{{numref}}`{target}` names no figure of this chapter")
    for match in FIGURE_BY_POSITION.finditer(ROLE.sub(" ", text)):
        problems.append(f"refers to a figure by position ({match.group(0)!r}); use {{numref}}")
    if "{glue:figure}" in text:
        problems.append("{glue:figure} is used; give the cell a caption in its metadata instead")
    return problems


def short_answer_problems(nb) -> list[str]:
    text = short_answer(nb)
    if text is None:
        return ["no ```{admonition} Short answer"]
    sentences, numbers, _ = short_answer_counts(text)
    problems = []
    if sentences > MAX_SHORT_ANSWER_SENTENCES:
        problems.append(f"the short answer has {sentences} sentences (at most {MAX_SHORT_ANSWER_SENTENCES})")
    if numbers > MAX_SHORT_ANSWER_NUMBERS:
        problems.append(f"the short answer has {numbers} numbers (at most {MAX_SHORT_ANSWER_NUMBERS})")
    return problems


def glue_problems(nb) -> list[str]:
    glued = glued_names(nb)
    used = {target.split(":")[0] for target in roles(markdown(nb), "glue")}
    return [f"{{glue}} name {name!r} is not glued by any cell" for name in sorted(used - glued)]


def convention_problems(path: Path) -> list[str]:
    nb = read(path)
    return (install_cell_problems(nb) + imports_cell_problems(nb) + infrastructure_problems(nb)
            + check_cell_problems(nb) + figure_problems(nb, path) + short_answer_problems(nb)
            + glue_problems(nb))


@pytest.mark.parametrize(
    "path",
    [pytest.param(path, id=path.stem, marks=[pytest.mark.xfail(strict=True, reason="not yet converted")]
                  if path.stem in NOT_YET_CONVERTED else []) for path in CHAPTERS],
)
def test_chapter_follows_the_conventions(path):
    problems = convention_problems(path)
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


def test_not_yet_converted_names_chapters():
    assert NOT_YET_CONVERTED <= {path.stem for path in CHAPTERS}
    assert CHAPTERS, "no chapters found in book/"


def test_install_cell_installs_from_the_repository_of_the_config():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["repository"]["url"] == REPOSITORY_URL
    assert config["repository"]["branch"] == REPOSITORY_BRANCH


def run_install_cell(missing: set[str]):
    """Execute INSTALL_CELL with the modules in ``missing`` absent; return pip's calls."""
    import importlib.util
    import subprocess

    real_find_spec = importlib.util.find_spec
    with mock.patch.object(importlib.util, "find_spec",
                           side_effect=lambda name: None if name in missing else real_find_spec(name)), \
            mock.patch.object(subprocess, "run") as run:
        exec(compile(INSTALL_CELL, "install-cell", "exec"), {})
    return [call.args[0] for call in run.call_args_list]


def test_install_cell_does_nothing_when_everything_imports():
    assert run_install_cell(set()) == []


def test_install_cell_installs_what_is_missing_with_the_kernels_pip():
    import sys

    archive = f"mininn @ {REPOSITORY_URL}/archive/refs/heads/{REPOSITORY_BRANCH}.zip"
    (command,) = run_install_cell({"mininn", "myst_nb"})
    assert command[:5] == [sys.executable, "-m", "pip", "install", "--quiet"]
    assert command[5:] == [archive, "myst-nb>=1,<2"]
    (command,) = run_install_cell({"mininn"})
    assert command[5:] == [archive]


def test_short_answer_counts():
    text = ("Away from $0$, ReLU′ is a step; autograd's `np.maximum` gives {glue:text}`at_zero`, "
            "float64 aside (e.g. 3 of {doc}`02_one_neuron`). Two? Yes")
    assert short_answer_counts(text) == (3, 3, 19)  # $0$, the glue role, 3; not float64 or 02


def test_the_lint_finds_what_it_should():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("print(1)"),
        nbformat.v4.new_code_cell("import numpy as np", metadata={"tags": ["hide-input"]}),
        nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nx = 1\nassert x == 1"),
        nbformat.v4.new_markdown_cell("The figure above shows {glue:text}`missing`."),
    ]
    nb.cells[2].outputs = [nbformat.v4.new_output("display_data", data={"image/png": "", "text/plain": ""})]
    path = Path("book/01_example.ipynb")
    assert install_cell_problems(nb) and imports_cell_problems(nb) and infrastructure_problems(nb)
    assert check_cell_problems(nb) and glue_problems(nb) and short_answer_problems(nb)
    assert len(figure_problems(nb, path)) == 3  # no name, no caption, "the figure above"


def sanitized(text: str) -> str:
    """text after the regexes of tests/nbval_sanitize.cfg, applied as nbval applies them."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "tests" / "nbval_sanitize.cfg")
    for section in config.sections():
        text = re.sub(config[section]["regex"], config[section]["replace"], text)
    return text


def test_nbval_compares_a_slider_figure_without_its_frames():
    from mininn.plotting import SliderFigure

    def slider(frames, labels):
        return sanitized(SliderFigure([1, 2], frames, "β", labels, start=0)._repr_html_())

    here, elsewhere = [b"\x89PNG one", b"\x89PNG two"], [b"\x89PNG other", b"\x89PNG bytes"]
    assert slider(here, ["1", "2"]) == slider(elsewhere, ["1", "2"])  # other pixels: same output
    assert slider(here, ["1", "2"]) != slider(here, ["1", "3"])       # other values: a failure
