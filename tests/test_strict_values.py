"""Strict values on every path: a bad-input corpus over `hr-ml validate`, the pay-equity job, `hr-ml score`, the API
(scores and what-if), `hr-ml erase`, the job runner and `-p`. Each case states the one line the user reads; the
contract is exit code 2 (or a 422), no traceback, and no partial output or run folder."""
import datetime as dt, io, json, math, os, subprocess, sys
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hr_ml.attrition import AttritionModel
from hr_ml.cli import app
from hr_ml.features import FEATURES, build_features
from hr_ml.monitor import reference_profile, save_profile
from hr_ml.serve import create_app, create_key, load_served_model
from hr_ml.synth import generate

SCORES, WHATIF = "/v1/tenants/{}/attrition/scores", "/v1/tenants/{}/attrition/what-if"
runner = CliRunner()


def cli(*args, cwd=None):
    "Run `hr-ml ARGS` in-process (in `cwd`); returns (exit code, stdout, stderr)."
    old = os.getcwd()
    try:
        if cwd: os.chdir(cwd)
        r = runner.invoke(app, [str(a) for a in args])
    finally: os.chdir(old)
    err = r.stderr
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"traceback instead of a one-line error: {r.exception!r}")
    return r.exit_code, r.stdout, err


def one_line_error(code, out, err, expect):
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and expect in lines[0], (expect, lines[0])


# ------------------------------------------------------------------ a tiny valid HRIS, and ways to break it

def tiny_hris()->dict:
    d = dt.date
    emp = pl.DataFrame({
        "tenant_id": ["T1", "T1", "T1", "T2", "T2"], "employee_id": ["E001", "E002", "E003", "E001", "E002"],
        "hire_date": [d(2019, 4, 1), d(2021, 1, 15), d(2022, 9, 1), d(2018, 3, 1), d(2023, 5, 2)],
        "termination_date": [None, d(2024, 6, 30), None, None, None], "termination_type": [None, "voluntary", None, None, None],
        "department": ["engineering", "engineering", "sales", "production", "production"],
        "job_family": ["software", "software", "sales", "baking", "baking"], "job_level": [5, 3, 2, 4, 1],
        "location": ["DE", "DE", "DE", "AT", "AT"], "employment_type": ["full_time", "full_time", "part_time", "full_time", "part_time"],
        "weekly_hours": [40.0, 40.0, 20.0, 38.5, 25.0], "manager_id": [None, "E001", "E001", None, "E001"],
        "birth_year": [1985, 1994, 1990, 1972, 2001], "gender": ["male", "female", "female", "male", "non_binary"]})
    comp = pl.DataFrame({
        "tenant_id": ["T1", "T1", "T1", "T1", "T2", "T2"], "employee_id": ["E001", "E001", "E002", "E003", "E001", "E002"],
        "effective_date": [d(2019, 4, 1), d(2023, 1, 1), d(2021, 1, 15), d(2022, 9, 1), d(2018, 3, 1), d(2023, 5, 2)],
        "base_salary": [72000.0, 78500.0, 54000.0, 26000.0, 39000.0, 17500.0], "variable_pay": [5000.0, 6000.0, 0.0, 1500.0, 0.0, 0.0],
        "currency": ["EUR"] * 6})
    rev = pl.DataFrame({"tenant_id": ["T1", "T1", "T2"], "employee_id": ["E001", "E002", "E001"],
                        "review_date": [d(2023, 12, 15), d(2023, 12, 15), d(2023, 12, 20)], "rating": [4, 2, 3]})
    ts = pl.DataFrame({"tenant_id": ["T1", "T2"], "employee_id": ["E001", "E001"], "period_start": [d(2024, 1, 1), d(2024, 1, 1)],
                       "hours_worked": [500.0, 480.0]})
    return {"employees": emp, "compensation": comp, "reviews": rev, "timesheets": ts}


def at(df, col, i, v, dtype=None):
    "`df` with row `i` of `col` set to `v` (in the column's dtype where `v` fits it, else as polars infers)."
    s = df[col].to_list(); s[i] = v
    try: return df.with_columns(pl.Series(col, s, dtype=dtype or df[col].dtype, strict=True))
    except (TypeError, OverflowError, pl.exceptions.PolarsError): return df.with_columns(pl.Series(col, s))


