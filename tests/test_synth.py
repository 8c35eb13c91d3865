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

# --- the planted intervention (issue 16) ---
from hr_ml.synth import risk_bucket, BUCKETS, INTERVENTIONS
from hr_ml.schema import HRDataError
START = date(2024, 7, 1)
IV_COLS = ["tenant_id", "employee_id", "unit_id", "stratum", "arm", "assigned_on", "risk", "bucket", "complied", "unit"]

@pytest.fixture(scope="module")
def pay_review(): return generate(3000, 8, seed=7, intervention=dict(start=START, kind="pay_review"))

def test_intervention_none_is_byte_identical(tmp_path, small):
    "intervention=None takes no new code path: the same files (tables and truth.json) as without the argument."
    a = write_synth(*small, tmp_path / "a")
    b = write_synth(*generate(3000, 8, seed=7, intervention=None), tmp_path / "b")
    assert _digest(a) == _digest(b) and "intervention" not in small[1] and "interventions" not in small[0]

def test_intervention_leaves_the_past_alone(small, pay_review):
    "Everything dated before the start is as in the world without the intervention (the assignment has its own random stream)."
    for t, c in [("compensation", "effective_date"), ("reviews", "review_date"), ("job_changes", "effective_date"),
                 ("absences", "start_date"), ("employees", "termination_date")]:
        assert small[0][t].filter(pl.col(c) < START).equals(pay_review[0][t].filter(pl.col(c) < START)), t
    assert small[0]["employees"].drop("termination_date", "termination_type", "manager_id", "job_level", "department").equals(
        pay_review[0]["employees"].drop("termination_date", "termination_type", "manager_id", "job_level", "department"))

def test_intervention_assignment(pay_review):
    tables, truth = pay_review
    a = tables["interventions"]
    assert a.columns == IV_COLS and a["assigned_on"].dtype == pl.Date and a["complied"].dtype == pl.Boolean
    assert (a["assigned_on"] == START).all() and a.select(pl.col("employee_id").is_unique().all()).item()
    staff = tables["employees"].filter((pl.col("hire_date") < START) & (pl.col("termination_date").is_null() | (pl.col("termination_date") >= START)))
    assert sorted(staff["employee_id"]) == sorted(a["employee_id"])            # everybody employed the day before the start
    assert (a["bucket"].to_numpy() == risk_bucket(a["risk"].to_numpy())).all() and set(a["bucket"]) == set(BUCKETS)
    assert a.filter(pl.col("stratum").str.ends_with("pooled")).height < 10
    assert a.filter(~pl.col("stratum").str.ends_with("pooled")).select((pl.col("stratum") == pl.concat_str("tenant_id", pl.lit("|"), "bucket")).all()).item()
    assert (a["unit"] == "employee").all()
    assert (a["unit_id"] == a["employee_id"]).all()
    d = a.group_by("stratum").agg(t=(pl.col("arm") == "treatment").sum().cast(pl.Int64), n=pl.len().cast(pl.Int64))
    assert ((2 * d["t"] - d["n"]).abs() <= 1).all()                              # balanced within tenant x bucket
    assert a["complied"].all() and set(a["arm"]) == {"treatment", "control"}
    n = truth["intervention"]["n"]
    assert (n["assigned"], n["treatment"]) == (a.height, int((a["arm"] == "treatment").sum()))
    again = generate(3000, 8, seed=7, intervention=dict(start=START, kind="pay_review"))[0]["interventions"]
    assert again.equals(a)                                                       # reproducible
    other = generate(3000, 8, seed=7, intervention=dict(start=START, kind="pay_review", seed_offset=1))[0]["interventions"]
    assert other.drop("arm").equals(a.drop("arm")) and not other["arm"].equals(a["arm"])   # same people, another draw

