"""Targeting (hr_ml.uplift) and the monitor's experiment section: the policy curve's optimum is the brute-force one, the
uplift model ranks planted persuadables above everyone else, and `hr-ml monitor --assignments` follows the arms end to end
with every count under k suppressed."""
import datetime as dt, json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from hr_ml import features as F
from hr_ml import monitor as M
from hr_ml import uplift as U
from hr_ml.schema import HRDataError
from hr_ml.suppression import scan_for_small
from hr_ml.synth import generate

AS_OF = dt.date(2025, 6, 30)


# ---------------------------------------------------------------- (1) the policy curve
def brute_force(scores, eff, repl, cost, ns):
    "Net value of treating the top-n by score for each n, person by person, and the best n (ties: fewer treated)."
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    net = {int(n): sum(-eff[i] * repl[i] - cost for i in order[:n]) for n in ns}
    return net, max(net, key=lambda n: (net[n], -n))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_policy_curve_optimum_is_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 700
    risk = rng.beta(2, 8, n)
    level = rng.integers(1, 9, n)
    pay = rng.lognormal(np.log(45_000) + 0.12 * level, 0.2)
    eff = np.where(rng.random(n) < 0.4, -rng.uniform(0, 0.3, n) * risk * 3, 0.0)     # heterogeneous, some nobody helps
    cost = float(rng.uniform(500, 4000))
    curve = U.policy_curve(risk, eff, pay, cost, level)
    repl = U.replacement_cost(pay, level)
    net, n_best = brute_force(risk, eff, repl, cost, curve["n_treated"])
    best = U.best_policy(curve)
    assert best["n_treated"] == n_best
    assert best["net_eur"] == pytest.approx(net[n_best], rel=1e-9, abs=1e-6)
    assert curve["net_eur"].to_list() == pytest.approx([net[m] for m in curve["n_treated"]], rel=1e-9, abs=1e-6)
    steps = np.diff(curve["n_treated"].to_numpy())
    assert curve["n_treated"][0] == 0 and curve["n_treated"][-1] == n and steps.min() >= 5   # every step adds at least k people
    full, _ = brute_force(risk, eff, repl, cost, range(n + 1))
    assert max(full.values()) - best["net_eur"] <= steps.max() * (cost + float((np.abs(eff) * repl).max()))   # the grid's best is near the true best
    thr = best["threshold"]
    if thr is not None: assert int((risk > thr).sum()) == best["n_treated"]              # treat everyone above the threshold


def test_policy_curve_by_bucket_and_money():
    rng = np.random.default_rng(7)
    risk = rng.beta(2, 6, 400)
    b = U.risk_buckets(risk)
    effect = {"low": 0.0, "medium": -0.04, "high": -0.12}
    pay, level = np.full(400, 60_000.0), np.full(400, 4)
    curve = U.policy_curve(risk, effect, pay, 2_000, level, groups=b)
    net, n_best = brute_force(risk, np.array([effect[x] for x in b]), pay * 1.0, 2_000, curve["n_treated"])
    assert U.best_policy(curve)["n_treated"] == n_best
    # 0.12 x 60,000 = 7,200 > 2,000 and 0.04 x 60,000 = 2,400 > 2,000: treat high and medium, not low
    assert abs(U.best_policy(curve)["n_treated"] - int((b != "low").sum())) <= 5
    assert U.best_policy(U.policy_curve(risk, effect, pay, 1e7, level, groups=b))["n_treated"] == 0
    assert U.replacement_cost([100_000], [8]).tolist() == [200_000]


def test_policy_bad_inputs_one_line():
    risk = np.linspace(0, 1, 50)
    for call, words in [(lambda: U.policy_curve(risk, {"high": -0.1}, np.ones(50), 10, groups=U.risk_buckets(risk)), "no effect for group"),
                        (lambda: U.policy_curve(risk, -0.1, np.ones(49), 10), "pay has 49 values"),
                        (lambda: U.policy_curve(risk, -0.1, np.ones(50), -3), "cost_per_intervention"),
                        (lambda: U.policy_curve(risk[:4], -0.1, np.ones(4), 10), "fewer than 5"),
                        (lambda: U.replacement_cost([1.0], [3], {"1": 0.5}), "job level 3 (row 0)")]:
        with pytest.raises(HRDataError) as e: call()
        assert words in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- (2) uplift recovers the planted heterogeneity
