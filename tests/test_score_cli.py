"""`hr-ml score` end to end: a whole (small) population from an HRIS export or a features file, chunked or not, into one
Parquet file that says which model scored it; bad inputs give one line and exit 2 and leave no file behind."""
import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from conftest import hr_ml_inprocess
from hr_ml.attrition import AttritionModel
from hr_ml.explain import drivers
from hr_ml.features import FEATURES, build_features
from hr_ml.io import write_hris
from hr_ml.synth import generate
from hr_ml.schema import HRDataError
from hr_ml.treeshap import check_device


def _gpu_here():
    "Whether xgboost can compute SHAP values on a GPU on this machine."
    try: return check_device("cuda") == "cuda"
    except HRDataError: return False


def hr_ml(*args, cwd=None):
    """`hr-ml ARGS` in this process (the same typer app, exit codes and stderr; tests/test_journey.py runs `hr-ml score` as a
    process)."""
    return hr_ml_inprocess(*args, cwd=cwd, show_warnings=True)   # warnings a plain `python` prints reach stderr too


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("score")
    tables, _ = generate(n_employees=2500, n_tenants=8, seed=11)
    write_hris(tables, d / "hris")
    tr = build_features(tables, date(2024, 12, 31))
    AttritionModel(n_estimators=40, max_depth=3, early_stopping_rounds=None, n_jobs=1).fit(tr.select(FEATURES), tr["label"]).save(d / "run")
    (d / "run" / "metrics.json").write_text(json.dumps({"cuts": [0.1, 0.3]}))
    cur = build_features(tables, date(2025, 12, 31))
    cur.write_parquet(d / "features.parquet")
    return d, cur


