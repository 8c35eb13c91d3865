"In-process checks of hr_ml.synth: byte-identical output per seed, truth.json contents, and the oracle AUC."
import hashlib, json
from datetime import date
import numpy as np
import pytest
from hr_ml.synth import generate, write_synth, auc, exit_hazard, DRIVERS

TABLES = ["employees", "compensation", "absences", "reviews", "job_changes", "timesheets"]

def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

@pytest.fixture(scope="module")
def small(): return generate(3000, 8, seed=7)

def test_same_seed_byte_identical(tmp_path, small):
    again = generate(3000, 8, seed=7)
    a, b = write_synth(*small, tmp_path / "a"), write_synth(*again, tmp_path / "b")
    da = _digest(a)
    assert sorted(da) == sorted([f"{t}.parquet" for t in TABLES] + ["truth.json"])
    assert da == _digest(b)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]      # no temp folder left behind

def test_other_seed_differs(tmp_path, small):
    a = write_synth(*small, tmp_path / "a")
    b = write_synth(*generate(3000, 8, seed=8), tmp_path / "b")
    da, db = _digest(a), _digest(b)
    assert all(da[k] != db[k] for k in da)

def test_truth_keys_and_oracle(tmp_path, small):
    tables, truth = small
    t = json.loads((write_synth(tables, truth, tmp_path / "o") / "truth.json").read_text())
    for k in ["generator", "version", "seed", "params", "end_date", "drivers", "null_features", "protected_attributes",
              "proxies", "pay_gap", "oracle"]: assert k in t
    assert {d["feature"]: d["direction"] for d in t["drivers"]} == {
        "overtime_ratio": "+", "months_since_raise": "+", "compa_ratio": "-", "manager_changes_12m": "+",
        "last_rating": "-", "sick_days_trend": "+"}
    assert all({"feature", "direction", "log_hazard_coef", "description"} <= set(d) for d in t["drivers"])
    assert t["null_features"] == ["vacation_ratio", "location", "department"]
    assert {"protected": "gender", "feature": "part_time"} in [{k: p[k] for k in ("protected", "feature")} for p in t["proxies"]]
    assert set(t["pay_gap"]) >= {"unexplained_pct", "grouping", "raw_gap_pct"} and t["pay_gap"]["unexplained_pct"] == 4.0
    o = t["oracle"]
    assert o["as_of"] == "2024-12-31" and o["horizon_months"] == 12
    assert 0.65 <= o["auc"] <= 0.95 and 0 < o["n_exits"] < o["n"]
    assert t["params"]["n_employees"] == 3000 and tables["employees"].height == 3000

def test_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    y, s = rng.random(500) < 0.2, np.round(rng.random(500), 2)               # many ties
    assert abs(auc(y, s) - roc_auc_score(y, s)) < 1e-12

def test_features_recover_oracle(small):
    "hr_ml.features computes the planted drivers from the tables alone: same population, same oracle AUC."
    from hr_ml.features import build_features
    tables, truth = small
    o = truth["oracle"]
    f = build_features(tables, date.fromisoformat(o["as_of"]), horizon_months=12)
    p = 1 - (1 - exit_hazard(f.select([d["feature"] for d in DRIVERS]).to_numpy().astype(float))) ** 12
    assert (f.height, int(f["label"].sum())) == (o["n"], o["n_exits"])
    assert abs(auc(f["label"].to_numpy(), p) - o["auc"]) < 1e-6

def test_refuses_bad_sizes(tmp_path):
    from hr_ml.schema import HRDataError
    with pytest.raises(HRDataError, match="at least 5 employees"): generate(20, 10)
    (tmp_path / "x").mkdir(); (tmp_path / "x" / "f").write_text("")
    with pytest.raises(HRDataError, match="not empty"): write_synth(*generate(100, 2), tmp_path / "x")
