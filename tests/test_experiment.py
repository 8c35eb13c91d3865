"""Retention experiments (issue 16).

Analysis: `hr-ml experiment analyze` end to end on a small synthetic world with a planted pay review (the CI covers the planted
effect, CUPED narrows it, the buckets with and without a planted effect are told apart), an interim read labelled as such, clustered
assignment, a null intervention, and bad inputs that stop in one line without leaving a run folder."""
import importlib.util, json, re, subprocess, sys
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hr_ml import effects as E
from hr_ml.suppression import scan_for_small
from hr_ml.synth import generate, write_synth

sys.path.insert(0, str(Path(__file__).parent))
from test_reports import report_text, notebook_text, problems, context   # the report standard every job's report meets

START = date(2025, 1, 1)


def hr_ml(*args, cwd=None):
    "`hr-ml ARGS` as a real process: the final analysis runs so, once (the seam a user meets)."
    return subprocess.run([sys.executable, "-m", "hr_ml.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=900)


def hr_ml_here(*args, cwd=None):
    "`hr-ml ARGS` in this process (same app, options, stdout/stderr split and one-line errors), without an interpreter start-up."
    from conftest import hr_ml_inprocess
    return hr_ml_inprocess(*args, cwd=cwd)


def world(n=2500, tenants=6, seed=1, **iv):
    return generate(n_employees=n, n_tenants=tenants, seed=seed, years=3, intervention=dict(start=START, kind="pay_review", **iv))


@pytest.fixture(scope="module")
def synth_world(tmp_path_factory):
    "A synthetic world with a planted pay review (1 January 2025, 12 months), written as hr-ml synth writes it, and its assignment file."
    d = tmp_path_factory.mktemp("experiment")
    tables, truth = world()
    write_synth(tables, truth, d / "world")
    assign = d / "world" / "experiment" / "assignments.parquet"
    assert assign.is_file()
    return d, assign, truth


@pytest.fixture(scope="module")
def final_run(synth_world):
    d, assign, truth = synth_world
    r = hr_ml("experiment", "analyze", "--assignments", assign, "--outcomes", d / "world", "-p", "cost_per_intervention=800", "--no-progress", "--out", d / "runs")
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    runs = sorted((d / "runs" / "experiment").iterdir())
    assert len(runs) == 1, runs
    return d, r, runs[0], truth


# ---------------------------------------------------------------- analysis, end to end
def test_planted_effect_recovered(final_run):
    _, r, run, truth = final_run
    m = json.loads((run / "experiment.json").read_text())
    ti = truth["intervention"]
    assert m["status"]["label"] == "final" and m["primary"]["method"].endswith("CUPED-adjusted")
    p = m["primary"]
    assert p["ci_low"] <= ti["ate"] <= p["ci_high"], (p, ti["ate"])
    assert m["truth"]["check"]["covered"] and "planted truth" in r.stdout and "covered by the CI" in r.stdout
    # CUPED on the pre-period risk and drivers: the same target, a narrower CI
    assert m["cuped"]["variance_reduction"] > 0.02
    assert m["cuped"]["ci_high"] - m["cuped"]["ci_low"] < m["cuped"]["unadjusted"]["ci_high"] - m["cuped"]["unadjusted"]["ci_low"]
    # heterogeneity: nothing planted for the low bucket and the fairly paid; strong effects for the high bucket and the underpaid
    g = {by: {row["group"]: row for row in m["groups"][by]["groups"]} for by in ("bucket", "pay")}
    assert g["bucket"]["low"]["ci_low"] <= 0 <= g["bucket"]["low"]["ci_high"]
    assert g["bucket"]["high"]["ci_high"] < 0 and g["pay"]["underpaid"]["ci_high"] < 0
    assert g["pay"]["not underpaid"]["ci_low"] <= 0 <= g["pay"]["not underpaid"]["ci_high"]
    assert m["groups"]["bucket"]["heterogeneity"]["p_value"] < 0.05
    cov = [c["covered"] for by in m["truth"]["groups"].values() for c in by.values()]
    assert len(cov) >= 5 and sum(cov) >= len(cov) - 1                       # the adjusted CIs cover the planted effect per group
    # full compliance: the complier effect is the ITT effect
    assert m["cace"]["compliance"] == 1 and abs(m["cace"]["effect"] - m["itt"]["effect"]) < 1e-9
    # money: prevented exits from the effect, spend from the cost per intervention
    roi = m["roi"]
    assert roi["spent"] == 800 * roi["n_treated"] and roi["n_treated"] == m["n_treatment"]
    assert abs(roi["prevented_exits"] + m["primary"]["effect"] * roi["n_treated"]) < 1e-3   # experiment.json rounds to 6 decimals
    assert roi["net_ci"][0] <= roi["net"] <= roi["net_ci"][1]
    # the survival view and the policy curves
    km = m["km"]["curves"]
    assert all(len(km[a]["month"]) > 10 and min(km[a]["at_risk"]) >= 5 for a in ("treatment", "control"))
    assert m["policy"]["available"] and set(m["policy"]["best"]) == {"risk", "uplift"}
    assert not scan_for_small(m, 5, keys=("n", "n_treatment", "n_control", "at_risk", "n_treated", "n_units"))


def test_report_standard(final_run):
    "report.html: summary first, the charts embedded, no code, no raw frames, no debug output."
    d, _, run, _ = final_run
    doc = (run / "report.html").read_text()
    text = report_text(doc)
    heads = [re.sub(r"(?s)<[^>]+>|¶", "", h).strip() for h in re.findall(r"(?s)<h2[^>]*>(.*?)</h2>", doc)]
    assert heads[0] == "Summary" and {"The effect on exits", "Who it helped", "Money", "Whom to treat"} <= set(heads), heads
    first = text[text.find("Summary"):]
    assert "What to do next." in first[:3000] and "Money." in first[:3000]
    for what, t in (("report.html", text), ("executed.ipynb", notebook_text(json.loads((run / "executed.ipynb").read_text())))):
        bad = problems(t, d)
        assert not bad, (what, bad, context(t, bad))
    pngs = {f.name for f in run.glob("*.png")}
    assert {"km_curves.png", "effects_by_group.png", "roi.png", "policy_curve.png"} <= pngs
    assert doc.count('src="data:image/png;base64,') >= len(pngs)
    assert not re.search(r'class="[^"]*\b(jp-InputArea-editor|jp-InputPrompt)\b', doc)


def test_interim_read_is_labelled(synth_world):
    "Read half-way through the horizon: labelled interim, a warning, the Kaplan–Meier difference instead of the proportions."
    d, assign, _ = synth_world
    r = hr_ml_here("experiment", "analyze", "--assignments", assign, "--outcomes", d / "world", "-p", "as_of=2025-06-30", "-p", "uplift=false",
              "--no-progress", "--out", d / "interim")
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "interim result" in r.stdout and "warning: Interim result" in r.stdout
    run = next((d / "interim" / "experiment").iterdir())
    m = json.loads((run / "experiment.json").read_text())
    assert m["status"]["label"] == "interim" and m["itt"] is None and "interim" in m["primary"]["method"]
    assert m["km"]["at_horizon"]["month"] < 6.1 and not m["km"]["complete"]
    text = report_text((run / "report.html").read_text())
    assert "Interim result." in text[text.find("Summary"):][:800]


@pytest.mark.parametrize("case", ["no_arm", "one_arm", "unknown", "bad_arm"])
def test_bad_inputs_one_line_no_run(synth_world, tmp_path, case):
    d, assign, _ = synth_world
    a = pl.read_parquet(assign)
    bad = {"no_arm": a.drop("arm"), "one_arm": a.with_columns(arm=pl.lit("treatment")),
           "unknown": a.with_columns(employee_id=pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("T00001-E999999")).otherwise("employee_id")),
           "bad_arm": a.with_columns(arm=pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("placebo")).otherwise("arm"))}[case]
    f = tmp_path / "assign.csv"
    bad.write_csv(f)
    r = hr_ml_here("experiment", "analyze", "--assignments", f, "--outcomes", d / "world", "-p", "uplift=false", "--no-progress", "--out", tmp_path / "runs")
    assert r.returncode == 2, (r.stdout[-2000:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    want = {"no_arm": "column 'arm' is missing", "one_arm": "every row is in the treatment arm", "unknown": "row 4: employee T00001-E999999",
            "bad_arm": "row 1: arm 'placebo'"}[case]
    assert want in lines[0], lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*")), list((tmp_path / "runs").rglob("*"))


def test_missing_files_one_line(tmp_path):
    r = hr_ml_here("experiment", "analyze", "--assignments", tmp_path / "nope.csv", "--outcomes", tmp_path, "--out", tmp_path / "runs")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "nope.csv" in r.stderr


def test_own_csv_export_and_assignment_file(synth_world, tmp_path):
    "A customer's own files: an HRIS export of CSVs (no truth.json), an assignment CSV without dates or risk (-p assigned_on)."
    d, assign, _ = synth_world
    exp = tmp_path / "export"; exp.mkdir()
    for t in ("employees", "compensation", "job_changes"): pl.read_parquet(d / "world" / f"{t}.parquet").write_csv(exp / f"{t}.csv")
    pl.read_parquet(assign).select("tenant_id", "employee_id", "arm").write_csv(tmp_path / "assign.csv")
    r = hr_ml_here("experiment", "analyze", "--assignments", tmp_path / "assign.csv", "--outcomes", exp, "-p", "assigned_on=2025-01-01", "-p", "as_of=2025-12-31",
              "-p", "replacement_multiple=1.5", "--no-progress", "--out", tmp_path / "runs")
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    run = next((tmp_path / "runs" / "experiment").iterdir())
    m = json.loads((run / "experiment.json").read_text())
    assert "truth" not in m and m["status"]["label"] == "final" and "planted truth" not in r.stdout
    assert m["cuped"]["covariates"] == ["compa_ratio", "manager_changes_12m"]         # no risk column: the drivers alone
    assert not m["policy"]["available"] and "risk" in m["policy"]["note"]
    text = report_text((run / "report.html").read_text())
    assert "Planted truth" not in text and "No policy curve in this report" in text
    assert not problems(text, tmp_path)


# ---------------------------------------------------------------- analysis, in process
def test_clustered_assignment_uses_cluster_robust_se():
    tables, truth = world(n=1500, seed=2, unit="team")
    a = E.check_assignments(tables.pop("interventions"))
    r = E.analyze(a, tables, 12, uplift=False, truth=truth)
    assert r["unit"] == "cluster" and r["itt"]["se_type"] == "cluster-robust on unit_id" and r["itt"]["n_clusters"] == r["n_units"] < r["n_treatment"] + r["n_control"]
    naive = E.itt(r["_frame"], cluster="")
    assert r["itt"]["se"] != naive["se"] and naive["se_type"] == "HC1 robust"
    assert r["truth"]["check"]["covered"]


def test_null_intervention_consistent_with_zero():
    tables, truth = generate(n_employees=1500, n_tenants=6, seed=10, years=3, intervention=dict(start=START, kind="null"))
    assert truth["intervention"]["ate"] == 0
    a = E.check_assignments(tables.pop("interventions"))
    r = E.analyze(a, tables, 12, uplift=False)
    assert r["primary"]["ci_low"] <= 0 <= r["primary"]["ci_high"]
    assert all(row["ci_low"] <= 0 <= row["ci_high"] for g in r["groups"].values() for row in g["groups"].iter_rows(named=True) if not row["suppressed"])


def test_noncompliance_complier_effect():
    tables, truth = world(n=2000, seed=5, noncompliance=0.4)
    a = E.check_assignments(tables.pop("interventions"))
    r = E.analyze(a, tables, 12, uplift=False, truth=truth)
    c = r["cace"]
    assert 0.5 < c["compliance"] < 0.7 and abs(c["effect"]) > abs(r["itt"]["effect"])
    comp = truth["intervention"]["effects"]["voluntary"]["complier"]["ate"]
    assert c["ci_low"] <= comp <= c["ci_high"] and r["truth"]["complier"]["covered"]
    assert r["roi"]["effect_used"] == "complier effect"


def test_small_groups_suppressed():
    tables, _ = world(n=600, tenants=3, seed=6)
    a = E.check_assignments(tables.pop("interventions"))
    r = E.analyze(a, tables, 12, k=40, uplift=False)
    f = r["groups"]["bucket"]["groups"]
    small = f.filter(pl.col("suppressed"))
    assert small.height >= 1 and small["effect"].null_count() == small.height and small["n_treatment"].null_count() == small.height
    doc = json.loads(json.dumps(E._plain(r)))
    assert not scan_for_small(doc, 40, keys=("n", "n_treatment", "n_control", "at_risk", "n_treated"))


# ======================================================================================================================
# Bench checks, fast version (xsynth): bench/experiment_checks.py on 3 small seeds. The full run (20 seeds, 20,000 people
# per experiment) is `python bench/experiment_checks.py`; its results are in bench/results/experiment_checks.{json,md}.
# ======================================================================================================================

def _bench():
    p = Path(__file__).resolve().parent.parent / "bench" / "experiment_checks.py"
    spec = importlib.util.spec_from_file_location("experiment_checks", p)
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m

@pytest.fixture(scope="module")
def bench(): return _bench()

@pytest.fixture(scope="module")
def planted(bench):
    "Three planted worlds of about 4,000 people employed at the start (a pay review from 2024-07-01, randomised 50/50)."
    return [bench.planted_check(seed, 8000, 40, splits=(2,)) for seed in range(3)]

@pytest.fixture(scope="module")
def null(bench): return [bench.null_check(1000 + seed, 6000, 30, k=3) for seed in range(3)]

def test_bench_planted_effect_recovered(planted):
    "(a) the ITT CI covers the planted effect; CUPED on the pre-period risk narrows it, and covers too."
    assert sum(p["itt"]["covers"] for p in planted) >= 2 and sum(p["cuped"]["covers"] for p in planted) >= 2
    assert all(p["cuped_narrower"] and p["cuped"]["variance_reduction"] > 0 for p in planted)
    assert all(p["planted"] < -0.015 and p["itt"]["effect"] < 0 for p in planted)

def test_bench_heterogeneity(planted):
    "(d) the high bucket's Bonferroni CI lies below 0 and the low bucket's contains 0 (no planted effect there); effects differ."
    for p in planted:
        b = p["buckets"]
        assert b["low"]["planted"] == 0 and b["high"]["planted"] < b["medium"]["planted"] < 0
        assert b["low"]["ci"][0] <= 0 <= b["low"]["ci"][1] and b["high"]["ci"][1] < 0, (p["seed"], b)
        assert b["high"]["effect"] < b["low"]["effect"] and p["heterogeneity_p"] < 0.05    # the Wald test sees the difference
    # (medium: its CI below 0 as well, at 20,000 people, is the bench's check)

def test_bench_null_intervention(null):
    "(c) a placebo: truth 0 (checked inside), and at most one false positive in three worlds."
    assert sum(n["rejected"] for n in null) <= 1 and sum(sum(n["subs_rejected"]) for n in null) <= 2
    assert all(abs(n["effect"]) < 0.03 for n in null)

def test_bench_power_rows_and_report(bench, planted, null, tmp_path):
    "(b) every tenant-group experiment gets a promised power and a test result; the summary and the markdown are well-formed."
    subs = [s for p in planted for s in p["subs"]]
    assert len(subs) == 6 and all(0.05 < s["promised"] < 1 and s["n"] > 1000 for s in subs)
    res = bench.summarise(planted, null)
    m = res["measured"]
    assert m["itt_covers"] == sum(p["itt"]["covers"] for p in planted) and m["power_experiments"] == 6 and m["null_sub_tests"] == 9
    assert set(res["passed"]) == set(res["goals"]) and 0 < m["power_promised"] < 1
    res.update(smoke=True, config=dict(seeds=3, employees=8000, tenants=40, null_seeds=3, null_employees=6000, start="2024-07-01", horizon_months=12),
               mean_assigned=4000, planted=planted, null=null, seconds=1.0,
               machine=dict(cpu_count=2, load_avg_1m_at_end=0, hr_ml="x", statsmodels="x", polars="x"))
    md = bench.markdown(res)
    assert md.count("\n| (") == 6 and "| 2 | 6 |" in md
    json.dumps(res, default=str)