BAD_HRIS = [  # (case, table, change, expected words of the one line)
    ("NaN salary", "compensation", lambda d: at(d, "base_salary", 2, float("nan")), "compensation.base_salary: 1 row has a base_salary that is not a finite number"),
    ("+inf salary", "compensation", lambda d: at(d, "base_salary", 0, float("inf")), "base_salary that is not a finite number (NaN or ±inf) (first: T1/E001)"),
    ("-inf variable pay", "compensation", lambda d: at(d, "variable_pay", 3, float("-inf")), "compensation.variable_pay: 1 row has a variable_pay that is not a finite number"),
    ("NaN variable pay", "compensation", lambda d: at(d, "variable_pay", 1, float("nan")), "variable_pay that is not a finite number"),
    ("1e300 salary", "compensation", lambda d: at(d, "base_salary", 4, 1e300), "compensation.base_salary: 1 row has a base_salary of 10,000,000 or more a year"),
    ("salary 20 million EUR", "compensation", lambda d: at(d, "base_salary", 1, 2e7), "base_salary of 10,000,000 or more a year (in JPY, KRW"),
    ("variable pay 1e12", "compensation", lambda d: at(d, "variable_pay", 0, 1e12), "variable_pay of 10,000,000 or more a year"),
    ("zero salary", "compensation", lambda d: at(d, "base_salary", 5, 0.0), "compensation.base_salary: 1 row has a base_salary of 0 (first: T2/E002)"),
    ("negative salary", "compensation", lambda d: at(d, "base_salary", 3, -100.0), "compensation.base_salary: 1 row has a negative base_salary (first: T1/E003)"),
    ("weekly hours 0", "employees", lambda d: at(d, "weekly_hours", 0, 0.0), "employees.weekly_hours: 1 row has weekly_hours outside (0, 80] (first: T1/E001)"),
    ("weekly hours 81", "employees", lambda d: at(d, "weekly_hours", 1, 81.0), "weekly_hours outside (0, 80] (first: T1/E002)"),
    ("weekly hours NaN", "employees", lambda d: at(d, "weekly_hours", 2, float("nan")), "employees.weekly_hours: 1 row has a weekly_hours that is not a finite number"),
    ("weekly hours -inf", "employees", lambda d: at(d, "weekly_hours", 3, float("-inf")), "weekly_hours that is not a finite number (NaN or ±inf) (first: T2/E001)"),
    ("job level 99999999999", "employees", lambda d: at(d, "job_level", 2, 99999999999, pl.Int64), "employees.job_level (employees.parquet): expected Int32, got Int64; row 3: 99999999999 is not a whole number"),
    ("job level 13", "employees", lambda d: at(d, "job_level", 0, 13), "employees.job_level: 1 row has job_level outside 1..12 (first: T1/E001)"),
    ("job level -2", "employees", lambda d: at(d, "job_level", 4, -2), "job_level outside 1..12 (first: T2/E002)"),
    ("hired at 10", "employees", lambda d: at(d, "birth_year", 0, 2009), "employees.hire_date: 1 row has a hire_date before the employee turned 14 (birth_year + 14) (first: T1/E001)"),
    ("born 1800", "employees", lambda d: at(d, "birth_year", 3, 1800), "employees.birth_year: 1 row has birth_year outside 1900.."),
    ("termination before hire", "employees", lambda d: at(at(d, "termination_date", 2, dt.date(2020, 1, 1)), "termination_type", 2, "other"),
     "employees.termination_date: 1 row has termination_date before hire_date (first: T1/E003)"),
    ("hired in the future", "employees", lambda d: at(d, "hire_date", 4, dt.date.today() + dt.timedelta(days=40)), "employees.hire_date: 1 row has hire_date in the future"),
    ("duplicate employee", "employees", lambda d: pl.concat([d, d.tail(1)]), "employees.employee_id: 2 rows share a key (tenant_id, employee_id)"),
    ("rating 6", "reviews", lambda d: at(d, "rating", 0, 6), "reviews.rating: 1 row has rating outside 1..5 (first: T1/E001)"),
    ("negative hours worked", "timesheets", lambda d: at(d, "hours_worked", 0, -5.0), "timesheets.hours_worked: 1 row has negative hours_worked"),
    ("hours worked 1e9", "timesheets", lambda d: at(d, "hours_worked", 1, 1e9), "timesheets.hours_worked: 1 row has hours_worked above the 2,208 hours of a quarter"),
    ("hours worked NaN", "timesheets", lambda d: at(d, "hours_worked", 1, float("nan")), "timesheets.hours_worked: 1 row has a hours_worked that is not a finite number"),
]


