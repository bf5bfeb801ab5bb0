"""The batch-size scaling benchmark: critical batch size, grid widening, the quick run's results."""

import json
import math

from benchmarks import scaling

BATCHES = [32, 64, 128, 256, 512]


def test_critical_batch_size_of_perfect_scaling_is_the_largest():
    assert scaling.critical_batch_size(BATCHES, [1600, 800, 400, 200, 100]) == 512


def test_critical_batch_size_ends_at_diminishing_returns():
    # halving up to 128, then 0.7 of the steps per doubling: 128 is the last near-perfect step
    assert scaling.critical_batch_size(BATCHES, [1600, 800, 400, 280, 196]) == 128
    # a doubling at exactly 0.6 still counts; just above does not
    assert scaling.critical_batch_size(BATCHES[:2], [1000, 600]) == 64
    assert scaling.critical_batch_size(BATCHES[:2], [1000, 601]) == 32


def test_critical_batch_size_with_misses():
    # a miss at the smallest batch: the walk starts at the first batch size that reaches the target
    assert scaling.critical_batch_size(BATCHES, [None, 800, 400, 200, 100]) == 512
    assert scaling.critical_batch_size(BATCHES, [None, 800, 700, 200, 100]) == 64
    assert scaling.critical_batch_size(BATCHES, [1600, 800, math.inf, 200, 100]) == 64
    assert scaling.critical_batch_size(BATCHES, [None] * 5) is None


def test_critical_batch_size_of_a_non_doubling_step():
    # 2048 -> 4000 (x1.95): perfect scaling would be 0.512 of the steps; 0.6^log2(1.95) = 0.61 allowed
    assert scaling.critical_batch_size([2048, 4000], [100, 61]) == 4000
    assert scaling.critical_batch_size([2048, 4000], [100, 63]) == 2048


def test_grid_widens_beyond_the_edge_where_the_best_sits():
    grid = [0.01, 0.1, 1.0]
    assert scaling._widened(grid, 0) == 0.001
    assert scaling._widened(grid, 2) == 10.0
    assert scaling._widened(grid, 1) is None


def test_quick_run_writes_the_schema_other_tools_read(tmp_path):
    payload = scaling.run(quick=True, output_dir=tmp_path, workers=1, methods=["Adam", "K-FAC"])
    written = json.loads((tmp_path / "scaling_quick.json").read_text())
    for key in ("machine", "date", "commit", "workload", "target", "rows", "critical_batch_size"):
        assert key in written
    for row in written["rows"]:
        assert {"method", "batch_size", "steps_to_target", "learning_rate", "seeds"} <= set(row)
    assert set(written["critical_batch_size"]) == {"Adam", "K-FAC"}
    adam = [r for r in payload["rows"] if r["method"] == "Adam" and r["steps_to_target"]]
    assert adam and all(r["steps_ratio_to_adam"] == 1 for r in adam)
    assert (tmp_path / "scaling_quick.png").stat().st_size > 0
