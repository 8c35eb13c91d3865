"In-process checks of hr_ml.synth: byte-identical output per seed, truth.json contents, the planted shapes and the true oracle."
import copy, hashlib, json
from datetime import date
import numpy as np
import polars as pl
import pytest
import hr_ml.synth as synth
from hr_ml.synth import generate, write_synth, auc, exit_hazard, planted_effects, DRIVERS

TABLES = ["employees", "compensation", "absences", "reviews", "job_changes", "timesheets"]

def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

@pytest.fixture(scope="module")
def small(): return generate(3000, 8, seed=7)

@pytest.fixture(scope="module")
def snapshot(small):
    "Features of the oracle's as-of snapshot, computed from the tables alone."
    from hr_ml.features import build_features
    tables, truth = small
    return build_features(tables, date.fromisoformat(truth["oracle"]["as_of"]), horizon_months=12)

def test_same_seed_byte_identical(tmp_path, small):
    again = generate(3000, 8, seed=7)
    a, b = write_synth(*small, tmp_path / "a"), write_synth(*again, tmp_path / "b")
    da = _digest(a)
    assert sorted(da) == sorted([f"{t}.parquet" for t in TABLES] + ["truth.json"])
    assert da == _digest(b)                                                  # the oracle too (truth.json)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]      # no temp folder left behind

def test_other_seed_differs(tmp_path, small):
    a = write_synth(*small, tmp_path / "a")
    b = write_synth(*generate(3000, 8, seed=8), tmp_path / "b")
    da, db = _digest(a), _digest(b)
    assert all(da[k] != db[k] for k in da)

def test_truth_keys_and_oracle(tmp_path, small):
    tables, truth = small
    t = json.loads((write_synth(tables, truth, tmp_path / "o") / "truth.json").read_text())
    for k in ["generator", "version", "seed", "params", "end_date", "hazard", "drivers", "interactions", "manager_effect",
              "seasonality", "promotion", "job_market", "null_features", "protected_attributes", "proxies", "pay_gap",
              "oracle"]: assert k in t
    assert {d["feature"]: d["direction"] for d in t["drivers"]} == {
        "tenure_years": "non-monotone", "compa_ratio": "non-monotone", "overtime_ratio": "+", "months_since_raise": "+",
        "manager_changes_12m": "+", "last_rating": "-", "sick_days_trend": "+"}
    assert all({"feature", "direction", "form", "params", "description"} <= set(d) for d in t["drivers"])
    assert {d["form"] for d in t["drivers"]} <= set(t["hazard"]["forms"])
    assert [i["features"] for i in t["interactions"]] == [["overtime_ratio", "compa_ratio"], ["overtime_ratio", "last_rating"]]
    assert {"form", "params", "description"} <= set(t["manager_effect"]) and len(t["seasonality"]["params"]["values"]) == 12
    assert set(t["job_market"]["params"]["job_family"]) == set(synth.FAMILIES)
    assert t["null_features"] == ["vacation_ratio", "department"]
    assert {"protected": "gender", "feature": "part_time"} in [{k: p[k] for k in ("protected", "feature")} for p in t["proxies"]]
    assert set(t["pay_gap"]) >= {"unexplained_pct", "grouping", "raw_gap_pct"} and t["pay_gap"]["unexplained_pct"] == 4.0
    o = t["oracle"]
    assert o["as_of"] == "2024-12-31" and o["horizon_months"] == 12 and o["replays"] == synth._ORACLE_R
    assert 0.65 <= o["auc"] <= 0.95 and 0 < o["n_exits"] < o["n"] and not o["sampled"] and o["n_scored"] == o["n"]
    assert 0.08 <= o["exit_rate"] <= 0.22                                   # voluntary turnover of 8-22% a year
    assert t["params"]["n_employees"] == 3000 and tables["employees"].height == 3000

def test_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    y, s = rng.random(500) < 0.2, np.round(rng.random(500), 2)               # many ties
    assert abs(auc(y, s) - roc_auc_score(y, s)) < 1e-12

def test_features_recover_planted_drivers(small, snapshot):
    "hr_ml.features computes the planted drivers from the tables alone: planted_effects on them gives the generator's hazard."
    _, truth = small
    o, f = truth["oracle"], snapshot
    assert (f.height, int(f["label"].sum())) == (o["n"], o["n_exits"])
    p = 1 - (1 - exit_hazard(truth, f)) ** 12
    assert abs(auc(f["label"].to_numpy(), p) - o["auc_planted_drivers"]) < 1e-6