@pytest.fixture(scope="module")
def experiment():
    tables, _ = generate(6000, 30, seed=5)
    snap = F.build_features(tables, AS_OF)
    return tables, snap, U.demo_experiment(snap, "pay_review", strength=0.2, base_rate=0.2, seed=1)


@pytest.mark.parametrize("learner", ["X", "T"])
def test_uplift_ranks_persuadables_first(experiment, learner):
    tables, snap, exp = experiment
    u = U.uplift_model(snap.select(F.FEATURES), exp["arm"], exp["exited"].cast(int), learner=learner)
    truth = exp["true_effect"].to_numpy()
    assert roc_auc_score(truth < 0, -u) > 0.7                     # persuadable (a planted effect) vs not, from the estimated uplift
    assert roc_auc_score(exp["persuadable"].to_numpy(), -u) > 0.7


def test_uplift_curve_beats_risk_on_a_heterogeneous_effect(experiment):
    tables, snap, exp = experiment
    pay = U.pay_at(tables, snap, AS_OF)
    repl = U.replacement_cost(pay, snap["job_level"])
    u = U.uplift_model(snap.select(F.FEATURES), exp["arm"], exp["exited"].cast(int))
    truth = exp["true_effect"]
    by_risk = U.best_policy(U.policy_curve(exp["risk"], truth, pay, 1_500, snap["job_level"]))
    by_uplift = U.best_policy(U.policy_curve(-u * repl, truth, pay, 1_500, snap["job_level"], policy="uplift"))
    assert by_uplift["net_eur"] > by_risk["net_eur"] and by_uplift["n_treated"] < by_risk["n_treated"]
    new = U.uplift_model(snap.select(F.FEATURES), exp["arm"], exp["exited"].cast(int), X_new=snap.select(F.FEATURES).head(20))
    assert new.shape == (20,) and np.isfinite(new).all()


def test_null_intervention_has_no_persuadables(experiment):
    tables, snap, _ = experiment
    null = U.demo_experiment(snap, "null", seed=2)
    assert (null["true_effect"] == 0).all() and not null["persuadable"].any()