def write_hris(folder:Path, tables:dict, fmt="parquet")->Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t, df in tables.items():
        if fmt == "parquet": df.write_parquet(folder / f"{t}.parquet")
        else: df.write_csv(folder / f"{t}.csv")
    return folder


@pytest.mark.parametrize("case, table, change, expect", BAD_HRIS, ids=[c[0] for c in BAD_HRIS])
def test_validate_refuses_bad_values_from_parquet(tmp_path, case, table, change, expect):
    t = tiny_hris(); t[table] = change(t[table])
    one_line_error(*cli("validate", "--data", write_hris(tmp_path / "hris", t)), expect)


BAD_CSV = [  # the same contract when the export is text
    ("job level 99999999999 (CSV)", "employees", "job_level", 2, "99999999999", "employees.job_level (employees.csv, row 4): '99999999999' is not a whole number of plausible size"),
    ("text in a salary (CSV)", "compensation", "base_salary", 1, "abc", "compensation.base_salary (compensation.csv, row 3): 'abc' is not a number"),
    ("1e300 salary (CSV)", "compensation", "base_salary", 0, "1e300", "compensation.base_salary (compensation.csv, row 2): '1e300' is not a number"),
    ("salary 99,000,000 (CSV)", "compensation", "base_salary", 0, "99000000", "compensation.base_salary: 1 row has a base_salary of 10,000,000 or more a year"),
    ("weekly hours 200 (CSV)", "employees", "weekly_hours", 0, "200", "weekly_hours outside (0, 80] (first: T1/E001)"),
]


@pytest.mark.parametrize("case, table, col, i, raw, expect", BAD_CSV, ids=[c[0] for c in BAD_CSV])
def test_validate_refuses_bad_values_from_csv(tmp_path, case, table, col, i, raw, expect):
    t = tiny_hris()
    t[table] = t[table].with_columns(pl.col(col).cast(pl.String)).pipe(lambda d: at(d, col, i, raw, pl.String))
    one_line_error(*cli("validate", "--data", write_hris(tmp_path / "hris", t, "csv")), expect)


def test_the_valid_hris_passes(tmp_path):
    code, out, err = cli("validate", "--data", write_hris(tmp_path / "hris", tiny_hris()))
    assert code == 0 and out.startswith("OK: 2 tenants, 5 employees"), out + err


# ------------------------------------------------------------------ the pay-equity job validates like `validate`

PAY_EQUITY = [
    ("duplicate employee", "employees", lambda d: pl.concat([d, d.tail(1)]), "employees.employee_id: 2 rows share a key"),
    ("termination before hire", "employees", lambda d: at(at(d, "termination_date", 2, dt.date(2020, 1, 1)), "termination_type", 2, "other"),
     "employees.termination_date: 1 row has termination_date before hire_date"),
    ("1e300 salary", "compensation", lambda d: at(d, "base_salary", 4, 1e300), "base_salary of 10,000,000 or more a year"),
]


@pytest.mark.parametrize("case, table, change, expect", PAY_EQUITY, ids=[c[0] for c in PAY_EQUITY])
def test_pay_equity_job_validates_and_leaves_no_folder(tmp_path, case, table, change, expect):
    t = tiny_hris(); t[table] = change(t[table])
    one_line_error(*cli("report", "pay-equity", "--data", write_hris(tmp_path / "hris", t), "--out", tmp_path / "out", "--no-progress"), expect)
    assert not (tmp_path / "out").exists()  # a failed run leaves no folders


# ------------------------------------------------------------------ scoring: domains refused, training range flagged

@pytest.fixture(scope="module")
def scoring(tmp_path_factory):
    d = tmp_path_factory.mktemp("strict_score")
    tables, _ = generate(n_employees=900, n_tenants=3, seed=4)
    snap = build_features(tables, dt.date(2024, 12, 31))
    model = AttritionModel(n_estimators=20, max_depth=3, early_stopping_rounds=None, n_jobs=1).fit(snap.select(FEATURES), snap["label"])
    run = model.save(d / "run")
    save_profile(reference_profile(snap.select(FEATURES), model.predict_risk(snap.select(FEATURES)), FEATURES, k=5), run / "reference_profile.json")
    feats = snap.select("tenant_id", "employee_id", *FEATURES).head(40)
    feats.write_parquet(d / "features.parquet")
    return d, run, feats, tables


