"""The pay-equity report (EU Pay Transparency Directive): Art. 9 indicators against a hand calculation, the planted
unexplained gap, small-group suppression, and the report job through the CLI (good runs and one-line errors)."""
import json, sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from hr_ml import pay_equity as PE
from hr_ml.schema import HRDataError
from hr_ml.synth import generate

sys.path.insert(0, str(Path(__file__).parent))
from conftest import hr_ml_inprocess                                 # noqa: E402

S5 = "suppressed (n < 5)"


# ---------------------------------------------------------------- a hand-made company
# (id, gender, job_family, job_level, weekly hours, hourly basic pay, hourly variable pay)
HAND = [("W1", "female", "ops", 1, 40, 20, 0), ("W2", "female", "ops", 1, 20, 22, 0), ("W3", "female", "ops", 1, 40, 24, 2),
        ("W4", "female", "ops", 1, 40, 26, 0), ("W5", "female", "eng", 2, 40, 29, 0), ("W6", "female", "eng", 2, 20, 31, 0),
        ("W7", "female", "eng", 2, 40, 33, 4), ("W8", "female", "eng", 2, 40, 35, 0),
        ("M1", "male", "ops", 1, 40, 21, 2), ("M2", "male", "ops", 1, 40, 25, 0), ("M3", "male", "ops", 1, 20, 27, 0),
        ("M4", "male", "ops", 1, 40, 30, 4), ("M5", "male", "eng", 2, 40, 32, 0), ("M6", "male", "eng", 2, 40, 36, 6),
        ("M7", "male", "eng", 2, 40, 40, 0), ("M8", "male", "eng", 2, 40, 46, 8),
        ("X1", "non_binary", "ops", 1, 40, 23, 0), ("X2", "undisclosed", "eng", 2, 40, 34, 0)]


def tables_from(rows):
    emp = pl.DataFrame([dict(tenant_id="T1", employee_id=e, hire_date=date(2016 + i % 6, 3, 1), termination_date=None,
                             termination_type=None, job_family=f, job_level=l, location="DE", weekly_hours=float(h), gender=g)
                        for i, (e, g, f, l, h, b, v) in enumerate(rows)],
                       schema_overrides=dict(termination_date=pl.Date, termination_type=pl.String, job_level=pl.Int32))
    comp = pl.DataFrame([dict(tenant_id="T1", employee_id=e, effective_date=date(2025, 1, 1), base_salary=float(b * h * 52),
                              variable_pay=float(v * h * 52), currency="EUR") for e, g, f, l, h, b, v in rows])
    return {"employees": emp, "compensation": comp}


@pytest.fixture(scope="module")
def hand():
    return PE.pay_table(tables_from(HAND))


def test_hand_indicators(hand):
    # hourly pay (basic + variable): women 20 22 26 26 29 31 37 35, men 23 25 27 34 32 42 40 54
    ind = PE.indicators(hand, k=2)
    mean_f, mean_m = (20 + 22 + 26 + 26 + 29 + 31 + 37 + 35) / 8, (23 + 25 + 27 + 34 + 32 + 42 + 40 + 54) / 8   # 28.25, 34.625
    med_f, med_m = (26 + 29) / 2, (32 + 34) / 2
    assert ind["mean_gap_pct"] == pytest.approx(100 * (mean_m - mean_f) / mean_m, abs=1e-3)            # (a) 18.41%
    assert ind["median_gap_pct"] == pytest.approx(100 * (med_m - med_f) / med_m, abs=1e-3)             # (c) 16.67%
    # variable pay, recipients only: women 2, 4; men 2, 4, 6, 8
    assert ind["variable_mean_gap_pct"] == pytest.approx(100 * (5 - 3) / 5, abs=1e-3)                  # (b) 40%
    assert ind["variable_median_gap_pct"] == pytest.approx(100 * (5 - 3) / 5, abs=1e-3)                # (d) 40%
    assert ind["variable_pay_share"] == {"female": 25.0, "male": 50.0}                                 # (e) 2/8, 4/8
    assert (ind["n_female"], ind["n_male"]) == (8, 8)
    assert ind["n_other_genders"] == {"non_binary": "suppressed (n < 2)", "undisclosed": "suppressed (n < 2)"}
    # (f) in order: 20W 22W 23M 25M | 26W 26W 27M 29W | 31W 32M 34M 35W | 37W 40M 42M 54M
    bands = PE.quartile_bands(hand, k=1)
    assert [b["female_pct"] for b in bands] == [50.0, 75.0, 50.0, 25.0]
    assert [b["male_pct"] for b in bands] == [50.0, 25.0, 50.0, 75.0]
    assert [b["n"] for b in bands] == [4, 4, 4, 4]
    # (g) basic pay: ops women 20 22 24 26 (23), men 21 25 27 30 (25.75); eng women 29 31 33 35 (32), men 32 36 40 46 (38.5)
    g = {r["category"]: r for r in PE.category_gaps(hand, k=1, factors=None).to_dicts()}
    assert g["ops / 1"]["gap_pct"] == pytest.approx(100 * (25.75 - 23) / 25.75, abs=1e-3)
    assert g["eng / 2"]["gap_pct"] == pytest.approx(100 * (38.5 - 32) / 38.5, abs=1e-3)
    # (g) variable pay: ops women 2, men 2, 4 (3); eng women 4, men 6, 8 (7)
    assert g["ops / 1"]["variable_gap_pct"] == pytest.approx(100 * (3 - 2) / 3, abs=1e-3)
    assert g["eng / 2"]["variable_gap_pct"] == pytest.approx(100 * (7 - 4) / 7, abs=1e-3)
    assert (g["ops / 1"]["n_female"], g["ops / 1"]["n_male"]) == (4, 4)