# ---------------------------------------------------------------- (3) hr-ml monitor --assignments, end to end
def test_monitor_with_assignments_end_to_end(tmp_path):
    from hr_ml.attrition import AttritionModel
    from hr_ml.synth import write_synth
    t0, start = dt.date(2024, 12, 31), dt.date(2025, 1, 1)
    tables, truth = generate(1200, 8, seed=3, intervention=dict(start=start, kind="pay_review"))   # the generator's planted pay review
    old = F.truncate_to(tables, t0)
    tr = F.build_training_set(old, F.quarterly_dates(old, 12, 8), 12)
    model = AttritionModel(n_estimators=20, max_depth=3, early_stopping_rounds=None, n_jobs=1, random_state=0).fit(
        tr.select(F.FEATURES), tr["label"].to_numpy(), groups=F.groups(tr))
    ref = F.build_features(old, t0)
    run = tmp_path / "train_run"
    model.save(run)
    M.save_profile(M.reference_profile(ref.select(F.FEATURES), model.predict_risk(ref.select(F.FEATURES)), model.feature_names_, as_of=t0,
                                       meta={"horizon_months": 12, "cuts": [0.15, 0.35]}), run / "reference_profile.json")
    write_synth(tables, truth, tmp_path / "hris")                 # as `hr-ml synth` writes it: the assignments in hris/experiment/
    assign = tables["interventions"]                             # tenant_id, employee_id, unit_id, stratum, arm, assigned_on, risk, bucket, complied
    arms = assign["arm"].to_numpy()
    from conftest import hr_ml_inprocess                          # the command in this process; `hr-ml monitor` as a real process: test_journey
    r = hr_ml_inprocess("monitor", "--model", run, "--data", "hris", "--assignments", "hris/experiment/assignments.parquet",
                        "-p", "n_boot=10", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    out = next((tmp_path / "runs" / "monitor").iterdir())
    doc = json.loads((out / "monitor.json").read_text())
    ex = doc["experiment"]
    exits = M.outcomes_from_tables(tables).filter("voluntary", pl.col("exit_date") > start).join(assign, on=F.KEYS)
    got = {a["arm"]: a for a in ex["arms"]}
    for arm in ("treatment", "control"):                         # the exits so far, counted directly
        assert got[arm]["n"] == int((arms == arm).sum()) and got[arm]["n_exits"] == exits.filter(pl.col("arm") == arm).height
    assert ex["available"] and ex["difference"] is not None and "interim" in ex["note"]
    shown = [m for m in ex["by_month"] if not m["suppressed"]]
    assert shown and any(m["suppressed"] for m in ex["by_month"])  # early months with 1 to 4 exits are hidden
    for arm in ("treatment", "control"):
        seq = [m["n_exits"] for m in shown if m["arm"] == arm]
        assert all(b - a == 0 or b - a >= 5 for a, b in zip(seq, seq[1:]))   # no small group by subtraction
    assert scan_for_small(doc, 5) == []
    assert (out / "experiment_exits.png").exists() and "Experiment arms" in (out / "report.html").read_text()
    assert "-E0" not in (out / "monitor.json").read_text()
    # one small company alone: its arms' small counts are suppressed, in the JSON as in the report
    small = assign.join(assign.group_by("tenant_id").len().sort("len").head(1), on="tenant_id").drop("len")
    small.write_csv(tmp_path / "small.csv")
    few = M.experiment_exits(tmp_path / "small.csv", M.outcomes_from_tables(tables), dt.date(2025, 12, 31))
    assert scan_for_small({"arms": few["arms"], "by_month": few["by_month"]}, 5) == []
    assert any(a["suppressed"] for a in few["arms"]) or all(a["n_exits"] in (0, None) or a["n_exits"] >= 5 for a in few["arms"])


def test_assignment_file_errors_one_line(tmp_path):
    "The monitor reads assignment files with hr_ml.effects' checks: one line naming the file, row and fix."
    (tmp_path / "a.csv").write_text("tenant_id,employee_id,arm,assigned_on\nT1,E1,treatment,2025-01-01\nT1,E2,placebo,2025-01-01\n")
    (tmp_path / "b.csv").write_text("tenant_id,employee_id,arm,assigned_on\nT1,E1,treatment,2025-01-01\nT1,E2,control,someday\n")
    (tmp_path / "c.csv").write_text("tenant_id,employee_id,group\nT1,E1,treatment\n")
    oc = pl.DataFrame({"tenant_id": ["T1"], "employee_id": ["E1"], "exit_date": [dt.date(2025, 3, 1)], "voluntary": [True]})
    for f, words in (("a.csv", "arm 'placebo' for employee E2"), ("b.csv", "assigned_on 'someday' is not a date"),
                     ("c.csv", "column 'arm' is missing"), ("nope.csv", "assignment file not found")):
        with pytest.raises(HRDataError) as e: M.experiment_exits(tmp_path / f, oc, dt.date(2025, 12, 31))
        assert words in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_uplift_on_the_hris_planted_pay_review():
    "The generator's own intervention: features on the eve of the start, exits from the HRIS; persuadables = underpaid outside the low bucket."
    start = dt.date(2024, 7, 1)
    tables, truth = generate(6000, 30, seed=5, intervention=dict(start=start, kind="pay_review"))
    eve = F.build_features(tables, start - dt.timedelta(days=1))
    left = (pl.col("termination_type") == "voluntary") & pl.col("termination_date").is_between(start + dt.timedelta(days=1), dt.date(2025, 7, 1))
    trial = (tables["interventions"].join(eve, on=F.KEYS)
             .join(tables["employees"].select(*F.KEYS, "termination_date", "termination_type"), on=F.KEYS)
             .with_columns(exited=left.fill_null(False)))
    assert trial.height == tables["interventions"].height
    u = U.uplift_model(trial.select(F.FEATURES), trial["arm"], trial["exited"].cast(int), learner="X")
    persuadable = ((trial["compa_ratio"] < 0.95) & (trial["bucket"] != "low")).to_numpy()
    assert roc_auc_score(persuadable, -u) > 0.7
    assert truth["intervention"]["effects"]["voluntary"]["itt"]["bucket"]["low"] == 0.0
