"""`hr-ml score` end to end: a whole (small) population from an HRIS export or a features file, chunked or not, into one
Parquet file that says which model scored it; bad inputs give one line and exit 2 and leave no file behind."""
import json, subprocess, sys
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

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
    return subprocess.run([sys.executable, "-m", "hr_ml.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


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
    assert info["run"] == "run" and info["sha256"] == json.loads((d / "run" / "model.json").read_text())["model_sha256"]
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
