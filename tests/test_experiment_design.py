"""`hr_ml.experiment` (design) and `hr-ml experiment design`: power as statsmodels computes it, the promised power holding in
simulation, the ICC estimator, a reproducible assignment balanced within strata that keeps clusters whole, the CLI end to end on a
tiny synthetic run, and bad inputs as one line with exit code 2."""
import json, math, subprocess, sys
from datetime import date

import numpy as np
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from hr_ml.attrition import AttritionModel
from hr_ml.cli import app
from hr_ml.experiment import (assign, budget_mde, design_effect, icc_anova, mde, plan, power_proportions, sample_size,
                              simulated_power)
from hr_ml.features import FEATURES, build_features
from hr_ml.io import write_hris
from hr_ml.schema import HRDataError
from hr_ml.synth import generate


@pytest.mark.parametrize("p0,eff,n,icc,m,ratio", [(0.15, -0.03, 2000, 0, 1, 1), (0.08, -0.02, 5000, 0, 1, 2),
                                                  (0.20, -0.05, 1200, 0.03, 25, 1), (0.30, 0.04, 800, 0.01, 10, 0.5)])
def test_power_matches_statsmodels(p0, eff, n, icc, m, ratio):
    deff = 1 + (m - 1) * icc
    h = abs(proportion_effectsize(p0 + eff, p0))
    want = NormalIndPower().power(effect_size=h, nobs1=n / deff, alpha=0.05, ratio=ratio, alternative="two-sided")
    assert power_proportions(p0, eff, n, icc=icc, cluster_size=m, ratio=ratio) == pytest.approx(want, abs=1e-12)
    assert design_effect(icc, m) == pytest.approx(deff)
    need = sample_size(p0, eff, power=0.8, icc=icc, cluster_size=m, ratio=ratio)
    assert power_proportions(p0, eff, need, icc=icc, cluster_size=m, ratio=ratio) >= 0.8 > power_proportions(p0, eff, need - 2, icc=icc, cluster_size=m, ratio=ratio)
    d = mde(p0, n, icc=icc, cluster_size=m, ratio=ratio)
    assert d < 0 and power_proportions(p0, d, n, icc=icc, cluster_size=m, ratio=ratio) == pytest.approx(0.8, abs=1e-4)


def test_budget_mde_counts_interventions():
    b = budget_mde(90_000, 1_000, n_eligible=10_000, p_control=0.15, share=0.5)
    assert (b["affordable"], b["n_treatment"], b["n_control"], b["spent"]) == (90, 90, 90, 90_000)
    assert b["mde"] == pytest.approx(mde(0.15, 90))
    b3 = budget_mde(10_000_000, 1_000, n_eligible=10_000, p_control=0.15, share=0.3)   # budget does not bind: share of the eligible
    assert (b3["n_treatment"], b3["n_control"], b3["budget_binds"]) == (3000, 7000, False)


@pytest.mark.parametrize("p0,eff,n,icc,m", [(0.15, -0.03, 1500, 0, 1), (0.15, -0.04, 1600, 0.03, 20)])
def test_promised_power_holds_in_simulation(p0, eff, n, icc, m):
    promised = power_proportions(p0, eff, n, icc=icc, cluster_size=m)
    assert 0.5 < promised < 0.9
    sim = simulated_power(p0, eff, n, icc=icc, cluster_size=m, reps=1500, seed=5)
    assert abs(sim - promised) <= 0.05, (sim, promised)
    assert simulated_power(p0, 0.0001, n, icc=icc, cluster_size=m, reps=1500, seed=6) < 0.08   # no effect: rejections near alpha


def test_icc_anova_matches_anova_lm_and_truth():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 30, 80)                    # units of one employee included
    g = np.repeat(np.arange(80), sizes)
    y = np.concatenate([rng.binomial(1, q, s) for q, s in zip(rng.beta(0.2 * 9, 0.8 * 9, 80), sizes)])   # ICC 0.1
    a = anova_lm(smf.ols("y ~ C(g)", data=pl.DataFrame(dict(y=y, g=g)).to_pandas()).fit())
    msb, msw = a["mean_sq"].iloc[0], a["mean_sq"].iloc[1]
    n0 = (len(y) - (sizes**2).sum() / len(y)) / 79
    r = icc_anova(y, g)
    assert r["icc_raw"] == pytest.approx((msb - msw) / (msb + (n0 - 1) * msw), abs=1e-10)
    assert 0.04 < r["icc"] < 0.2 and r["clusters"] == 80


def _frame(n=900, tenants=3, depts=12, seed=0):
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"tenant_id": [f"T{i % tenants}" for i in range(n)], "employee_id": [f"E{i:05d}" for i in range(n)],
                         "department": [f"D{rng.integers(depts)}" for _ in range(n)], "risk": rng.beta(2, 8, n)})


