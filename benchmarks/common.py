"""What every benchmark shares: timing, machine description, and writing results."""

import concurrent.futures
import contextlib
import csv
import datetime
import json
import multiprocessing
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def machine():
    """A one-line description of the machine the numbers come from."""
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"numpy {np.__version__}")


def code_version():
    """The git commit of the code that produced the numbers, ``+changes`` when the tracked files differ
    from it; None outside a git checkout."""
    root = Path(__file__).resolve().parents[1]

    def git(*args):
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+changes" if changed else "")


class Clock:
    """Seconds since the start of a run, excluding the time spent inside ``pause()``."""

    def __init__(self):
        self.start, self.paused = time.perf_counter(), 0.0

    def elapsed(self):
        return time.perf_counter() - self.start - self.paused

    @contextlib.contextmanager
    def pause(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.paused += time.perf_counter() - start


def load_average():
    """The 1, 5 and 15 minute load averages, rounded (NaN where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return [float("nan")] * 3


def run_jobs(function, jobs, workers=1, description=None):
    """``[function(*job) for job in jobs]``, in ``workers`` processes when more than 1.

    Workers are forked, so they inherit the BLAS thread setting of the parent (set by the command
    line before numpy loads). Results come back in the order of ``jobs``.
    """
    from tqdm.auto import tqdm

    jobs = list(jobs)
    if workers <= 1:
        return [function(*job) for job in tqdm(jobs, desc=description, leave=False)]
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(function, *job) for job in jobs]
        for _ in tqdm(concurrent.futures.as_completed(futures), total=len(futures), desc=description,
                      leave=False):
            pass
        return [future.result() for future in futures]


def median_seconds(function, repeats, warmup=1):
    """Median wall time of ``function()`` over ``repeats`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def write_results(name, payload, rows_key, output_dir=None, quick=False, plot=None):
    """Write ``payload`` to ``<name>.json``, its ``rows_key`` list to ``<name>.csv``; print, return the paths.

    ``output_dir`` defaults to ``RESULTS``; ``quick`` names the files ``<name>_quick.*`` (smoke runs,
    which git ignores); ``plot(payload, path)``, when given, also draws ``<name>.png``.
    """
    output_dir = Path(RESULTS if output_dir is None else output_dir)
    name = f"{name}_quick" if quick else name
    output_dir.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), "date": datetime.date.today().isoformat(), "commit": code_version(),
               **payload}
    json_path = output_dir / f"{name}.json"
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    rows = payload[rows_key]
    csv_path = output_dir / f"{name}.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    paths = [json_path, csv_path]
    if plot is not None:
        paths.append(json_path.with_suffix(".png"))
        plot(payload, paths[-1])
    for path in paths:
        print(f"wrote {path}")
    return paths


def print_table(rows, columns):
    """Print ``rows`` (dicts) as an aligned text table of ``columns``."""
    def cell(value):
        return f"{value:.3g}" if isinstance(value, float) else str(value)
    widths = [max(len(c), *(len(cell(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(cell(row[c]).rjust(w) for c, w in zip(columns, widths)))