BAD_FEATURES = [  # (case, column, value, expected words)
    ("compa_ratio -3", "compa_ratio", -3.0, "column 'compa_ratio' row 3: -3 is outside what compa_ratio can be (0 to 20)"),
    ("manager_changes_12m -4", "manager_changes_12m", -4, "column 'manager_changes_12m' row 3: -4 is outside what manager_changes_12m can be"),
    ("tenure 1e308", "tenure_years", 1e308, "column 'tenure_years' row 3: 1e+308 is outside what tenure_years can be (0 to 80)"),
    ("tenure NaN", "tenure_years", float("nan"), "column 'tenure_years' row 3: nan is outside"),
    ("weekly hours +inf", "weekly_hours", float("inf"), "column 'weekly_hours' row 3: inf is outside"),
    ("sick days 90d = 91", "sick_days_90d", 91, "column 'sick_days_90d' row 3: 91 is outside what sick_days_90d can be (0 to 90)"),
    ("overtime ratio 50", "overtime_ratio", 50.0, "column 'overtime_ratio' row 3: 50 is outside"),
    ("part_time 2", "part_time", 2, "column 'part_time' row 3: 2 is outside what part_time can be (0 to 1)"),
    ("job level -1", "job_level", -1, "column 'job_level' row 3: -1 is outside"),
    ("negative team exits", "team_exits_6m", -1, "column 'team_exits_6m' row 3: -1 is outside"),
    ("months since raise -1e9", "months_since_raise", -1e9, "column 'months_since_raise' row 3: -1e+09 is outside"),
]


@pytest.mark.parametrize("case, col, value, expect", BAD_FEATURES, ids=[c[0] for c in BAD_FEATURES])
def test_score_refuses_values_outside_the_domain(scoring, tmp_path, case, col, value, expect):
    d, run, feats, _ = scoring
    bad = at(feats, col, 2, value)
    bad.write_parquet(tmp_path / "bad.parquet")
    one_line_error(*cli("score", "--model", run, "--data", tmp_path / "bad.parquet", "--out", tmp_path / "s.parquet", "--no-progress"), expect)
    assert not (tmp_path / "s.parquet").exists() and not list(tmp_path.glob(".s.parquet*"))  # no partial output


def test_score_csv_names_the_file_line(scoring, tmp_path):
    d, run, feats, _ = scoring
    at(feats, "compa_ratio", 4, -3.0).write_csv(tmp_path / "bad.csv")
    one_line_error(*cli("score", "--model", run, "--data", tmp_path / "bad.csv", "--out", tmp_path / "s.parquet", "--no-progress"),
                   "bad.csv: column 'compa_ratio' row 6: -3 is outside")


def test_score_on_an_hris_export_validates_it(scoring, tmp_path):
    d, run, feats, tables = scoring
    t = dict(tables); t["employees"] = pl.concat([t["employees"], t["employees"].tail(1)])
    one_line_error(*cli("score", "--model", run, "--data", write_hris(tmp_path / "hris", t), "--out", tmp_path / "s.parquet", "--no-progress"),
                   "employees.employee_id: 2 rows share a key")
    assert not (tmp_path / "s.parquet").exists()


def test_score_flags_values_beyond_the_training_range(scoring, tmp_path):
    d, run, feats, _ = scoring
    at(feats, "compa_ratio", 0, 9.0).write_parquet(tmp_path / "odd.parquet")
    code, out, err = cli("score", "--model", run, "--data", tmp_path / "odd.parquet", "--out", tmp_path / "s.parquet", "--no-progress")
    assert code == 0, err
    assert "note: 1 value of compa_ratio outside the range seen in training" in out, out
    code, out, err = cli("score", "--model", run, "--data", d / "features.parquet", "--out", tmp_path / "t.parquet", "--no-progress")
    assert code == 0 and "compa_ratio outside" not in out, out


@pytest.mark.parametrize("case, change, expect", [
    ("no manifest", lambda run: (run / "manifest.json").unlink(), "no manifest.json, so its model files cannot be verified"),
    ("edited calibrator, no manifest", lambda run: ((run / "model.json").write_text((run / "model.json").read_text().replace('"calibrator_"', '"calibrator_x"', 1)),
                                                    (run / "manifest.json").unlink()), "no manifest.json"),
    ("edited calibrator", lambda run: (run / "model.json").write_text((run / "model.json").read_text() + " "), "model.json does not match the SHA-256"),
    ("damaged manifest", lambda run: (run / "manifest.json").write_text("{"), "manifest.json: not valid JSON"),
], ids=["no manifest", "edited calibrator, no manifest", "edited model.json", "damaged manifest"])
def test_a_run_folder_without_a_trustworthy_manifest_is_refused(scoring, tmp_path, case, change, expect):
    import shutil
    d, run, feats, _ = scoring
    r2 = tmp_path / "run"; shutil.copytree(run, r2)
    change(r2)
    one_line_error(*cli("score", "--model", r2, "--data", d / "features.parquet", "--out", tmp_path / "s.parquet", "--no-progress"), expect)