def test_intervention_truth_shapes(pay_review):
    "Negative where planted, 0 for the low bucket and the fairly paid, strongest in the high bucket; exact, JSON-ready."
    t = json.loads(json.dumps(pay_review[1]["intervention"]))
    assert t["start"] == "2024-07-01" and t["kind"] == "pay_review" and t["horizon_months"] == 12 and t["hazard_months_simulated"] == 12
    for o in ("voluntary", "any_exit"):
        e = t["effects"][o]["itt"]
        assert e["bucket"]["low"] == 0 and e["driver_group"]["not_underpaid"] == 0
        assert e["bucket"]["high"] < e["bucket"]["medium"] < e["ate"] < 0 and e["driver_group"]["underpaid"] < e["ate"]
        assert t["effects"][o]["complier"] == e                                  # full compliance
    assert t["ate"] == t["effects"]["voluntary"]["itt"]["ate"]
    cr = t["effects"]["voluntary"]["control_risk"]["bucket"]
    assert cr["low"] < cr["medium"] < cr["high"]

def test_intervention_effect_shows_in_the_tables():
    "Realised differences in 12-month resignations between the arms match the planted ITT effects, up to sampling noise."
    tables, truth = generate(9000, 50, seed=11, intervention=dict(start=START, kind="pay_review"))
    ti = truth["intervention"]; e, nb = ti["effects"]["voluntary"]["itt"], ti["n"]["bucket"]
    y = tables["interventions"].join(tables["employees"], on=["tenant_id", "employee_id"]).with_columns(
        vol=(pl.col("termination_type") == "voluntary").fill_null(False) & (pl.col("termination_date") < date(2025, 7, 1)))
    def diff(d):
        (pc, nc), (pt, nt) = d.group_by("arm").agg(m=pl.col("vol").mean(), n=pl.len()).sort("arm").select("m", "n").rows()
        return pt - pc, np.sqrt(pc * (1 - pc) / nc + pt * (1 - pt) / nt)
    at_risk = (nb["medium"] * e["bucket"]["medium"] + nb["high"] * e["bucket"]["high"]) / (nb["medium"] + nb["high"])
    for d, planted in [(y, e["ate"]), (y.filter(pl.col("bucket") == "low"), 0.0), (y.filter(pl.col("bucket") != "low"), at_risk)]:
        got, se = diff(d)
        assert abs(got - planted) < 3 * se, (got, planted, se)
    got, se = diff(y.filter(pl.col("bucket") != "low"))
    assert at_risk < -0.1 and got < -2 * se                                     # visible where planted

def test_intervention_null_noncompliance_clusters():
    _, t0 = generate(1500, 10, seed=3, intervention=dict(start=START, kind="null"))
    for o in t0["intervention"]["effects"].values():
        for k in ("itt", "complier"):
            assert o[k]["ate"] == 0 and set(o[k]["bucket"].values()) == {0} and set(o[k]["driver_group"].values()) == {0}
    tb, tt = generate(3000, 8, seed=7, intervention=dict(start=START, kind="stay_interview", unit="team", noncompliance=0.3))
    a, v = tb["interventions"], tt["intervention"]["effects"]["voluntary"]
    assert a.group_by("unit_id").agg(pl.col("arm").n_unique())["arm"].max() == 1              # whole teams
    assert set(tt["intervention"]["n"]["driver_group"]) == {"manager_change", "not_manager_change"}
    assert v["itt"]["driver_group"]["not_manager_change"] == 0 and v["complier"]["ate"] < v["itt"]["ate"] < 0
    tr = a.filter(pl.col("arm") == "treatment")
    assert 0.55 < tr["complied"].mean() < 0.85 and a.filter(pl.col("arm") == "control")["complied"].all()
    tiny = generate(1200, 80, seed=3, intervention=dict(start=START))[0]["interventions"]     # small tenants: strata of one
    n = tiny.group_by("stratum").len()
    assert n.filter(pl.col("stratum").str.ends_with("|pooled")).height > 0 and n.filter(pl.col("stratum") != "pooled")["len"].min() >= 2
    te = generate(1500, 10, seed=3, intervention=dict(start=START, unit="tenant"))[0]["interventions"]
    assert (te["unit_id"] == te["tenant_id"]).all() and set(te["stratum"]) <= {*BUCKETS, "pooled"}
    assert a.select((pl.col("unit_id").str.split("/").list.first() == pl.col("tenant_id")).all()).item()   # tenant/manager
    assert te.group_by("tenant_id").agg(pl.col("arm").n_unique())["arm"].max() == 1

