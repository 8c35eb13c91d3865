"""`make bench-smoke` in the test suite: every benchmark runs at tiny size and writes well-formed JSON (no timing assertions)."""
import json, math, subprocess, sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

# benchmark -> key paths that must hold finite numbers (dots walk into dicts; '*' into every list item)
EXPECTED = {
    "api": ["load.p50_ms", "load.p99_ms", "load.requests", "batch.median_s", "goals.p99_ms", "server.startup_s"],
    "treeshap": ["models.*.speedup", "models.*.max_abs_diff", "models.*.tree_shap_rows_per_s", "models.*.pred_contribs_rows_per_s"],
    "score": ["score.seconds", "score.peak_rss_gb", "score.rows", "ratio.speedup_tree_shap_vs_pred_contribs",
              "ratio.speedup_drivers_vs_pred_contribs", "ratio.max_abs_diff", "goals.seconds", "goals.peak_rss_gb"],
    "features": ["speedup", "polars.seconds", "pandas.seconds", "polars.peak_rss_mb", "snapshot_rows"],
    "train": ["measured.train_seconds", "measured.papermill_overhead_s", "job.peak_rss_gb_children", "goals.train_seconds"],
    "synth": ["seconds.total", "peak_rss_gb", "rows.employees"],
}
if (BENCH / "bench_pay_gap_coverage.py").exists(): EXPECTED["pay_gap_coverage"] = []
if (BENCH / "pay_platform.py").exists(): EXPECTED["pay_platform"] = ["report_s", "per_tenant_ms", "peak_rss_gb_sampled", "config.tenants"]
if (BENCH / "monitor_platform.py").exists():
    EXPECTED["monitor_platform"] = ["times.profile_s", "generate_s", "peak_rss_gb", "config.tenants"]
if (BENCH / "monitor_scenarios.py").exists():
    EXPECTED["monitor_scenarios"] = ["measured.no_drift_warn", "measured.no_drift_alert", "measured.mix_only_alert", "measured.pay_freeze_as_expected", "measured.exits_as_predicted_as_expected"]
if (BENCH / "experiment_checks.py").exists():
    EXPECTED["experiment_checks"] = ["measured.itt_covers", "measured.power_promised", "measured.power_simulated", "measured.null_sub_tests"]


def _get(d, path):
    "Every value at `path` in `d`."
    vals = [d]
    for k in path.split("."):
        vals = [x for v in vals for x in (v if k == "*" else [v[k]])]
    return vals


def _numbers(o):
    "Every number anywhere in a JSON value."
    if isinstance(o, bool): return []
    if isinstance(o, (int, float)): return [o]
    if isinstance(o, dict): return [x for v in o.values() for x in _numbers(v)]
    if isinstance(o, list): return [x for v in o for x in _numbers(v)]
    return []


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_smoke")
    r = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--smoke", "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", list(EXPECTED))
def test_json_written_and_well_formed(smoke, name):
    p = smoke / f"{name}.json"
    assert p.exists(), sorted(x.name for x in smoke.iterdir())
    r = json.loads(p.read_text())
    assert r.get("smoke") is True, f"{name}.json was not written in smoke mode"
    for n in _numbers(r): assert math.isfinite(n), (name, n)
    for path in EXPECTED[name]:
        vals = _get(r, path)
        assert vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in vals), (name, path, vals)
    assert (smoke / f"{name}.md").exists()


def test_results_are_right_not_just_present(smoke):
    "The fast TreeSHAP inside the score benchmark agrees with xgboost, and features agree with pandas."
    score = json.loads((smoke / "score.json").read_text())
    assert score["ratio"]["max_abs_diff"] <= 1e-5
    assert score["score"]["rows"] == score["data"]["rows"] >= score["data"]["population"] > 0
    assert json.loads((smoke / "features.json").read_text())["agree"] is True


def test_summary_lists_every_benchmark(smoke):
    s = (smoke / "SUMMARY.md").read_text()
    assert "| benchmark | measured | goal | pass |" in s
    for name in EXPECTED: assert f"{name}.json" in s, name
    assert "failed" not in s and "unreadable" not in s
