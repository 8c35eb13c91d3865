"""The attrition training job end to end: planted truth, reproducibility, the CLI in a tiny configuration,
bring-your-own data, and bad input (one line, exit 2, no run folder)."""
import json, subprocess, sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hr_ml import pipeline as P
from hr_ml.explain import contributions, global_importance
from hr_ml.features import FEATURES
from hr_ml.schema import PROTECTED
from hr_ml.tabular import demo_export

TINY = ["--employees", "1500", "--tenants", "8", "-p", "n_splits=3", "-p", "model_kind=xgboost",
        "-p", "model_params={n_estimators: 60, max_depth: 3}", "--no-progress", "--no-track"]


def hr_ml(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "hr_ml.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def runs_in(out: Path) -> list:
    return sorted(p for p in (out / "attrition").iterdir()) if (out / "attrition").exists() else []


def assert_one_line_error(r, *words):
    msg = (r.stderr or "").strip()
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    assert len(msg.splitlines()) == 1, msg
    for w in words: assert w.lower() in msg.lower(), (w, msg)


# ---------------------------------------------------------------- planted truth
@pytest.fixture(scope="module")
def planted():
    ds = P.load_dataset(employees=6000, tenants=30, seed=11)
    model, rep = P.choose_and_fit(ds, n_splits=3, n_repeats=1, seed=0, model_params={"n_estimators": 200}, kind="auto")
    phi, _ = contributions(model, ds.X)
    imp = global_importance(phi, model.feature_names_)
    return ds, model, rep, P.truth_recovery(ds.truth, phi, ds.X, model.feature_names_, imp, rep["oof"], ds.ids, ds.y)


def test_auc_below_oracle(planted):
    "The replayed oracle bounds the model from above (up to the AUC's sampling error); the model is not far below it."
    ds, _, _, tr = planted
    assert "auc" in tr, tr
    at = (ds.ids["as_of"].cast(pl.String) == tr["oracle_as_of"]).to_numpy()
    n1 = int(ds.y[at].sum()); n0 = int(at.sum()) - n1; a = tr["oracle_auc"]
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)                       # Hanley & McNeil (1982) standard error of an AUC
    se = np.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0))
    assert tr["auc"] <= tr["oracle_auc"] + 2 * se, (tr, se)
    assert tr["auc_gap"] <= 0.12, tr


def test_planted_drivers_in_top_features(planted):
    _, _, _, tr = planted
    assert len(tr["drivers"]) == 7
    assert tr["all_in_top"], {k: v["rank"] for k, v in tr["drivers"].items()}


@pytest.mark.xfail(reason="issue 14 §4 replaces this quartile sign check (it was built for a linear world): on the non-linear "
                          "planted world the model shares sick_days_trend's effect with sick_days_90d/365d and threshold shapes "
                          "put planted-zero rows in the quartiles", strict=False)
def test_sign_agreement(planted):
    _, _, _, tr = planted
    # monotone drivers only: non-monotone ones (tenure, compa-ratio) have no single sign
    assert tr["min_sign_agreement"] >= 0.95, [(k, v["sign_agreement"]) for k, v in tr["drivers"].items()]


def test_no_protected_attribute_among_features(planted):
    ds, model, _, _ = planted
    assert list(model.feature_names_) == FEATURES
    low = {c.lower() for c in model.feature_names_}
    assert not low & set(PROTECTED) and not any(c.startswith("prot_") for c in low)
    assert {"prot_gender", "prot_age_band"} <= set(ds.protected.columns)


# ---------------------------------------------------------------- the job through the CLI
@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    rs = [hr_ml("train", "attrition", *TINY, "--out", out) for _ in range(2)]
    for r in rs: assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return rs, runs_in(out)


def test_run_folder_is_complete(two_runs):
    rs, runs = two_runs
    assert len(runs) == 2 and not any(p.name.startswith(".tmp") for p in runs)
    run = runs[0]
    for f in ["executed.ipynb", "params.yaml", "model.ubj", "model.json", "manifest.json", "metrics.json",
              "drivers.parquet", "shap_summary.png", "shap_waterfall.png", "calibration_lift.png", "reference_profile.json"]:
        assert (run / f).exists(), f
    man = json.loads((run / "manifest.json").read_text())
    for k in ["model_sha256", "data_fingerprint", "git_commit", "versions", "lock_sha256", "seed", "timings"]:
        assert k in man, k
    m = json.loads((run / "metrics.json").read_text())
    assert m["chosen_model"] == "xgboost" and set(m["global_importance"]) == set(FEATURES)
    assert m["truth_recovery"]["drivers"]
    assert m["backtest"]["applicable"] and m["backtest"]["calibration"] and m["backtest"]["test_year"] == 2024   # default history: back-tested
    assert str(run) in rs[0].stdout and "ROC-AUC" in rs[0].stdout
    dr = pl.read_parquet(run / "drivers.parquet")
    assert {"tenant_id", "employee_id", "risk", "bucket", "driver_1_text"} <= set(dr.columns)
    assert dr["risk"].is_between(0, 1).all()