def _diffs(a, by):
    c = a.group_by(by).agg((pl.col("arm") == "treatment").sum().cast(pl.Int64).alias("t"), (pl.col("arm") == "control").sum().cast(pl.Int64).alias("c"))
    return (c["t"] - c["c"]).abs()


def test_assignment_reproducible_and_balanced():
    f = _frame()
    a = assign(f, "employee", 0.5, seed=3, assigned_on=date(2026, 1, 1))
    assert a.equals(assign(f.reverse(), "employee", 0.5, seed=3, assigned_on=date(2026, 1, 1)))
    assert (a["arm"] != assign(f, "employee", 0.5, seed=4, assigned_on=date(2026, 1, 1))["arm"]).sum() > 100
    assert _diffs(a, "stratum").max() <= 1
    assert a["stratum"].str.split("|").list.first().is_in(["T0", "T1", "T2", "pooled"]).all()
    assert a.columns == ["tenant_id", "employee_id", "unit_id", "stratum", "arm", "assigned_on", "risk", "bucket", "complied", "unit"]
    assert (a["unit_id"] == a["employee_id"]).all()                 # hr_ml.effects: employee-level, no clustering
    assert a["complied"].null_count() == a.height and (a["unit"] == "employee").all()
    # within tenant x bucket, not only overall
    assert _diffs(a, ["tenant_id", "bucket"]).max() <= 1 or a["stratum"].str.contains("pooled").any()
    a3 = assign(f, "employee", 0.3, seed=3)
    s = a3.group_by("stratum").agg((pl.col("arm") == "treatment").sum().alias("t"), pl.len())
    assert ((s["t"] - 0.3 * s["len"]).abs() < 1).all()


def test_same_employee_id_in_two_tenants_are_two_units():
    f = _frame(n=400).with_columns(employee_id=pl.format("E{}", pl.int_range(pl.len()) % 200))
    a = assign(f, "employee", 0.5, seed=0)
    assert a.height == 400 and a.select(pl.struct("tenant_id", "employee_id").n_unique()).item() == 400
    assert _diffs(a, "stratum").max() <= 1


def test_cluster_assignment_keeps_teams_whole():
    f = _frame(n=1200, depts=20)
    t = assign(f, "team", 0.5, seed=1)
    assert t.group_by("unit_id").agg(pl.col("arm").n_unique())["arm"].max() == 1
    assert t.group_by("unit_id").agg(pl.col("stratum").n_unique())["stratum"].max() == 1
    assert _diffs(t.unique("unit_id"), "stratum").max() <= 1
    assert (t["unit_id"] == t["tenant_id"] + "/" + f.sort("tenant_id", "employee_id")["department"]).all()
    tn = assign(_frame(n=1200, tenants=12), "tenant", 0.5, seed=1)
    assert tn.group_by("tenant_id").agg(pl.col("arm").n_unique())["arm"].max() == 1
    assert tn.unique("unit_id")["arm"].value_counts()["count"].max() <= 6 + len(tn["stratum"].unique())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("xdesign")
    tables, _ = generate(n_employees=700, n_tenants=4, seed=2, progress=False)
    write_hris(tables, d / "hris")
    tr = build_features(tables, date(2024, 12, 31))
    AttritionModel(n_estimators=20, max_depth=2, early_stopping_rounds=None, n_jobs=1).fit(tr.select(FEATURES), tr["label"]).save(d / "run")
    return d


def hr_ml(*args):
    return subprocess.run([sys.executable, "-m", "hr_ml.cli", *map(str, args)], capture_output=True, text=True, timeout=600)