# ------------------------------------------------------------------ the API: 422 outside the domain, a warning beyond the training range

@pytest.fixture(scope="module")
def api(scoring):
    d, run, feats, _ = scoring
    model = load_served_model(run)
    state = d / "state"
    _, secret = create_key("T00001", state)
    return TestClient(create_app(model, state)), {"Authorization": f"Bearer {secret}"}, feats


def body(feats, i=0, **change):
    row = feats.row(i, named=True)
    return {"employee_id": row["employee_id"], "features": {**{f: row[f] for f in FEATURES}, **change}}


BAD_API = [  # (case, route, change, the field the 422 names)
    ("scores: compa_ratio -3", "scores", {"compa_ratio": -3.0}, "compa_ratio"),
    ("scores: manager_changes_12m -4", "scores", {"manager_changes_12m": -4}, "manager_changes_12m"),
    ("scores: tenure 1e308", "scores", {"tenure_years": 1e308}, "tenure_years"),
    ("scores: sick days 90d 500", "scores", {"sick_days_90d": 500}, "sick_days_90d"),
    ("scores: weekly hours 1000", "scores", {"weekly_hours": 1000.0}, "weekly_hours"),
    ("scores: job level 1e6", "scores", {"job_level": 1_000_000}, "job_level"),
    ("scores: vacation ratio -1", "scores", {"vacation_ratio": -1.0}, "vacation_ratio"),
    ("what-if: compa_ratio -3", "what-if", {"change": {"feature": "compa_ratio", "value": -3.0}}, "compa_ratio"),
    ("what-if: manager_changes_12m -4", "what-if", {"change": {"feature": "manager_changes_12m", "value": -4}}, "manager_changes_12m"),
    ("what-if: weekly hours -5", "what-if", {"change": {"feature": "weekly_hours", "value": -5.0}}, "weekly_hours"),
    ("what-if: months since raise 1e308", "what-if", {"change": {"feature": "months_since_raise", "value": 1e308}}, "months_since_raise"),
]


@pytest.mark.parametrize("case, route, change, field", BAD_API, ids=[c[0] for c in BAD_API])
def test_api_refuses_values_outside_the_domain(api, case, route, change, field):
    client, h, feats = api
    if route == "scores": r = client.post(SCORES.format("T00001"), json={"employees": [body(feats, 0, **change)]}, headers=h)
    else: r = client.post(WHATIF.format("T00001"), json={**body(feats, 0), **change}, headers=h)
    assert r.status_code == 422, r.text
    assert any(field in map(str, e["loc"]) for e in r.json()["detail"]), r.json()


def test_api_warns_beyond_the_training_range(api):
    client, h, feats = api
    r = client.post(SCORES.format("T00001"), json={"employees": [body(feats, 0, compa_ratio=9.0), body(feats, 1)]}, headers=h)
    assert r.status_code == 200, r.text
    w = [e["warnings"] for e in r.json()["employees"]]
    assert any("compa_ratio 9 is outside the range seen in training" in x for x in w[0]), w
    assert not any("outside the range" in x for x in w[1]), w
    r = client.post(WHATIF.format("T00001"), json={**body(feats, 0), "change": {"feature": "compa_ratio", "value": 12.0}}, headers=h)
    assert r.status_code == 200 and any(x.startswith("new value: compa_ratio 12 is outside the range seen in training") for x in r.json()["warnings"]), r.text


# ------------------------------------------------------------------ erase