def test_planted_effects_follow_the_truth(small, snapshot):
    "planted_effects reads the truth dict: a wrong sign or a wrong shape in a copy gives other values; missing values give 0."
    _, truth = small
    eff = planted_effects(truth, snapshot)
    assert set(eff) == {d["feature"] for d in truth["drivers"]} | {"job_family", "location"}
    assert all(v.shape == (snapshot.height,) and np.isfinite(v).all() for v in eff.values())
    sign = copy.deepcopy(truth); sign["drivers"][1]["params"]["coef_below"] *= -1            # compa: wrong sign
    shape = copy.deepcopy(truth); shape["drivers"][0]["params"]["values"].reverse()          # tenure: wrong shape
    inter = copy.deepcopy(truth); inter["interactions"][0]["params"]["coef"] = 0.0           # no overtime x pay
    low = snapshot["compa_ratio"].to_numpy() < 0.95
    assert planted_effects(sign, snapshot)["compa_ratio"][low].mean() < 0 < eff["compa_ratio"][low].min()
    assert not np.allclose(planted_effects(shape, snapshot)["tenure_years"], eff["tenure_years"])
    changed = planted_effects(inter, snapshot)
    assert not np.allclose(changed["overtime_ratio"], eff["overtime_ratio"]) and np.allclose(changed["tenure_years"], eff["tenure_years"])
    miss = snapshot["overtime_ratio"].is_null().to_numpy() & snapshot["last_rating"].is_null().to_numpy()
    assert miss.any() and (eff["overtime_ratio"][miss] == 0).all() and (eff["last_rating"][miss] == 0).all()
    half = planted_effects(truth, snapshot.select("overtime_ratio", "compa_ratio"))            # the interaction is split in halves
    full = synth._interaction(truth["interactions"][0], snapshot["overtime_ratio"].cast(pl.Float64).to_numpy(),
                              snapshot["compa_ratio"].to_numpy())
    main = sum(synth._main_effect(d, snapshot[d["feature"]].cast(pl.Float64).to_numpy()) for d in truth["drivers"]
               if d["feature"] in ("overtime_ratio", "compa_ratio"))
    np.testing.assert_allclose(half["overtime_ratio"] + half["compa_ratio"], main + full)

def test_planted_shapes(small):
    "Tenure: low at first, a peak between one and two years, then lower. Compa-ratio: strong below 0.95, flat, up again far above."
    _, truth = small
    ten = np.linspace(0, 15, 301)
    e = planted_effects(truth, pl.DataFrame({"tenure_years": ten}))["tenure_years"]
    assert 1.0 <= ten[np.argmax(e)] <= 2.0 and e[0] < e.max() - 2 and e[-1] < e.max() - 0.5
    c = np.linspace(0.7, 1.5, 161)
    e = planted_effects(truth, pl.DataFrame({"compa_ratio": c}))["compa_ratio"]
    flat = (c >= 0.95) & (c <= 1.2)
    assert np.ptp(e[flat]) == 0 and (np.diff(e[c < 0.95]) < 0).all() and (np.diff(e[c > 1.25]) > 0).all()
    assert e[c <= 0.85].min() > e[(c > 1.25) & (c <= 1.35)].max() > 0     # above: a little, below: a lot

def test_oracle_is_an_upper_bound(small, snapshot):
    "The replayed oracle ranks better than the frozen hazard and than a logistic regression fitted (in sample) on the features."
    from sklearn.linear_model import LogisticRegression
    _, truth = small
    o = truth["oracle"]
    assert o["auc"] > o["auc_frozen_hazard"] > 0.6 and o["auc"] > o["auc_planted_drivers"]
    num = [c for c in snapshot.columns if c not in ("label", "label_complete") and snapshot[c].dtype.is_numeric() and not c.startswith("prot_")]
    X = snapshot.select(num).to_numpy().astype(float); X = np.where(np.isnan(X), np.nanmedian(X, axis=0), X)
    X = (X - X.mean(0)) / (X.std(0) + 1e-9); y = snapshot["label"].to_numpy()
    simple = auc(y, LogisticRegression(max_iter=1000).fit(X, y).predict_proba(X)[:, 1])
    assert o["auc"] > simple + 0.02, (o["auc"], simple)

def test_oracle_sample_and_tables_unchanged(small, monkeypatch):
    "Above _ORACLE_MAX employees the oracle replays whole tenants only; the replays never change the tables."
    monkeypatch.setattr(synth, "_ORACLE_MAX", 1000); monkeypatch.setattr(synth, "_ORACLE_R", 2)
    tables, truth = generate(3000, 8, seed=7)
    o = truth["oracle"]
    assert o["sampled"] and 0 < o["n_scored"] < o["n"] and o["replays"] == 2 and "sample" in o["score"]
    assert all(tables[k].equals(small[0][k]) for k in TABLES)
    assert (o["n"], o["n_exits"], o["auc_frozen_hazard"]) == tuple(small[1]["oracle"][k] for k in ("n", "n_exits", "auc_frozen_hazard"))

def test_refuses_bad_sizes(tmp_path):
    from hr_ml.schema import HRDataError
    with pytest.raises(HRDataError, match="at least 5 employees"): generate(20, 10)
    (tmp_path / "x").mkdir(); (tmp_path / "x" / "f").write_text("")
    with pytest.raises(HRDataError, match="not empty"): write_synth(*generate(100, 2), tmp_path / "x")
