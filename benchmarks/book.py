"""Execution time of every chapter notebook (target: the whole book under 5 minutes on 2 cores)."""

import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from tqdm.auto import tqdm

from .common import print_table, write_results

BOOK = Path(__file__).resolve().parent.parent / "book"


def execute_seconds(path, timeout=600):
    """Wall time of executing the notebook at ``path`` top to bottom in a fresh kernel."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def run(quick=False, output_dir=None):
    paths = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
    if quick:
        paths = paths[:1]
    rows = [{"name": path.name, "seconds": execute_seconds(path)} for path in tqdm(paths, desc="notebooks")]
    total = sum(row["seconds"] for row in rows)
    print_table(rows, ["name", "seconds"])
    print(f"whole book: {total:.1f} s (target < 300 s)")
    write_results("book", {"notebooks": rows, "total_s": total}, "notebooks", output_dir, quick)