def test_hand_suppression_at_default_k(hand):
    ind = PE.indicators(hand)                      # 8 women and 8 men, but every category and band holds fewer than 5
    assert {c["n_female"] for c in ind["categories"]} == {None}
    assert all(c["suppressed"] for c in ind["categories"])
    assert PE.indicators(hand, k=3)["variable_mean_gap_pct"] == "suppressed (n < 3)"     # only 2 women receive variable pay


# ---------------------------------------------------------------- planted truth
def test_planted_gap_recovered():
    tables, truth = generate(n_employees=8000, n_tenants=40, seed=3)
    ug = PE.unexplained_gap(PE.pay_table(tables), n_boot=30, seed=0)
    planted = truth["pay_gap"]["unexplained_pct"]
    assert planted == 4.0
    assert abs(ug["adjusted_gap_pct"] - planted) <= 0.5, (ug["adjusted_gap_pct"], truth["pay_gap"])
    assert ug["ci95"][0] <= planted <= ug["ci95"][1]
    assert abs(ug["oaxaca_blinder"]["unexplained_pct"] - planted) <= 0.5
    assert ug["oaxaca_blinder"]["n_boot"] == 30


# ---------------------------------------------------------------- errors in process (HRIS tables)
def _hris_bad(case):
    t = tables_from(HAND)
    emp, comp = t["employees"], t["compensation"]
    if case == "no_gender": emp = emp.drop("gender")
    if case == "single_gender": emp = emp.with_columns(gender=pl.lit("undisclosed"))
    if case == "zero_hours": emp = emp.with_columns(weekly_hours=pl.when(pl.col("employee_id") == "W4").then(0.0).otherwise(pl.col("weekly_hours")))
    if case == "pay_missing": comp = comp.with_columns(base_salary=pl.when(pl.col("employee_id").is_in(["W1", "W2", "W3", "W4", "M1", "M2", "M3", "M4", "X1"])).then(None).otherwise(pl.col("base_salary")))
    if case == "currency_mix": comp = comp.with_columns(currency=pl.when(pl.col("employee_id") == "M2").then(pl.lit("USD")).otherwise(pl.lit("EUR")))
    return {"employees": emp, "compensation": comp}


@pytest.mark.parametrize("case,words", [("no_gender", "no gender column"), ("single_gender", "neither women nor men"),
                                        ("zero_hours", "T1/W4"), ("pay_missing", "ops / 1"), ("currency_mix", "USD")])
def test_hris_bad_input(case, words):
    with pytest.raises(HRDataError, match=words) as e: PE.pay_table(_hris_bad(case))
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- the job through the CLI
MAPPING = """pay_equity:
  id: Id
  gender: Sex
  gender_values: {F: female, M: male, D: non_binary}
  base_pay: Salary
  variable_pay: Bonus
  hours: Hours
  categories: [Family, Grade]
  factors: {YearsIn: tenure_years}
"""
# categories (women, men): ops/1 20+20, ops/2 4+10 (4 women!), eng/2 12+12, eng/3 8+9
SIZES = {("ops", "1"): (20, 20), ("ops", "2"): (4, 10), ("eng", "2"): (12, 12), ("eng", "3"): (8, 9)}