def test_two_processes_same_bytes(two_runs):
    _, (a, b) = two_runs
    for f in ["model.ubj", "model.json", "metrics.json"]:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    pa, pb = pl.read_parquet(a / "drivers.parquet"), pl.read_parquet(b / "drivers.parquet")
    assert pa.equals(pb)


def test_monitor_flags_a_pay_freeze_against_the_run(two_runs, tmp_path):
    "hr-ml monitor on the run's own synthetic HRIS with a planted pay freeze: status not ok, exit 1 with --fail-on warn."
    _, (run, _) = two_runs
    r = hr_ml("monitor", "--model", run, "--out", tmp_path, "-p", "employees=1500", "-p", "tenants=8",
              "-p", "shift=pay_freeze", "--fail-on", "warn", "--no-progress")
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    (mon,) = sorted((tmp_path / "monitor").iterdir())
    m = json.loads((mon / "monitor.json").read_text())
    assert m["status"] in ("warn", "alert") and f"status: {m['status']}" in r.stdout
    drift = pl.read_parquet(mon / "drift.parquet")
    flagged = set(drift.filter(pl.col("status") != "ok")["feature"].to_list())
    assert "months_since_raise" in flagged, drift
    assert not {"weekly_hours", "department", "location"} & flagged, flagged
    assert (mon / "report.html").exists() and (mon / "manifest.json").exists()


# ---------------------------------------------------------------- bring your own data
MAPPING = """id: EmployeeNumber
target: Attrition
positive: "Yes"
protected: [Age, Gender, MaritalStatus]
"""


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    d = tmp_path_factory.mktemp("byo")
    demo_export(n=800, seed=2).write_csv(d / "export.csv")
    (d / "mapping.yaml").write_text(MAPPING)
    return d


def test_byo_export_trains(export, tmp_path):
    r = hr_ml("train", "attrition", "--data", export / "export.csv", "--mapping", export / "mapping.yaml",
              "-p", "n_splits=3", "-p", "n_repeats=1", "-p", "model_params={n_estimators: 40}", "--no-progress", "--no-track", "--out", tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (run,) = runs_in(tmp_path)
    m = json.loads((run / "metrics.json").read_text())
    feats = set(m["features"])
    assert not feats & {"TerminationDate", "EmploymentStatus", "LastReviewDate", "EmployeeNumber", "Age", "Gender"}
    notes = " ".join(m["notes"])
    assert "TerminationDate" in notes and "copies" in notes
    assert {l["column"] for l in m["leaks"] if l["action"] == "excluded"} == {"TerminationDate", "EmploymentStatus", "LastReviewDate"}
    assert m["chosen_model"] in ("xgboost", "logistic") and m["choice_reason"]


def _bad_export(export, tmp_path, change, mapping=MAPPING):
    df = pl.read_csv(export / "export.csv", infer_schema_length=None)
    change(df).write_csv(tmp_path / "bad.csv") if change else None
    (tmp_path / "m.yaml").write_text(mapping)
    return tmp_path / "bad.csv", tmp_path / "m.yaml"


BAD = {
    "target_missing": (lambda d: d.drop("Attrition"), MAPPING, ["Attrition"]),
    "one_class": (lambda d: d.with_columns(pl.lit("No").alias("Attrition")), MAPPING, ["Attrition", "class"]),
    "positive_absent": (None, MAPPING.replace('"Yes"', '"Left"'), ["Attrition", "Left"]),
    "mapping_missing_column": (None, MAPPING.replace("MaritalStatus", "CivilStatus"), ["CivilStatus"]),
    "all_null_feature": (lambda d: d.with_columns(pl.lit(None, pl.String).alias("OverTime")),
                         MAPPING + "keep: [OverTime]\n", ["OverTime"]),
    "too_few_rows": (lambda d: d.sort("Attrition").head(40).vstack(d.filter(pl.col("Attrition") == "Yes").head(2)),
                     MAPPING, ["fold"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_export_one_line_no_run(export, tmp_path, case):
    change, mapping, words = BAD[case]
    data, m = _bad_export(export, tmp_path, change, mapping)
    if change is None: (tmp_path / "bad.csv").write_bytes((export / "export.csv").read_bytes())
    out = tmp_path / "runs"
    r = hr_ml("train", "attrition", "--data", data, "--mapping", m, "--no-progress", "--out", out)
    assert_one_line_error(r, *words)
    assert runs_in(out) == []


def test_as_of_outside_data(tmp_path):
    out = tmp_path / "runs"
    r = hr_ml("train", "attrition", "--employees", "300", "--tenants", "3", "-p", "as_of_dates=[2031-01-01]", "--no-progress", "--out", out)
    assert_one_line_error(r, "2031-01-01")
    assert runs_in(out) == []


def test_unknown_parameter(tmp_path):
    r = hr_ml("train", "attrition", "-p", "horizon=6", "--out", tmp_path)
    assert_one_line_error(r, "horizon", "unknown parameter")
