"""The ways into the book that do not go through `make`: a plain pip install, a notebook on its own, Binder.

The install cell of every chapter (``INSTALL_CELL`` in tests/test_notebooks.py) installs
``mininn @ <repository>/archive/refs/heads/<branch>.zip``, the archive GitHub serves of the
repository. Here the same kind of archive is made from this checkout (its tracked and
not-ignored files, as they are on disk), pip builds and installs a real wheel from it into an
empty folder, and chapter 1, copied alone into another empty folder, runs with that install
first on its path. Nothing is downloaded (``--no-index``, no build isolation).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "01_relu_derivatives.ipynb"
# Never part of the archive, whatever git says (a checkout without git is copied by walking it).
NOT_SHIPPED = {".git", ".venv", "_build", "__pycache__", ".pytest_cache", ".ruff_cache", "build"}


def checkout_files() -> list[Path]:
    """The files of the checkout that a commit would hold: tracked or untracked but not ignored."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                                cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
        paths = [ROOT / name for name in listed if name]
    except (OSError, subprocess.CalledProcessError):  # no git: a copy of the sources
        paths = list(ROOT.rglob("*"))
    return [path for path in paths if path.is_file()
            and not NOT_SHIPPED & set(path.relative_to(ROOT).parts) and path.suffix != ".pyc"]


def repository_archive(folder: Path) -> Path:
    """A zip of the checkout with one top folder, like GitHub's archive/refs/heads/<branch>.zip."""
    archive = folder / "relu-second-order-main.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in checkout_files():
            zipped.write(path, Path("relu-second-order-main") / path.relative_to(ROOT))
    return archive


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A folder holding mininn as pip installs it from the repository archive."""
    folder = tmp_path_factory.mktemp("install")
    archive = repository_archive(folder)
    target = folder / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), f"mininn @ {archive.as_uri()}"],
                   check=True, cwd=folder)
    return target


def test_the_installed_package_has_every_module_of_the_checkout(installed):
    def modules(root):
        return sorted(path.relative_to(root).as_posix() for path in (root / "mininn").rglob("*.py"))

    assert modules(installed) == modules(ROOT)
    assert [path.name for path in installed.glob("mininn-*.dist-info/METADATA")] == ["METADATA"]
    assert not (installed / "tests").exists() and not (installed / "book").exists()


def test_a_chapter_downloaded_alone_runs_with_the_installed_package(installed, tmp_path, monkeypatch):
    folder = tmp_path / "downloads"
    folder.mkdir()
    shutil.copy(CHAPTER, folder)
    nb = nbformat.read(folder / CHAPTER.name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("print(mininn.__file__)"))
    # The kernel inherits this environment: the install first, and not this checkout.
    monkeypatch.setenv("PYTHONPATH", str(installed))
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()

    outputs = [output for cell in nb.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.output_type == "error"]
    assert not nb.cells[0].outputs  # the install cell found mininn and did nothing
    (printed,) = nb.cells[-1].outputs
    assert Path(printed.text.strip()) == installed / "mininn" / "__init__.py"
    assert sorted(path.name for path in folder.iterdir()) == [CHAPTER.name]  # nothing else needed


def test_binder_installs_the_notebooks_requirements_at_the_repositorys_pins_and_then_mininn():
    binder = ROOT / ".binder"
    assert (binder / "runtime.txt").read_text().strip() == "python-3.11"  # requires-python >= 3.11
    lines = [line.split("#")[0].strip() for line in (binder / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line]
    assert requirements[0] == "-c ../requirements.txt"
    pinned = {line.split("==")[0].lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if "==" in line}
    assert {name.lower() for name in requirements[1:]} <= pinned  # every one of them pinned there
    # pip accepts the file and the pins: this environment, made from requirements.txt, already
    # satisfies it, so nothing needs downloading (a name or pin it cannot satisfy fails here).
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--quiet",
                    "-r", "requirements.txt"], cwd=binder, check=True)
    post_build = binder / "postBuild"
    assert post_build.stat().st_mode & 0o111  # repo2docker runs it as a program
    assert "pip install --no-cache-dir --no-deps -e ." in post_build.read_text()
