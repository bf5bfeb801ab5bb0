"""The results files of the benchmarks: what other tools read from them."""

import csv
import json
import re

from benchmarks.common import code_version, write_results


def test_write_results_records_provenance_and_rows(tmp_path):
    rows = [{"batch": 100, "ratio": 1.5}, {"batch": 1000, "ratio": 0.75}]
    json_path, csv_path = write_results("example", {"rows": rows}, "rows", output_dir=tmp_path)
    payload = json.loads(json_path.read_text())
    assert payload["rows"] == rows
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", payload["date"])
    assert "cores" in payload["machine"]
    assert payload["commit"] == code_version()
    with csv_path.open() as handle:
        assert [dict(row) for row in csv.DictReader(handle)] == [
            {"batch": "100", "ratio": "1.5"}, {"batch": "1000", "ratio": "0.75"}]


def test_code_version_is_a_commit_or_none():
    version = code_version()
    assert version is None or re.fullmatch(r"[0-9a-f]{12}(\+changes)?", version)