def test_score_hris_export_chunked_equals_whole(setup):
    d, cur = setup
    r1 = hr_ml("score", "--model", d / "run", "--data", d / "hris", "--out", d / "a.parquet", "--no-progress", "--chunk-size", "333")
    assert r1.returncode == 0, r1.stderr
    r2 = hr_ml("score", "--model", d / "run", "--data", d / "features.parquet", "--out", d / "b.parquet", "--no-progress")
    assert r2.returncode == 0, r2.stderr
    a, b = pl.read_parquet(d / "a.parquet"), pl.read_parquet(d / "b.parquet")
    assert a.height == cur.height and a.equals(b)
    assert pq.ParquetFile(d / "a.parquet").metadata.num_row_groups == -(-cur.height // 333)
    m = AttritionModel.load(d / "run")
    ref = drivers(m, cur.select(FEATURES), ids=cur.select("tenant_id", "employee_id"), cuts=(0.1, 0.3))  # the run's own cuts
    assert a.equals(ref)
    meta = pq.read_schema(d / "a.parquet").metadata
    info = json.loads(meta[b"hr_ml.model"])
    assert info["run"] == "run" and info["sha256"] == json.loads((d / "run" / "manifest.json").read_text())["model_sha256"]
    assert meta[b"hr_ml.as_of"] == b"2025-12-31" and meta[b"hr_ml.scored_at"]
    assert f"scored {cur.height:,} employees as of 2025-12-31 with run run" in r1.stdout, r1.stdout
    assert not any(c in a.columns for c in ("gender", "prot_gender", "first_name", "email"))


def test_score_as_of_earlier_snapshot(setup):
    d, _ = setup
    r = hr_ml("score", "--model", d / "run", "--data", d / "hris", "--as-of", "2025-06-30", "--out", d / "mid.parquet", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert pq.read_schema(d / "mid.parquet").metadata[b"hr_ml.as_of"] == b"2025-06-30"


@pytest.mark.parametrize("case, args, expect", [
    ("missing data", ["--data", "{d}/nope"], "nope: data not found"),
    ("bad date", ["--data", "{d}/hris", "--as-of", "30/06/2025"], "is not a date; use YYYY-MM-DD"),
    ("date after the data", ["--data", "{d}/hris", "--as-of", "2031-01-01"], "after the last date in the data"),
    ("not parquet", ["--data", "{d}/hris", "--out", "{d}/x.csv"], "must be a .parquet file"),
    ("no folder", ["--data", "{d}/hris", "--out", "{d}/nowhere/x.parquet"], "output folder not found"),
    ("missing model", ["--data", "{d}/hris", "--model", "{d}/no-run"], "no such run folder"),
    ("bad csv cell", ["--data", "{d}/bad.csv"], "row 4: 'abc' is not a number"),
    ("missing feature", ["--data", "{d}/partial.parquet"], "lacks feature column(s) ['compa_ratio']"),
    ("unknown device", ["--data", "{d}/hris", "--device", "tpu"], "device 'tpu' is not known; use 'cpu'"),
    pytest.param("no GPU", ["--data", "{d}/hris", "--device", "cuda"], "needs an xgboost built with CUDA and a visible NVIDIA GPU",
                 marks=pytest.mark.skipif(_gpu_here(), reason="xgboost sees a GPU here; tests/test_gpu.py scores with it")),
])
def test_score_bad_inputs_one_line_no_file(setup, case, args, expect):
    d, cur = setup
    bad = cur.head(5).with_columns(pl.col("overtime_ratio").cast(pl.String).fill_null(""))
    bad.with_columns(bad["overtime_ratio"].scatter(2, "abc")).write_csv(d / "bad.csv")
    cur.drop("compa_ratio").write_parquet(d / "partial.parquet")
    args = [a.format(d=d) for a in args]
    out = d / "never.parquet"
    if "--out" not in args: args += ["--out", str(out)]
    if "--model" not in args: args = ["--model", str(d / "run")] + args
    r = hr_ml("score", *args, "--no-progress")
    assert r.returncode == 2, (case, r.stdout, r.stderr)
    msg = r.stderr.strip()
    assert len(msg.splitlines()) == 1 and "Traceback" not in msg and expect in msg, (case, msg)
    assert not out.exists() and not list(d.glob(".never.parquet.tmp-*"))


def test_score_refuses_to_overwrite(setup):
    d, _ = setup
    (d / "keep.parquet").write_bytes(b"precious")
    r = hr_ml("score", "--model", d / "run", "--data", d / "features.parquet", "--out", d / "keep.parquet", "--no-progress")
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert (d / "keep.parquet").read_bytes() == b"precious"
    r = hr_ml("score", "--model", d / "run", "--data", d / "features.parquet", "--out", d / "keep.parquet", "--no-progress", "--overwrite")
    assert r.returncode == 0 and pl.read_parquet(d / "keep.parquet").height > 0


# ---------------------------------------------------------------- a model trained on a one-row-per-employee export
README_MAPPING = """id: EmployeeNumber            # kept for the output, never a feature
target: Attrition             # the column saying who left
positive: "Yes"               # the value meaning "left"
protected: [Age, Gender, MaritalStatus]   # fairness audit only, never model features
drop: [DailyRate, HourlyRate, MonthlyRate]
keep: []                      # columns to keep even if flagged as probable leaks
"""


@pytest.fixture(scope="module")
def table_runs(tmp_path_factory):
    """Both model kinds trained (as the training job does) on a small demo export, saved as run folders. The two
    `choose_and_fit` calls cross-validate the same two kinds on the same rows: the comparison is computed once."""
    from hr_ml import pipeline
    from hr_ml.pipeline import load_dataset, choose_and_fit
    from hr_ml.tabular import demo_export
    d = tmp_path_factory.mktemp("table")
    demo_export(n=300, seed=4).write_csv(d / "export.csv")
    pl.read_csv(d / "export.csv").write_parquet(d / "export.parquet")   # the same rows, typed by Parquet
    (d / "mapping.yaml").write_text(README_MAPPING)
    ds = load_dataset(d / "export.csv", d / "mapping.yaml", n_splits=3)
    real, memo = pipeline.compare_models, {}
    def compare_once(*args, **kw):
        if "cmp" not in memo: memo["cmp"], memo["call"] = real(*args, **kw), (args, kw)
        assert memo["call"][1].keys() == kw.keys() and memo["call"][0][0] is args[0]   # the same rows and options
        return memo["cmp"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "compare_models", compare_once)
        for kind in ("xgboost", "logistic"):
            model, _ = choose_and_fit(ds, n_splits=3, n_repeats=1, model_params={"n_estimators": 30, "n_jobs": 1}, kind=kind)
            model.save(d / kind)
    return d, ds


@pytest.mark.parametrize("kind", ["xgboost", "logistic"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_score_the_training_export(table_runs, kind, fmt):
    d, ds = table_runs
    out = d / f"{kind}-{fmt}.parquet"
    r = hr_ml("score", "--model", d / kind, "--data", d / f"export.{fmt}", "--out", out, "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    s = pl.read_parquet(out)
    assert s.columns[:3] == ["employee_id", "risk", "bucket"] and {"driver_1", "driver_1_text", "driver_3_text"} <= set(s.columns)
    assert s["employee_id"].to_list() == ds.ids["employee_id"].to_list()       # the mapping's id, row for row
    m = AttritionModel.load(d / kind)
    np.testing.assert_allclose(s["risk"].to_numpy(), m.predict_risk(ds.X), atol=1e-9)   # the training rows' own risk
    assert not {"Age", "Gender", "MaritalStatus", "Attrition", "OverTime", "EmployeeNumber"} & set(s.columns)
    assert set(s["bucket"].unique()) <= {"Low", "Medium", "High"}
    assert json.loads(pq.read_schema(out).metadata[b"hr_ml.model"])["run"] == kind
    assert f"scored {ds.X.height:,} employees with run {kind}" in r.stdout, r.stdout


def test_score_new_rows_with_mapping_and_no_target(table_runs):
    "A later extract: no target column, other yes/no spellings, a few rows; the mapping passed on the command line is used."
    d, ds = table_runs
    new = pl.read_csv(d / "export.csv", infer_schema=False).drop("Attrition").head(7)
    new = new.with_columns(pl.col("OverTime").replace({"Yes": "yes", "No": "NO"}))
    new.write_csv(d / "later.csv")
    (d / "other.yaml").write_text(README_MAPPING.replace("id: EmployeeNumber", "id: EmployeeNumber\ntenant: ACME"))
    r = hr_ml("score", "--model", d / "xgboost", "--data", d / "later.csv", "--mapping", d / "other.yaml",
              "--out", d / "later.parquet", "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    s = pl.read_parquet(d / "later.parquet")
    assert s.columns[:2] == ["tenant_id", "employee_id"] and s["tenant_id"].unique().to_list() == ["ACME"]
    full = pl.read_parquet(d / "xgboost-csv.parquet") if (d / "xgboost-csv.parquet").exists() else None
    m = AttritionModel.load(d / "xgboost")
    np.testing.assert_allclose(s["risk"].to_numpy(), m.predict_risk(ds.X.head(7)), atol=1e-9)
    if full is not None: assert s["risk"].to_list() == full["risk"].head(7).to_list()


@pytest.mark.parametrize("case, change, expect", [
    ("not yes/no", lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("Maybe")).otherwise(pl.col("OverTime")).alias("OverTime")),
     "column 'OverTime', row 5: 'Maybe' is not yes/no"),
    ("not a number", lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("lots")).otherwise(pl.col("MonthlyIncome")).alias("MonthlyIncome")),
     "column 'MonthlyIncome', row 3: 'lots' is not a number"),
    ("missing column", lambda f: f.drop("JobRole"), "column 'JobRole': the model was trained on this column but the file lacks it"),
    ("bad date", lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("31.02.2020")).otherwise(pl.col("HireDate")).alias("HireDate")),
     "column 'HireDate', row 2: '31.02.2020' is not a date (%Y-%m-%d)"),
])
def test_score_export_bad_cells_one_line(table_runs, case, change, expect):
    d, _ = table_runs
    change(pl.read_csv(d / "export.csv", infer_schema=False).head(6)).write_csv(d / "bad-export.csv")
    m = AttritionModel.load(d / "xgboost")
    if case == "bad date" and "HireDate" not in m.feature_names_: pytest.skip("HireDate is not a feature of this model")
    out = d / "never.parquet"
    r = hr_ml("score", "--model", d / "xgboost", "--data", d / "bad-export.csv", "--out", out, "--no-progress")
    msg = r.stderr.strip()
    assert r.returncode == 2 and len(msg.splitlines()) == 1 and "Traceback" not in msg and expect in msg, (case, msg)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["xgboost", "logistic"])