def export_rows():
    rows, i = [], 0
    for (fam, grade), (nf, nm) in SIZES.items():
        for sex, n in (("F", nf), ("M", nm)):
            for j in range(n):
                i += 1
                hourly = 20 + 5 * int(grade) + (j % 5) - (1.0 if sex == "F" else 0.0) + (fam == "eng")
                rows.append(dict(Id=f"E{i:03d}", Sex=sex, Family=fam, Grade=grade, Hours=40 if j % 4 else 30,
                                 Salary=round(hourly * (40 if j % 4 else 30) * 52, 2), Bonus=0 if j % 3 else 1000, YearsIn=j % 7 + 0.5,
                                 Cur="EUR"))
    rows.append(dict(Id="E999", Sex="D", Family="ops", Grade="1", Hours=40, Salary=50000, Bonus=0, YearsIn=2.0, Cur="EUR"))
    return pl.DataFrame(rows)


BAD = {  # case: (change to the export, extra mapping text / None to drop gender from the mapping, words in the error)
    "no_gender": (lambda d: d.drop("Sex"), "drop_gender", ["no gender column"]),
    "no_women_no_men": (lambda d: d.with_columns(Sex=pl.lit("D")), "", ["neither women nor men", "non_binary"]),
    "zero_hours": (lambda d: d.with_columns(Hours=pl.when(pl.col("Id") == "E007").then(0).otherwise(pl.col("Hours"))), "", ["hours", "E007"]),
    "pay_missing": (lambda d: d.with_columns(Salary=pl.when(pl.col("Family") == "eng").then(None).otherwise(pl.col("Salary"))), "",
                    ["missing for everyone", "eng / 2"]),
    "currency_mix": (lambda d: d.with_columns(Cur=pl.when(pl.col("Id") == "E003").then(pl.lit("CHF")).otherwise(pl.col("Cur"))),
                     "  currency: Cur\n", ["currencies", "CHF", "rates"]),
}


def hr_ml(*args):
    "`hr-ml ARGS` in this process (the command's real process is kept by test_journey): the job still runs in its own kernel."
    return hr_ml_inprocess(*args)


def runs_in(out: Path) -> list:
    d = out / "pay_equity"
    return sorted(p for p in d.iterdir()) if d.exists() else []


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    "Every CLI run of this file, one after another in this process (each one starts a kernel; the runner is not thread-safe)."
    d = tmp_path_factory.mktemp("pe")
    export_rows().write_csv(d / "export.csv")
    (d / "mapping.yaml").write_text(MAPPING)
    jobs = {"synth": ["report", "pay-equity", "-p", "employees=3000", "-p", "tenants=10", "-p", "n_boot=30", "--no-progress", "--out", d / "synth"],
            "export": ["report", "pay-equity", "--data", d / "export.csv", "--mapping", d / "mapping.yaml", "-p", "n_boot=20",
                       "--no-progress", "--out", d / "export"]}
    for case, (change, extra, _) in BAD.items():
        change(export_rows()).write_csv(d / f"{case}.csv")
        m = MAPPING.replace("  gender: Sex\n", "") if extra == "drop_gender" else MAPPING + extra
        (d / f"{case}.yaml").write_text(m)
        jobs[case] = ["report", "pay-equity", "--data", d / f"{case}.csv", "--mapping", d / f"{case}.yaml", "--no-progress", "--out", d / case]
    export_rows().with_columns(Sex=pl.lit("F")).write_csv(d / "women_only.csv")
    jobs["women_only"] = ["report", "pay-equity", "--data", d / "women_only.csv", "--mapping", d / "mapping.yaml", "-p", "n_boot=0",
                          "--no-progress", "--out", d / "women_only"]
    res = {name: hr_ml(*a) for name, a in jobs.items()}
    return d, res