def test_cli_design_end_to_end(tiny):
    d = tiny
    args = ["experiment", "design", "--model", d / "run", "--data", d / "hris", "--unit", "team", "--share", "0.5", "--horizon", "12",
            "--budget", "60000", "--cost-per-intervention", "1500", "--effect", "-0.05", "--seed", "11"]
    r = hr_ml(*args, "--out", d / "design")
    assert r.returncode == 0, r.stderr
    assert "assigned" in r.stdout and "ICC" in r.stdout and "budget affords 40 interventions" in r.stdout
    a = pl.read_parquet(d / "design" / "assignments.parquet")
    assert a.equals(pl.read_csv(d / "design" / "assignments.csv", try_parse_dates=True).with_columns(pl.col("complied").cast(pl.Boolean)))
    assert a.group_by("unit_id").agg(pl.col("arm").n_unique())["arm"].max() == 1 and (a["unit"] == "team").all()
    assert a["assigned_on"].unique().to_list() == [date(2025, 12, 31)]
    js = json.loads((d / "design" / "design.json").read_text())
    assert js["unit"] == "team" and js["seed"] == 11 and js["icc"]["source"] == "history" and "ANOVA" in js["icc"]["method"]
    assert js["budget"]["affordable"] == 40 and js["budget"]["mde"] < js["mde"] < 0 and js["design_effect"] >= 1
    assert js["readout_on"] == "2026-12-31" and js["assignment_sha256"] and js["source"]["model"]
    assert js["mde"] == pytest.approx(mde(js["p_control"], js["arms"]["treatment"]["employees"], icc=js["icc"]["icc"],
                                          cluster_size=js["cluster_size_mean"], cluster_cv=js["cluster_size_cv"],
                                          ratio=js["arms"]["control"]["employees"] / js["arms"]["treatment"]["employees"]))
    pre = (d / "design" / "preregistration.md").read_text()
    for s in ("## Hypothesis", "## Primary metric", "## Horizon and readout", "## Analysis method", "## Stopping rule", "Unit: **team**",
              "clustered on the randomisation unit", "seed 11"):
        assert s in pre, s
    r2 = CliRunner().invoke(app, [str(x) for x in args] + ["--out", str(d / "design2")])   # same seed, same file
    assert r2.exit_code == 0 and pl.read_parquet(d / "design2" / "assignments.parquet").equals(a)
    # the same design from a user's risk file (the model's own scores), employee-level
    a.select("tenant_id", "employee_id", "risk").write_csv(d / "risk.csv")
    r3 = CliRunner().invoke(app, ["experiment", "design", "--risk", str(d / "risk.csv"), "--unit", "employee", "--horizon", "6", "--out", str(d / "design3")])
    assert r3.exit_code == 0, r3.output
    b = pl.read_parquet(d / "design3" / "assignments.parquet")
    assert b.height == a.height and _diffs(b, "stratum").max() <= 1
    assert json.loads((d / "design3" / "design.json").read_text())["p_control"] < js["p_control"]


def test_cli_synthetic_run_without_data(tiny, tmp_path):
    "A run trained on the synthetic HRIS needs no --data: its world is generated from params.yaml, and its history gives the ICC."
    run = tmp_path / "run"
    run.mkdir()
    for f in (tiny / "run").iterdir(): (run / f.name).write_bytes(f.read_bytes())
    (run / "params.yaml").write_text(yaml.safe_dump(dict(employees=700, tenants=4, seed=2, years=5)))
    r = CliRunner().invoke(app, ["experiment", "design", "--model", str(run), "--unit", "tenant", "--seed", "2", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    js = json.loads((tmp_path / "o" / "design.json").read_text())
    assert js["icc"]["source"] == "history" and js["icc"]["clusters"] == 4 and js["arms"]["treatment"]["units"] == 2
    a = pl.read_parquet(tmp_path / "o" / "assignments.parquet")
    assert a.group_by("tenant_id").agg(pl.col("arm").n_unique())["arm"].max() == 1 and a["tenant_id"].n_unique() == 4


BAD = [
    ("share above 1", ["--share", "1.5"], "--share 1.5: the treatment share must lie strictly between 0 and 1"),
    ("share 0", ["--share", "0"], "strictly between 0 and 1"),
    ("unit column missing", ["--unit", "team", "--icc", "0.02", "@nodept"], "--unit team needs a team_id or department column"),
    ("risk column missing", ["@norisk"], "column risk missing"),
    ("risk out of range", ["@badrisk"], "column risk: 1 row(s) outside [0, 1]"),
    ("too few units", ["@three"], "only 3 employee unit(s)"),
    ("unknown unit", ["--unit", "division"], "--unit 'division': must be one of employee, team, tenant"),
    ("horizon", ["--horizon", "9"], "--horizon 9: the primary horizon is 6 or 12 months"),
    ("budget alone", ["--budget", "1000"], "--budget and --cost-per-intervention go together"),
    ("no icc for teams", ["--unit", "team"], "pass --icc"),
    ("model and risk", ["--model", "runs/x"], "pass exactly one of --model"),
    ("budget buys nothing", ["--budget", "100", "--cost-per-intervention", "1500"], "buys no intervention"),
]


@pytest.mark.parametrize("case,extra,expect", BAD, ids=[b[0] for b in BAD])
def test_cli_bad_inputs_one_line(tmp_path, case, extra, expect):
    f = _frame(n=300)
    files = {"@nodept": f.drop("department"), "@norisk": f.drop("risk"), "@three": f.head(3),
             "@badrisk": f.with_columns(f["risk"].scatter(4, 1.7))}
    risk = tmp_path / "risk.parquet"
    (files.get(next((x for x in extra if x.startswith("@")), ""), f)).write_parquet(risk)
    extra = [x for x in extra if not x.startswith("@")]
    out = tmp_path / "never"
    r = CliRunner().invoke(app, ["experiment", "design", "--risk", str(risk), *extra, "--out", str(out)])
    assert r.exit_code == 2, (case, r.output)
    lines = [l for l in r.output.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], (case, r.output)
    assert not out.exists()