def test_api_takes_export_records(table_runs, kind, tmp_path):
    "POST /scores with an export's records as they are (Yes/No, dates as text, numbers as numbers): the same risk as hr-ml score."
    from fastapi.testclient import TestClient
    from hr_ml.score import load_model
    from hr_ml.serve import create_app, create_key
    d, ds = table_runs
    m = load_model(d / kind)
    _, secret = create_key("ACME", tmp_path)
    client = TestClient(create_app(m, tmp_path))
    rows = pl.read_csv(d / "export.csv").head(4).to_dicts()
    body = {"employees": [{"employee_id": str(r["EmployeeNumber"]), "features": {f: r[f] for f in m.feature_names_}} for r in rows]}
    assert {body["employees"][0]["features"][f] for f in ("OverTime",)} <= {"Yes", "No"}
    post = lambda b: client.post("/v1/tenants/ACME/attrition/scores", headers={"Authorization": f"Bearer {secret}"}, json=b)
    r = post(body)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose([e["risk"] for e in r.json()["employees"]], m.predict_risk(ds.X.head(4)), atol=1e-9)
    assert [e["employee_id"] for e in r.json()["employees"]] == ds.ids["employee_id"].head(4).to_list()
    yes = [0 if e["features"]["OverTime"] == "No" else True for e in body["employees"]]   # 0/1 and true/false are yes/no too
    r2 = post({"employees": [{**e, "features": {**e["features"], "OverTime": v}} for e, v in zip(body["employees"], yes)]})
    assert r2.status_code == 200 and r2.json()["employees"] == r.json()["employees"]
    body["employees"][1]["features"]["OverTime"] = "Maybe"
    bad = post(body)
    assert bad.status_code == 422 and "column 'OverTime', record 2: 'Maybe' is not yes/no" in bad.text