def test_synthetic_run_folder(cli):
    d, res = cli
    r = res["synth"]
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (run,) = runs_in(d / "synth")
    for f in ["executed.ipynb", "report.html", "params.yaml", "manifest.json", "indicators.json", "categories.parquet",
              "quartile_bands.png", "category_gaps.png"]:
        assert (run / f).exists(), f
    m = json.loads((run / "indicators.json").read_text())
    for key in ["mean_gap_pct", "median_gap_pct", "variable_mean_gap_pct", "variable_median_gap_pct", "variable_pay_share",
                "quartile_bands", "unexplained_gap_pct", "unexplained_gap_ci95", "categories", "planted_gap_pct"]:
        assert key in m, key
    assert m["planted_gap_pct"] == 4.0 and len(m["unexplained_gap_ci95"]) == 2
    lo, hi = m["unexplained_gap_ci95"]
    assert lo < m["unexplained_gap_pct"] < hi
    for c in m["categories"]:
        assert {"category", "gap_pct", "adjusted_gap_ci95", "n_female", "n_male", "suppressed", "art10_flag"} <= set(c)
    cats = pl.read_parquet(run / "categories.parquet")
    assert cats.height == len(m["categories"]) and {"art10_flag", "suppressed", "ci95_low", "ci95_high"} <= set(cats.columns)
    assert "unexplained gap" in r.stdout and str(run) in r.stdout
    assert "k: 5" in (run / "params.yaml").read_text()


def test_export_run_hides_four_women(cli):
    d, res = cli
    r = res["export"]
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (run,) = runs_in(d / "export")
    m = json.loads((run / "indicators.json").read_text())
    cats = pl.read_parquet(run / "categories.parquet")
    assert m["n_female"] == 44 and m["n_male"] == 51
    assert m["n_other_genders"] == {"non_binary": S5}                    # one non-binary employee: counted, not shown
    # the category with 4 women: no figure anywhere, only the suppression text
    (c,) = [c for c in m["categories"] if c["category"] == "ops / 2"]
    assert c["suppressed"] is True and c["art10_flag"] is None
    figures = {k: v for k, v in c.items() if k not in ("category", "suppressed", "art10_flag")}
    flat = [x for v in figures.values() for x in (v if isinstance(v, list) else [v])]
    assert flat and all(x == S5 for x in flat), c
    row = cats.filter(pl.col("category") == "ops / 2")
    assert row["suppressed"].item() and row["note"].item() == S5
    assert all(row[col].item() is None for col in cats.columns if col not in ("category", "suppressed", "variable_suppressed", "note"))
    # not derivable by subtraction: a complementary category is hidden too, and what the totals leave is >= k of each gender
    hidden = cats.filter(pl.col("suppressed"))["category"].to_list()
    assert len(hidden) >= 2 and "eng / 3" in hidden
    shown = cats.filter(~pl.col("suppressed"))
    rest_f, rest_m = m["n_female"] - shown["n_female"].sum(), m["n_male"] - shown["n_male"].sum()
    assert rest_f != 4 and rest_f >= 5 and rest_m >= 5
    # the regression still used everyone, with the export's factors
    assert m["objective_factors"] == ["Family", "Grade", "tenure_years"]
    assert isinstance(m["unexplained_gap_pct"], float)


def test_one_gender_export_complete_suppressed_report(cli):
    "An export of women only: the job runs, every gap reads suppressed, and the report says why."
    d, res = cli
    r = res["women_only"]
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (run,) = runs_in(d / "women_only")
    m = json.loads((run / "indicators.json").read_text())
    assert m["mean_gap_pct"] == S5 and m["unexplained_gap_pct"] == S5 and "only women" in m["note"]
    assert "No gap can be reported" in (run / "report.html").read_text()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_no_run(cli, case):
    d, res = cli
    r = res[case]
    # a busy machine sometimes makes the job's kernel log "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel." while
    # papermill shuts it down after the error: that line comes from hr_ml.runs' kernel, not from this report (reported)
    msg = "\n".join(l for l in (r.stderr or "").strip().splitlines() if not l.startswith("[IPKernelApp]"))
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    assert len(msg.splitlines()) == 1 and msg.startswith("error: "), msg
    for w in BAD[case][2]: assert w.lower() in msg.lower(), (w, msg)
    assert runs_in(d / case) == []                                       # no run folder, no temporary left behind


