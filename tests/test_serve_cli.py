"""The scoring service through the `hr-ml` command, as an operator runs it: `keys create/list/revoke`, `serve` in its
own process, one scored employee over HTTP, `erase`; bad input gives one line and exit 2."""
import datetime as dt, re
from pathlib import Path

import httpx
import polars as pl
import pytest

from conftest import hr_ml_inprocess, hr_ml_serve, stop_server
from hr_ml.attrition import AttritionModel
from hr_ml.features import FEATURES, build_features
from hr_ml.synth import generate


def hr_ml(*args, cwd=None):
    """`hr-ml ARGS` in this process (the same typer app, exit codes and stderr); `hr-ml serve` itself runs as a process
    below, and tests/test_journey.py runs `keys` and `erase` as processes."""
    return hr_ml_inprocess(*args, cwd=cwd, show_warnings=True)   # warnings a plain `python` prints reach stderr too


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve_cli")
    tables, _ = generate(n_employees=1200, n_tenants=4, seed=5)
    snap = build_features(tables, dt.date(2024, 12, 31))
    AttritionModel(n_estimators=20, max_depth=3, early_stopping_rounds=None, n_jobs=1).fit(snap.select(FEATURES), snap["label"]).save(d / "run")
    AttritionModel(kind="logistic").fit(snap.select(FEATURES), snap["label"]).save(d / "logistic")
    return d, snap


def test_keys_serve_score_revoke_erase(setup):
    d, snap = setup
    state = d / "state"
    A = snap["tenant_id"][0]
    r = hr_ml("keys", "create", "--tenant", A, "--label", "payroll backend", "--state", state)
    assert r.returncode == 0, r.stderr
    key_id, secret = re.search(r"key (\S+) for tenant", r.stdout).group(1), r.stdout.strip().splitlines()[-1]
    assert secret not in (state / "keys.json").read_text()  # only its hash is stored
    r = hr_ml("keys", "list", "--state", state)
    assert r.returncode == 0 and key_id in r.stdout and A in r.stdout and secret not in r.stdout
    proc, url = hr_ml_serve("--model", d / "run", "--state", state, "--max-batch", "5")
    try:
        row = snap.row(0, named=True)
        body = {"employees": [{"employee_id": row["employee_id"], "features": {f: row[f] for f in FEATURES}}]}
        path = f"{url}/v1/tenants/{A}/attrition/scores"
        r = httpx.post(path, json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
        assert r.status_code == 200, r.text
        got = r.json()
        risk = AttritionModel.load(d / "run").predict_risk(snap.head(1).select(FEATURES))[0]
        assert abs(got["employees"][0]["risk"] - risk) < 1e-9, got
        assert httpx.post(path, json=body, timeout=30).status_code == 401
        big = {"employees": body["employees"] * 6}
        assert httpx.post(path, json=big, headers={"Authorization": f"Bearer {secret}"}, timeout=30).status_code in (413, 422)  # --max-batch 5
        r = hr_ml("keys", "revoke", key_id, "--state", state)
        assert r.returncode == 0 and f"revoked key {key_id}" in r.stdout
        assert httpx.post(path, json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=30).status_code == 401  # no restart needed
    finally:
        stop_server(proc)
    lines = [l for f in (state / "audit").glob("*.jsonl") for l in f.read_text().splitlines()]
    assert len(lines) == 1 and row["employee_id"] not in lines[0]
    r = hr_ml("erase", "--tenant", A, "--employee", row["employee_id"], "--state", state, cwd=state.parent)  # away from any runs/ of the checkout
    assert r.returncode == 0, r.stderr
    assert "audit_lines 1" in r.stdout, r.stdout
    assert not [l for f in (state / "audit").glob("*.jsonl") for l in f.read_text().splitlines()]


@pytest.mark.parametrize("args, expect", [
    (["serve", "--model", "{d}/nowhere/run"], "no such run folder"),
    (["erase", "--tenant", "t1", "--employee", "e1", "--state", "{d}/state2", "--scores", "{d}/missing.parquet"], "missing.parquet: score file not found"),
    (["keys", "revoke", "nokey", "--state", "{d}/state3"], "nokey"),
    (["serve", "--model", "{d}/run", "--retention-days", "0"], "--retention-days 0: must be positive"),
])
def test_service_commands_bad_input_one_line(setup, args, expect):
    import uvicorn
    d, _ = setup
    with pytest.MonkeyPatch.context() as mp:   # in this process a bad input that got through would serve forever: fail instead
        mp.setattr(uvicorn.Server, "run", lambda self, *a, **kw: pytest.fail("hr-ml serve started on a bad input"))
        r = hr_ml(*[a.format(d=d) for a in args], cwd=d)
    msg = r.stderr.strip()
    assert r.returncode == 2 and len(msg.splitlines()) == 1 and "Traceback" not in msg and expect in msg, (r.returncode, r.stdout, msg)


def test_serve_logistic_model(setup):
    "A logistic model runs no numba code, so numba's threading layer is never initialised: serve must still start and score."
    d, snap = setup
    state = d / "state_logistic"
    A = snap["tenant_id"][0]
    r = hr_ml("keys", "create", "--tenant", A, "--label", "hris", "--state", state)
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip().splitlines()[-1]
    proc, url = hr_ml_serve("--model", d / "logistic", "--state", state)
    try:
        assert httpx.get(f"{url}/health", timeout=30).json() == {"status": "ok"}
        rows = snap.head(2)
        body = {"employees": [{"employee_id": r_["employee_id"], "features": {f: r_[f] for f in FEATURES}} for r_ in rows.iter_rows(named=True)]}
        r = httpx.post(f"{url}/v1/tenants/{A}/attrition/scores", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
        assert r.status_code == 200, r.text
        risk = AttritionModel.load(d / "logistic").predict_risk(rows.select(FEATURES))
        got = [e["risk"] for e in r.json()["employees"]]
        assert len(got) == 2 and max(abs(a - b) for a, b in zip(got, risk)) < 1e-9, (got, risk)
        assert all(e["drivers"] for e in r.json()["employees"]), r.json()
    finally:
        stop_server(proc)