@pytest.mark.parametrize("kind", ["xgboost", "logistic"])
def test_api_what_if_on_export_columns(table_runs, kind, tmp_path):
    "A one-row model's actionable columns (read from their names) are offered by /what-if, with values as the export writes them."
    from fastapi.testclient import TestClient
    from hr_ml.explain import what_if, what_if_fact
    from hr_ml.score import load_model
    from hr_ml.serve import create_app, create_key
    from hr_ml.tabular import actionable_features
    d, ds = table_runs
    m = load_model(d / kind)
    act = actionable_features(m)
    assert {"MonthlyIncome", "OverTime"} <= act and not act & {"Age", "Gender", "Department", "JobSatisfaction"}, act
    _, secret = create_key("ACME", tmp_path)
    client = TestClient(create_app(m, tmp_path))
    row = pl.read_csv(d / "export.csv").filter(pl.col("OverTime") == "Yes").head(1).to_dicts()[0]
    feats = {f: row[f] for f in m.feature_names_}
    post = lambda change: client.post("/v1/tenants/ACME/attrition/what-if", headers={"Authorization": f"Bearer {secret}"},
                                      json={"employee_id": str(row["EmployeeNumber"]), "features": feats, "change": change})
    r = post({"feature": "OverTime", "value": "No"})
    assert r.status_code == 200, r.text
    x = ds.X.filter(pl.Series(ds.ids["employee_id"] == str(row["EmployeeNumber"])))
    ref = what_if(m, x, "OverTime", 0)
    assert abs(r.json()["new_risk"] - ref["new_risk"]) < 1e-9 and abs(r.json()["old_risk"] - ref["old_risk"]) < 1e-9
    r = post({"feature": "MonthlyIncome", "value": row["MonthlyIncome"] * 2.0})
    assert r.status_code == 200, r.text
    assert abs(r.json()["new_risk"] - what_if(m, x, "MonthlyIncome", row["MonthlyIncome"] * 2.0)["new_risk"]) < 1e-9
    assert post({"feature": "Department", "value": "Sales"}).status_code == 422   # not actionable
    fact = lambda f: client.post("/v1/tenants/ACME/attrition/what-if", headers={"Authorization": f"Bearer {secret}"},
                                 json={"employee_id": str(row["EmployeeNumber"]), "features": feats, "fact": f})
    r = fact({"name": "raise_pct", "value": 5})                  # a raise scales the export's pay column (and sets its raise percent)
    assert r.status_code == 200, r.text
    moved = {c["feature"]: c for c in r.json()["changed"]}
    assert abs(moved["MonthlyIncome"]["new"] - row["MonthlyIncome"] * 1.05) < 1e-6 and moved["PercentSalaryHike"]["new"] == 5, moved
    assert abs(r.json()["new_risk"] - what_if_fact(m, x, "raise_pct", 5)["new_risk"]) < 1e-12
    r = fact({"name": "weekly_hours", "value": 30})               # an export has no contract hours: not offered
    assert r.status_code == 422 and "raise_pct" in r.text, r.text
    drivers = client.post("/v1/tenants/ACME/attrition/scores", headers={"Authorization": f"Bearer {secret}"},
                          json={"employees": [{"employee_id": "1", "features": feats}]}).json()["employees"][0]["drivers"]
    assert all(dr["actionable"] == (dr["feature"] in act) for dr in drivers), drivers
    from hr_ml.explain import drivers as batch_drivers
    ref = batch_drivers(m, x).row(0, named=True)   # the API reads yes/no columns as yes/no, like hr-ml score
    assert [dr["text"] for dr in drivers] == [ref[f"driver_{j}_text"] for j in range(1, len(drivers) + 1)], (drivers, ref)