@pytest.mark.parametrize("iv,msg", [(dict(start=date(2026, 3, 1)), "after end_date"), (dict(start=date(2019, 1, 1)), "not after the first"),
                                    (dict(start=START, kind="bonus"), "kind='bonus'"), (dict(start=START, unit="dept"), "unit='dept'"),
                                    (dict(start=START, share=0), "share=0"), (dict(start=START, noncompliance=1), "noncompliance=1"),
                                    (dict(start="soon"), "start='soon'"), (dict(start=START, arms=3), "'arms' unknown")])
def test_intervention_bad_inputs(iv, msg):
    with pytest.raises(HRDataError, match=msg) as e: generate(300, 5, seed=1, intervention=iv)
    assert "\n" not in str(e.value)

def test_intervention_written_beside_the_hris(tmp_path, pay_review):
    from hr_ml.io import read_hris
    out = write_synth(*pay_review, tmp_path / "w")
    assert sorted(read_hris(out)) == sorted(TABLES)                             # the folder is still an HRIS export
    assert pl.read_parquet(out / "experiment" / "assignments.parquet").equals(pay_review[0]["interventions"])
    assert json.loads((out / "truth.json").read_text())["intervention"]["ate"] == pay_review[1]["intervention"]["ate"]

@pytest.mark.parametrize("unit", ["employee", "team", "tenant"])
def test_intervention_table_is_an_assignment_file(unit):
    "The synthetic world's assignments have the columns, types, units and strata that hr_ml.experiment.assign writes."
    from hr_ml.experiment import assign
    a = generate(2000, 10, seed=1, intervention=dict(start=START, unit=unit))[0]["interventions"]
    f = a.select("tenant_id", "employee_id", "risk", team_id=pl.col("unit_id").str.split("/").list.last())
    b = assign(f, unit=unit, seed=0, assigned_on=START).sort("tenant_id", "employee_id")
    assert a.schema == b.schema
    for c in ("unit_id", "stratum", "bucket", "assigned_on", "unit"): assert a[c].equals(b[c]), c

def test_cli_synth_with_an_intervention(tmp_path):
    "`hr-ml synth --intervention KIND` writes the assignments beside the HRIS and the planted effect into truth.json; a bad kind is one line."
    import subprocess, sys
    run = lambda *a: subprocess.run([sys.executable, "-m", "hr_ml.cli", "synth", "--employees", "600", "--tenants", "4", "--no-progress", *a],
                                    capture_output=True, text=True, cwd=tmp_path, timeout=300)
    r = run("--intervention", "stay_interview", "--start", "2024-09-01", "--unit", "team", "--noncompliance", "0.2", "--out", "w")
    assert r.returncode == 0, r.stderr[-2000:]
    a = pl.read_parquet(tmp_path / "w" / "experiment" / "assignments.parquet")
    t = json.loads((tmp_path / "w" / "truth.json").read_text())["intervention"]
    assert t["kind"] == "stay_interview" and t["unit"] == "team" and t["start"] == "2024-09-01" and (a["unit"] == "team").all()
    assert "planted stay_interview" in r.stdout and a.height == t["n"]["assigned"]
    bad = run("--intervention", "bonus", "--out", "b")
    assert bad.returncode == 2 and "kind='bonus'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "b").exists()

def test_null_intervention_changes_nothing(small):
    "A placebo multiplies every hazard by 1 and draws from its own stream: the same tables and truth (oracle included) as no intervention."
    tables, truth = generate(3000, 8, seed=7, intervention=dict(start=date(2025, 1, 1), kind="null"))   # inside the oracle's window
    assert all(tables[k].equals(small[0][k]) for k in TABLES)
    assert {k: v for k, v in truth.items() if k != "intervention"} == small[1] and truth["intervention"]["ate"] == 0
    _, t2 = generate(3000, 8, seed=7, intervention=dict(start=date(2025, 1, 1), kind="pay_review"))
    assert t2["oracle"]["n"] == truth["oracle"]["n"] and t2["oracle"]["auc"] != truth["oracle"]["auc"]   # the replays apply the treatment