# ---------------------------------------------------------------- one mapping file for training, scoring and pay equity
def readme_mapping() -> str:
    "The mapping.yaml of the README's one-row-export section, exactly as a user copies it."
    text = (Path(__file__).parents[1] / "README.md").read_text()
    sec = text[text.index("### A one-row-per-employee export"):]
    return sec[sec.index("cat > mapping.yaml <<'YAML'\n") + len("cat > mapping.yaml <<'YAML'\n"):sec.index("\nYAML\n")] + "\n"


@pytest.fixture(scope="module")
def readme_export(tmp_path_factory):
    "The README's commands on a small demo export: train, score the same file with the run, pay-equity report."
    from hr_ml.tabular import demo_export
    d = tmp_path_factory.mktemp("readme")
    demo_export(n=500, seed=3).write_csv(d / "export.csv")
    (d / "mapping.yaml").write_text(readme_mapping())
    common = ["--data", d / "export.csv", "--mapping", d / "mapping.yaml", "--no-progress"]
    tr = hr_ml("train", "attrition", *common, "-p", "n_splits=3", "-p", "n_repeats=1",
               "-p", "model_params={n_estimators: 30, max_depth: 3}", "-p", "n_boot=20", "--no-track", "--out", d / "runs")
    pe = hr_ml("report", "pay-equity", *common, "-p", "n_boot=20", "--out", d / "runs")
    return d, tr, pe


def test_readme_mapping_trains_scores_and_reports(readme_export):
    d, tr, pe = readme_export
    assert "pay_equity:" in readme_mapping() and "target: Attrition" in readme_mapping()
    assert tr.returncode == 0, tr.stdout[-3000:] + tr.stderr[-3000:]
    assert pe.returncode == 0, pe.stdout[-3000:] + pe.stderr[-3000:]
    (run,) = sorted((d / "runs" / "attrition").iterdir())
    sc = hr_ml("score", "--model", run, "--data", d / "export.csv", "--out", d / "scores.parquet", "--no-progress")
    assert sc.returncode == 0, sc.stdout + sc.stderr
    s = pl.read_parquet(d / "scores.parquet")
    ids = pl.read_csv(d / "export.csv")["EmployeeNumber"].cast(pl.String)
    assert s["employee_id"].to_list() == ids.to_list() and {"risk", "bucket", "driver_1_text"} <= set(s.columns)
    (rep,) = runs_in(d / "runs")
    m = json.loads((rep / "indicators.json").read_text())
    staff = pl.read_csv(d / "export.csv").filter(pl.col("Attrition") == "No")
    assert m["n_female"] + m["n_male"] == staff.height                   # current staff only: the leavers are left out
    assert m["objective_factors"] == ["JobLevel", "JobRole", "Education", "tenure_years"]
    terms = m["unexplained_gap_terms"]
    # Education (1-5) declared categorical: one indicator per level, no slope; JobLevel (a category) likewise
    assert {"Education=2", "Education=5", "JobLevel=2"} <= set(terms) and "Education" not in terms and "JobLevel" not in terms
    assert "tenure_years" in terms and isinstance(m["unexplained_gap_pct"], float)
    assert [c["category"] for c in m["categories"]] == sorted(staff["JobLevel"].cast(pl.String).unique().to_list())


def test_numeric_factor_is_a_slope_unless_declared_categorical(tmp_path):
    from hr_ml.tabular import demo_export
    demo_export(n=400, seed=5).write_csv(tmp_path / "export.csv")
    base = "target: Attrition\npositive: 'Yes'\npay_equity:\n  hours: 40\n  factors: [Education]\n"
    terms = {}
    for name, extra in (("slope", ""), ("categorical", "  categorical: [Education]\n")):
        pd_ = PE.load_pay(tmp_path / "export.csv", {**__import__("yaml").safe_load(base + extra)})
        rep, _ = PE.report(pd_.pay, 5, pd_.factors, 0, 0, 5.0, pd_.categories)
        terms[name] = rep["unexplained_gap_terms"]
    assert "Education" in terms["slope"] and not any(t.startswith("Education=") for t in terms["slope"])
    assert "Education" not in terms["categorical"] and {"Education=2", "Education=3", "Education=4", "Education=5"} <= set(terms["categorical"])