@pytest.mark.parametrize("case, args, expect", [
    ("missing score file", ["--scores", "{d}/missing.parquet"], "missing.parquet: score file not found. Check --scores."),
    ("missing runs folder", ["--runs", "{d}/nowhere"], "nowhere: runs folder not found. Check --runs."),
    ("score file without ids", ["--scores", "{d}/noids.parquet"], "no tenant_id and employee_id columns"),
    ("remote MLflow store", ["--runs", "{d}/runs", "--tracking-uri", "http://mlflow.example:5000"], "erasure rewrites artifact files on this machine"),
    ("no tenant", None, "Missing option '--tenant'"),
], ids=["missing score file", "missing runs folder", "score file without ids", "remote MLflow store", "no tenant"])
def test_erase_bad_input(tmp_path, case, args, expect):
    (tmp_path / "runs").mkdir()
    pl.DataFrame({"risk": [0.1]}).write_parquet(tmp_path / "noids.parquet")
    if args is None:
        code, out, err = cli("erase", "--employee", "E1", "--state", tmp_path / "state")
        assert code == 2 and expect in err, err
        return
    one_line_error(*cli("erase", "--tenant", "T1", "--employee", "E1", "--state", tmp_path / "state", *[a.format(d=tmp_path) for a in args]), expect)


# ------------------------------------------------------------------ -p values typed like the job's parameters

BAD_P = [
    ("train_attrition", "k_anon=abc", "-p k_anon=abc: expected an integer (default 5)"),
    ("train_attrition", "n_boot=1.5", "-p n_boot=1.5: expected an integer (default 200)"),
    ("train_attrition", "seed=true", "-p seed=true: expected an integer (default 0)"),
    ("train_attrition", "cuts=0.2", "-p cuts=0.2: expected a list (default [0.15, 0.35])"),
    ("train_attrition", "exclude=location", "-p exclude=location: expected a list (default [])"),
    ("train_attrition", "model_params=3", "-p model_params=3: expected a mapping"),
    ("train_attrition", "horizon_months=.nan", "-p horizon_months=.nan: expected an integer (default 12)"),
    ("train_attrition", "employees=[1, 2]", "-p employees=[1, 2]: expected an integer (default 20000)"),
    ("train_attrition", "horizn=6", "-p horizn: unknown parameter"),
    ("train_attrition", "k_anon", "-p k_anon: expected name=value"),
    ("pay_equity_report", "threshold=abc", "-p threshold=abc: expected a finite number (default 5.0)"),
    ("pay_equity_report", "threshold=.inf", "-p threshold=.inf: expected a finite number"),
    ("pay_equity_report", "k=five", "-p k=five: expected an integer (default 5)"),
    ("pay_equity_report", "categories=job_level", "-p categories=job_level: expected a list"),
]


@pytest.mark.parametrize("job, p, expect", BAD_P, ids=[f"{j}:{p}" for j, p, _ in BAD_P])
def test_p_values_are_type_checked(tmp_path, job, p, expect):
    cmd = ["train", "attrition", "--no-track"] if job == "train_attrition" else ["report", "pay-equity"]
    one_line_error(*cli(*cmd, "-p", p, "--out", tmp_path / "out", "--no-progress"), expect)
    assert not (tmp_path / "out").exists()  # refused before any folder is made


def test_p_values_of_the_right_type_pass():
    from hr_ml.runs import job_params, parse_overrides
    known = job_params("train_attrition")
    assert parse_overrides(["k_anon=6", "cuts=[0.1, 0.3]", "exclude=[location]", "model_kind=xgboost", "n_repeats=2"], known) == \
        {"k_anon": 6, "cuts": [0.1, 0.3], "exclude": ["location"], "model_kind": "xgboost", "n_repeats": 2}


# ------------------------------------------------------------------ the job runner: nothing left behind

def test_killed_runs_are_cleaned_at_the_next_start(tmp_path):
    import nbformat
    from hr_ml.runs import run_job
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("n = 3\nrun_dir = '.'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("if n < 0: raise ValueError('n must be >= 0')")]
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    dead = subprocess.Popen([sys.executable, "-c", "pass"]); dead.wait()
    left = tmp_path / "runs" / "tiny" / ".tmp-20250101-000000-aaaaaa"; left.mkdir(parents=True); (left / ".pid").write_text(str(dead.pid))
    old = tmp_path / "runs" / "tiny" / ".tmp-20250101-000000-bbbbbb"; old.mkdir(); os.utime(old, (0, 0))  # no PID, days old
    err = io.StringIO()
    import contextlib
    with contextlib.redirect_stderr(err): run = run_job(str(tmp_path / "tiny.ipynb"), {"n": 1}, tmp_path / "runs", progress=False, html=False)
    assert not left.exists() and not old.exists() and run.exists()
    assert "removed 2 unfinished run folders of killed runs" in err.getvalue(), err.getvalue()
    assert [p.name for p in (tmp_path / "runs" / "tiny").iterdir()] == [run.name]
    assert not (run / ".pid").exists() and ".pid" not in json.loads((run / "manifest.json").read_text())["files"]
