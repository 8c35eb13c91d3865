"""The back-test over time: on data shaped like `make train`'s (fewer employees) it runs, without leakage, with sane numbers
and a reliability table; where it cannot run (a one-row export, too little history) the run stores why, in one line."""
import json
from datetime import date, timedelta

import pytest

from hr_ml import pipeline as P
from hr_ml.runs import job_params
from hr_ml.tabular import demo_export

DEFAULTS = job_params("train_attrition")     # the parameters `make train` runs with



@pytest.fixture(scope="module", autouse=True)
def one_thread():
    "BLAS and OpenMP on one thread in this process while this module runs (restored after): two threads spin-wait on a busy machine."
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1): yield

@pytest.fixture(scope="module")
def default_shaped():
    "The synthetic HRIS with the job's default history, snapshots and model, at 1,500 employees in 10 tenants."
    ds = P.load_dataset(None, None, DEFAULTS["as_of_dates"], DEFAULTS["horizon_months"], employees=1500, tenants=10,
                        seed=DEFAULTS["seed"], years=DEFAULTS["years"])
    # one xgboost thread: the same model bytes (hr_ml.attrition), without two threads spin-waiting on a machine shared with other work
    model, rep = P.choose_and_fit(ds, n_splits=3, n_repeats=1, seed=0, model_params={**DEFAULTS["model_params"], "n_jobs": 1},
                                  kind=DEFAULTS["model_kind"])
    return ds, model, rep, P.backtest(ds, model, DEFAULTS["horizon_months"], k=DEFAULTS["k_anon"])


def test_default_data_backtests_without_leakage(default_shaped):
    ds, _, _, bt = default_shaped
    assert bt["applicable"] is True
    year, h = bt["test_year"], DEFAULTS["horizon_months"]
    assert year == ds.snapshots["as_of"].dt.year().max()
    tr, te = bt["train_period"], bt["test_period"]
    closed = date.fromisoformat(tr["labels_closed_by"])
    assert closed == date(year - 1, 12, 31)
    last_label = date.fromisoformat(tr["last_snapshot"]) + timedelta(days=365 * h // 12)   # the last training label window
    assert last_label <= closed < date.fromisoformat(te["first_snapshot"])                   # closed before the test period
    assert te["first_snapshot"].startswith(str(year)) and te["last_snapshot"].startswith(str(year))
    assert 1 <= tr["n_snapshots"] <= ds.snapshots["as_of"].n_unique()                         # like the job, as far as the history allows
    assert 0 < bt["n_train_pos"] < bt["n_train"] and 0 < bt["n_test_pos"] < bt["n_test"]


def test_default_data_backtest_metrics_and_calibration(default_shaped):
    _, _, rep, bt = default_shaped
    assert 0.6 < bt["roc_auc"] < 0.95 and bt["pr_auc"] > bt["base_rate"]
    assert 0 < bt["brier"] < 0.25 and 0 <= bt["ece"] < 0.1
    for cal, n in ((bt["calibration"], bt["n_test"]), (rep["cv"][rep["chosen"]]["calibration"], None)):
        assert len(cal) >= 3 and [b["lo"] for b in cal] == sorted(b["lo"] for b in cal)
        for b in cal:
            assert b["suppressed"] == (b["n"] is None)
            if b["suppressed"]: assert b["predicted_mean"] is None and b["observed_rate"] is None
            else: assert b["n"] >= DEFAULTS["k_anon"] and b["lo"] <= b["predicted_mean"] <= b["hi"] and 0 <= b["observed_rate"] <= 1
    shown = [b for b in bt["calibration"] if not b["suppressed"]]
    assert sum(b["n"] for b in shown) <= bt["n_test"]
    assert sum(b["n"] * abs(b["predicted_mean"] - b["observed_rate"]) for b in shown) / bt["n_test"] <= bt["ece"] + 1e-12
    assert json.loads(json.dumps(bt)) == bt                                                   # plain JSON, as metrics.json stores it


def test_too_little_history_is_not_applicable(default_shaped):
    _, model, _, _ = default_shaped
    ds = P.load_dataset(employees=300, tenants=2, seed=1, years=3)       # records from 2023: none a year old by 2023-12-31
    bt = P.backtest(ds, model)
    assert bt["applicable"] is False and set(bt) == {"applicable", "reason"}
    assert "more history" in bt["reason"] and "\n" not in bt["reason"]


def test_one_row_export_stores_not_applicable(tmp_path):
    """A one-row-per-employee export: the back-test is not applicable, in one line; the CV calibration is there all the same; the
    model card says why. Here on the pipeline's functions, as the job calls them; the job storing this in metrics.json and
    model_card.md is checked end to end on this very export and command in test_train_job.py::test_byo_export_trains."""
    from hr_ml.cards import _over_time
    demo_export(n=800, seed=2).write_csv(tmp_path / "export.csv")
    (tmp_path / "mapping.yaml").write_text('id: EmployeeNumber\ntarget: Attrition\npositive: "Yes"\nprotected: [Age, Gender, MaritalStatus]\n')
    ds = P.load_dataset(tmp_path / "export.csv", tmp_path / "mapping.yaml", n_splits=3)          # as `-p n_splits=3`
    assert ds.kind == "table"
    model, rep = P.choose_and_fit(ds, n_splits=3, n_repeats=1, seed=DEFAULTS["seed"], model_params={"n_estimators": 40, "n_jobs": 1},
                                  kind=DEFAULTS["model_kind"], k=DEFAULTS["k_anon"])
    bt = P.backtest(ds, model, DEFAULTS["horizon_months"], k=DEFAULTS["k_anon"])
    m = json.loads(json.dumps({"backtest": bt, "chosen_model": rep["chosen"], "cv": rep["cv"]}, default=str))   # as metrics.json stores it
    assert m["backtest"] == {"applicable": False, "reason": P._NO_DATES} and "\n" not in m["backtest"]["reason"]
    assert m["cv"][m["chosen_model"]]["calibration"]                                          # CV calibration is there all the same
    assert _over_time(m) == f"**Back-test over time**: not applicable: {P._NO_DATES}."          # the model card's line