def test_tenure_from_hire_date_and_defaults(tmp_path):
    "Tenure is computed from the hire date to as_of; `defaults:` supplies a column the export lacks (here the weekly hours)."
    df = pl.DataFrame({"Id": [f"E{i}" for i in range(12)], "Sex": ["F", "M"] * 6, "Grade": ["1", "1", "2", "2"] * 3,
                       "Pay": [3000 + 100 * i for i in range(12)], "Start": [f"0{1 + i % 9}.03.20{10 + i}" for i in range(12)]})
    df.write_csv(tmp_path / "pay.csv")
    m = {"defaults": {"Hours": 30}, "pay_equity": {"id": "Id", "gender": "Sex", "pay": "Pay", "period": "monthly", "hours": "Hours",
                                                   "categories": ["Grade"], "hire_date": "Start", "as_of": "2024-06-30"}}
    pd_ = PE.load_pay(tmp_path / "pay.csv", m)
    start = [date(2010 + i, 3, 1 + i % 9) for i in range(12)]
    assert pd_.pay["tenure_years"].to_list() == pytest.approx([(date(2024, 6, 30) - s).days / 365.25 for s in start])
    assert pd_.factors == ["Grade", "tenure_years"] and pd_.as_of == "2024-06-30"
    assert pd_.pay["weekly_hours"].unique().to_list() == [30.0]
    assert pd_.pay["hourly_base"].to_list() == pytest.approx([(3000 + 100 * i) * 12 / (30 * 52) for i in range(12)])
    with pytest.raises(HRDataError, match="column Sex .pay_equity.hire_date. does not hold dates"):
        PE.load_pay(tmp_path / "pay.csv", {**m, "pay_equity": {**m["pay_equity"], "hire_date": "Sex"}})


# ---------------------------------------------------------------- per-tenant reports (issue 17)
import math, shutil
import numpy as np
from hr_ml import pay_platform as PP
from hr_ml.suppression import scan_for_small


@pytest.fixture(scope="module")
def hris():
    tables, truth = generate(n_employees=1500, n_tenants=10, seed=5)
    return {n: tables[n] for n in ("employees", "compensation", "job_changes")}


def test_ols_hc3_equals_statsmodels_on_tenants(hris):
    "The closed-form OLS/HC3 equals statsmodels' OLS(...).fit(cov_type='HC3') to 1e-8 on every tenant of a small HRIS."
    import statsmodels.api as sm
    pay = PE.pay_table(hris)
    n = 0
    for tid in sorted(pay["tenant_id"].unique().to_list()):
        d = PE._binary(pay.filter(pl.col("tenant_id") == tid)).filter(pl.col("hourly_base") > 0)
        for facs in (PE.FACTORS, ["location", "tenure_years"]):
            X, _ = PE._design(d, facs)
            y = np.log(d["hourly_base"].to_numpy())
            o = PP.ols_hc3(y, X)
            if o is None: continue
            r = sm.OLS(y[o["rows"]], X[np.ix_(o["rows"], o["columns"])]).fit(cov_type="HC3", use_t=True)
            assert abs(o["beta"] - r.params[0]) < 1e-8 and abs(o["se_hc3"] - r.bse[0]) < 1e-8
            assert np.allclose(o["ci95_beta"], r.conf_int(0.05)[0], atol=1e-8) and abs(o["p_value"] - r.pvalues[0]) < 1e-8
            n += 1
    assert n >= 8


def test_ols_not_estimable_and_stable_under_aliasing():
    "A female indicator in the span of other columns is not estimable (None); aliased dummies give the same gap in any order."
    rng = np.random.default_rng(0)
    n = 30
    f = np.r_[np.ones(15), np.zeros(15)]
    loc = rng.integers(0, 2, n).astype(float)
    y = 3 + 0.05 * loc - 0.04 * f + rng.normal(0, 0.05, n)
    assert PP.ols_hc3(y, np.column_stack([np.ones(n), f, 1 - f, loc])) is None        # female = 1 - other: not identified
    a = PP.ols_hc3(y, np.column_stack([np.ones(n), f, loc, loc, 1 - loc]))            # loc twice and its complement: aliased
    b = PP.ols_hc3(y, np.column_stack([np.ones(n), f, 1 - loc, loc, loc]))
    c = PP.ols_hc3(y, np.column_stack([np.ones(n), f, loc]))
    assert abs(a["beta"] - c["beta"]) < 1e-12 and abs(b["beta"] - c["beta"]) < 1e-12 and abs(a["se_hc3"] - c["se_hc3"]) < 1e-12
    assert a["dropped"] == [3, 4]


