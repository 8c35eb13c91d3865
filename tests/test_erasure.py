"""Erasure that can be proven: train a tiny run through the CLI (tracked to its MLflow store), score, audit, erase one
employee, then read every file under the output folders (Parquet parsed, the rest as bytes) and find the id nowhere."""
import json, os
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from conftest import hr_ml_inprocess
from hr_ml.score import load_model
from hr_ml.serve import AuditLog


def hr_ml(*args, cwd):
    "`hr-ml ARGS` in this process, in `cwd` (tests/test_journey.py runs these commands as processes)."
    env = {k: v for k, v in os.environ.items() if k != "HR_ML_TRACKING_URI"}  # the store beside the runs folder
    return hr_ml_inprocess(*args, cwd=cwd, env=env)


def holds(f:Path, needle:str)->bool:
    "Whether file `f` holds `needle`: a Parquet file in any string cell or its metadata, any other file in its bytes."
    if f.suffix == ".parquet":
        meta = pq.read_schema(f).metadata or {}
        if any(needle.encode() in k + v for k, v in meta.items()): return True
        df = pl.read_parquet(f)
        return any(df[c].cast(pl.String).str.contains(needle, literal=True).any() for c in df.columns if df[c].dtype in (pl.String, pl.Categorical) or c.endswith("_id"))
    return needle.encode() in f.read_bytes()


def every_file(*roots):
    for r in roots:
        r = Path(r)
        yield from ([r] if r.is_file() else sorted(p for p in r.rglob("*") if p.is_file()))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("erasure")
    r = hr_ml("synth", "--employees", 300, "--tenants", 3, "--seed", 0, "--out", "data", "--no-progress", cwd=d)
    assert r.returncode == 0, r.stderr
    r = hr_ml("train", "attrition", "--data", "data", "-p", "n_boot=20", "-p", "n_splits=3", "-p", "n_repeats=1",
              "-p", "model_params={n_estimators: 40, max_depth: 3, n_jobs: 1}", "--out", "runs", "--no-progress", cwd=d)
    assert r.returncode == 0, r.stderr
    run = next((d / "runs" / "attrition").iterdir())
    assert (d / "mlruns" / "mlflow.db").exists(), r.stdout
    r = hr_ml("score", "--model", run, "--data", "data", "--out", "scores.parquet", "--no-progress", cwd=d)
    assert r.returncode == 0, r.stderr
    dr = pl.read_parquet(run / "drivers.parquet")
    sc = pl.read_parquet(d / "scores.parquet")
    both = dr.join(sc.select("tenant_id", "employee_id"), on=["tenant_id", "employee_id"])
    target, other = both.row(0, named=True), both.row(1, named=True)
    log = AuditLog(d / "serving")  # the service's audit lines for both, as a scoring request writes them
    log.write([{"tenant": e["tenant_id"], "employee": log.pseudonym(e["tenant_id"], e["employee_id"]), "route": "scores",
                "risk": e["risk"], "bucket": e["bucket"]} for e in (target, other)])
    return d, run, target, other


def test_reports_carry_no_ids(world):
    d, run, target, other = world
    ids = pl.read_parquet(run / "drivers.parquet")["employee_id"].to_list()
    for f in ("executed.ipynb", "report.html", "model_card.md", "model_card.html", "metrics.json", "fairness.json", "reference_profile.json"):
        text = (run / f).read_text(encoding="utf-8")
        assert not [i for i in ids if i in text], f  # aggregates and pseudonymous examples only
    assert "an employee" in (run / "report.html").read_text(encoding="utf-8")


def test_erase_leaves_the_id_nowhere(world):
    d, run, target, other = world
    T, E = target["tenant_id"], target["employee_id"]
    roots = [d / "runs", d / "mlruns", d / "serving", d / "scores.parquet"]
    before = [f for f in every_file(*roots) if holds(f, E)]
    assert {f.name for f in before} >= {"drivers.parquet", "scores.parquet"}, before  # the search can find it
    assert any("mlruns" in f.parts for f in before), before                          # the MLflow copy holds it too
    r = hr_ml("erase", "--tenant", T, "--employee", E, "--scores", "scores.parquet", "--state", "serving", cwd=d)
    assert r.returncode == 0, r.stderr
    assert "audit_lines 1" in r.stdout and "score_rows 1" in r.stdout and "run_rows 1" in r.stdout and "mlflow_rows 1" in r.stdout, r.stdout
    assert "drivers.parquet: 1 removed" in r.stdout and "scores.parquet: 1 removed" in r.stdout, r.stdout
    left = [str(f) for f in every_file(*roots) if holds(f, E)]
    assert left == [], left
    # the others stay: only one employee was erased
    assert holds(run / "drivers.parquet", other["employee_id"]) and holds(d / "scores.parquet", other["employee_id"])
    audit = [json.loads(l) for f in (d / "serving" / "audit").glob("*.jsonl") for l in f.read_text().splitlines()]
    assert len(audit) == 1
    # the run still loads: its manifest was re-hashed, the model untouched; the MLflow copy verifies too
    m = load_model(run)
    assert m.registry_["sha256"] == json.loads((run / "manifest.json").read_text())["model_sha256"]
    copy = next(p.parent for p in (d / "mlruns").rglob("manifest.json"))
    assert json.loads((copy / "manifest.json").read_text())["files"]["drivers.parquet"] == json.loads((run / "manifest.json").read_text())["files"]["drivers.parquet"]
    load_model(copy)
    # a second erase finds nothing and says so
    r = hr_ml("erase", "--tenant", T, "--employee", E, "--scores", "scores.parquet", "--state", "serving", cwd=d)
    assert r.returncode == 0 and "no file held the employee" in r.stdout, r.stdout + r.stderr