def _planted(rng, n, gap):
    "One tenant's pay table with a planted unexplained gap (log-linear in the objective factors)."
    fam = rng.choice(["eng", "ops", "sales"], n); lvl = rng.integers(1, 4, n); loc = rng.choice(["Lisbon", "Berlin"], n)
    ten = rng.uniform(0, 20, n); fem = rng.integers(0, 2, n)
    fx = {"eng": 0.3, "ops": 0.0, "sales": 0.1}
    logp = np.log(25) + np.array([fx[x] for x in fam]) + 0.2 * lvl + 0.1 * (loc == "Berlin") + 0.01 * ten + np.log1p(-gap / 100) * fem \
        + rng.normal(0, 0.08, n)
    return pl.DataFrame({"gender": np.where(fem == 1, "female", "male"), "job_family": fam, "job_level": lvl.astype(np.int32),
                         "location": loc, "tenure_years": ten, "hourly_base": np.exp(logp)})


def test_planted_gap_ci_coverage_over_tenants():
    "Each tenant's planted gap (different per tenant) is covered by its 95% CI at the nominal rate, within 3 binomial SEs."
    rng = np.random.default_rng(17)
    cover, n = 0, 300
    for i in range(n):
        gap = float(rng.uniform(0, 12))
        g = PP.fast_gap(_planted(rng, int(rng.integers(40, 120)), gap), PE.FACTORS)
        assert g is not None and g["factors_used"] == list(PE.FACTORS)
        cover += g["ci95"][0] <= gap <= g["ci95"][1]
    assert abs(cover / n - 0.95) <= 3 * math.sqrt(0.95 * 0.05 / n), cover


def test_tiny_tenant_fully_suppressed_and_summary_reveals_nothing(hris, tmp_path):
    "A tenant of 8 workers (3 women, 5 men) gets a complete report, all suppressed; its tenants.parquet row holds no figure."
    emp = hris["employees"]
    ids = (emp.filter(pl.col("tenant_id") == "T00001", pl.col("termination_date").is_null()).filter(pl.col("gender").is_in(["female", "male"])))
    keep = pl.concat([ids.filter(pl.col("gender") == "female").head(3), ids.filter(pl.col("gender") == "male").head(5)])
    tiny = {n: pl.concat([t.filter(pl.col("tenant_id") != "T00001"),
                          t.filter(pl.col("tenant_id") == "T00001").join(keep.select("tenant_id", "employee_id"), on=["tenant_id", "employee_id"])])
            for n, t in hris.items()}
    s = PP.report_tenants(tiny, tmp_path / "run", workers=1)
    row = s.filter(pl.col("tenant_id") == "T00001").row(0, named=True)
    assert row["status"] == "fully suppressed" and row["workers"] == 8 and row["must_report"] is False
    assert row["mean_gap_pct"] is None and row["median_gap_pct"] is None and row["art10_flags"] is None
    assert set(s.columns) == set(PP.SUMMARY_SCHEMA)                       # no counts by gender, no pay figure beside the gaps
    d = tmp_path / "run" / "tenants" / "T00001"
    assert sorted(p.name for p in d.iterdir()) == ["categories.parquet", "indicators.json", "report.html", "summary.json"]
    ind = json.loads((d / "indicators.json").read_text())
    assert ind["mean_gap_pct"] == S5 and ind["unexplained_gap_pct"] == S5 and all(b["suppressed"] for b in ind["quartile_bands"])
    assert scan_for_small(ind, 5) == [] and scan_for_small(pl.read_parquet(d / "categories.parquet"), 5) == []
    assert pl.read_parquet(d / "categories.parquet")["suppressed"].all()
    html = (d / "report.html").read_text()
    assert html.index("Summary") < html.index("indicators") and "voluntary" in html


def test_resume_after_kill_and_bad_tenant(hris, tmp_path):
    "A killed run (a half-written tmp folder, a tenant missing) resumes without duplicates; bad data is an error row, not a failed run."
    bad = {**hris, "employees": hris["employees"].with_columns(
        weekly_hours=pl.when(pl.col("tenant_id") == "T00003").then(0.0).otherwise(pl.col("weekly_hours")))}
    run = tmp_path / "run"
    s1 = PP.report_tenants(bad, run, workers=1, chunk_size=4)
    err = s1.filter(pl.col("tenant_id") == "T00003").row(0, named=True)
    assert err["status"] == "error" and "weekly_hours" in err["why"] and s1.filter(pl.col("status") != "error").height == 9
    root = run / "tenants"
    shutil.rmtree(root / "T00005")                                            # killed before T00005 was renamed into place
    half = root / ".tmp-T00005-deadbeef"; half.mkdir(); (half / "indicators.json").write_text("{")
    keep = (root / "T00002" / "summary.json").stat().st_mtime_ns
    s2 = PP.report_tenants(bad, run, workers=1, chunk_size=4)
    assert not half.exists() and (root / "T00005" / "report.html").exists()
    assert (root / "T00002" / "summary.json").stat().st_mtime_ns == keep     # done tenants are skipped
    assert s2["tenant_id"].n_unique() == s2.height == 10 and s2.to_dicts() == s1.to_dicts()
    assert sorted(p.name for p in root.iterdir()) == sorted(s1["tenant_id"].to_list())
    s3 = PP.report_tenants(bad, tmp_path / "one", tenants="T00002,NOPE", workers=1)
    assert s3["tenant_id"].to_list() == ["NOPE", "T00002"] and s3["status"].to_list()[0] == "error"


def test_obligations_by_size_and_config(tmp_path):
    "Art. 9(2)-(4) by worker count; the thresholds come from configuration."
    assert PP.obligation(250, "2027-01-01")["next_due"] == "2027-06-07" and PP.obligation(250, "2027-01-01")["cycle_years"] == 1
    assert PP.obligation(249, "2028-01-01")["next_due"] == "2030-06-07"
    assert PP.obligation(100, "2028-01-01")["next_due"] == "2031-06-07" and not PP.obligation(99, "2028-01-01")["must_report"]
    y = tmp_path / "ob.yaml"
    y.write_text("bands:\n  - {min_workers: 50, first_due: '2027-06-07', cycle_years: 1}\n")
    assert PP.obligation(60, "2027-01-01", PP.load_obligations(y))["must_report"]
    y.write_text("bands: 3\n")
    with pytest.raises(HRDataError): PP.load_obligations(y)


def test_cli_per_tenant_run_and_resume(tmp_path):
    "hr-ml report pay-equity --per-tenant writes a run folder per tenant and tenants.parquet; --resume RUN redoes nothing."
    cmd = ["report", "pay-equity", "-p", "employees=1500", "-p", "tenants=10", "-p", "workers=1", "--out", tmp_path]
    r = hr_ml(*cmd, "--per-tenant")
    assert r.returncode == 0, r.stdout + r.stderr
    (run,) = (tmp_path / "pay_equity_tenants").iterdir()
    s = pl.read_parquet(run / "tenants.parquet")
    assert s.height == 10 and set(s["status"]) <= {"ok", "flagged", "fully suppressed", "error"} and "10 tenants" in r.stdout
    assert all((run / "tenants" / t / "report.html").exists() for t in s.filter(pl.col("status") != "error")["tenant_id"])
    stamp = {p.name: (p / "summary.json").stat().st_mtime_ns for p in (run / "tenants").iterdir()}
    r2 = hr_ml(*cmd, "--resume", run.name)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert {p.name: (p / "summary.json").stat().st_mtime_ns for p in (run / "tenants").iterdir()} == stamp
    r3 = hr_ml(*cmd, "--resume", "nope")
    assert r3.returncode != 0 and "no per-tenant run" in (r3.stdout + r3.stderr) and "Traceback" not in r3.stderr


def test_adjusted_gap_stable_with_a_singleton_level():
    "A location held by one person (leverage 1, HC3's 0/0) no longer makes the CI depend on rounding: the row is dropped, the gap kept."
    rng = np.random.default_rng(4)
    d = _planted(rng, 40, 6.0).with_columns(location=pl.Series(["Porto"] + ["Lisbon"] * 39))
    a = PE._ols_gap(d, PE.FACTORS)
    b = PE._ols_gap(d.reverse(), PE.FACTORS)                              # same people, other order: same figures
    assert a["factors_used"] == list(PE.FACTORS) and a["n_leverage_one"] >= 1
    assert abs(a["adjusted_gap_pct"] - b["adjusted_gap_pct"]) < 1e-9 and max(abs(x - y) for x, y in zip(a["ci95"], b["ci95"])) < 1e-9
