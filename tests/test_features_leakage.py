"""Point-in-time features: deleting every fact dated after `as_of` must leave the features unchanged (property test)."""
import subprocess, sys, json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st
from polars.testing import assert_frame_equal

from hr_ml.features import (FEATURES, KEYS, PROTECTED_PREFIX, build_features, data_range, truncate_to,
                            build_training_set, quarterly_dates, time_split, group_kfold, groups,
                            training_set_as_of)
from hr_ml.schema import HRDataError

try:
    from hr_ml.synth import generate
except ImportError:  # the generator is built in nbs/01_synth.ipynb; the hand-rolled HRIS below covers the property meanwhile
    generate = None

ROOT = Path(__file__).resolve().parents[1]


def random_hris(n: int = 300, seed: int = 0, n_tenants: int = 2, start=date(2018, 1, 1), end=date(2025, 12, 31)) -> dict:
    "A small random HRIS following the data contract, rich in edge cases (transfers and promotions after hire, absences across dates)."
    rng = np.random.default_rng(seed)
    span = (end - start).days
    i = np.arange(n)
    hire = rng.integers(0, span - 60, n)
    left = rng.random(n) < 0.35
    stop = np.where(left, np.minimum(hire + rng.integers(30, 2500, n), span), span)
    ttype = rng.choice(["voluntary", "involuntary", "other"], n, p=[0.6, 0.3, 0.1])
    d0 = np.datetime64(start)
    day = lambda x: pl.Series((d0 + np.asarray(x).astype("timedelta64[D]")).astype("datetime64[D]")).cast(pl.Date)
    ids = [f"T{t:03d}-E{k:06d}" for t, k in zip(i % n_tenants, i)]
    tenants = [f"T{t:03d}" for t in i % n_tenants]
    depts = np.array(["production", "quality", "sales", "it"])
    hire_level = rng.integers(1, 5, n)
    part = rng.random(n) < 0.2
    hours = np.where(part, rng.choice([20.0, 30.0], n), 40.0)

    # job changes: promotions, transfers and manager changes between hire and stop
    k = rng.poisson(1.5, n)
    who = np.repeat(i, k)
    when = hire[who] + (rng.random(len(who)) * (stop[who] - hire[who])).astype(int) + 1
    kind = rng.choice(["promotion", "manager_change", "transfer"], len(who))
    jc = (pl.DataFrame({"i": who, "d": when, "change_type": kind,
                        "dep": rng.choice(depts, len(who)), "mgr": rng.integers(0, n, len(who))})
          .filter(pl.col("d") <= span).unique(["i", "d", "change_type"]).sort("i", "d")
          .with_columns(promo=(pl.col("change_type") == "promotion").cast(pl.Int32).cum_sum().over("i")))
    jc = jc.with_columns(
        tenant_id=pl.Series(tenants)[jc["i"]], employee_id=pl.Series(ids)[jc["i"]], effective_date=day(jc["d"]),
        new_job_level=pl.when(pl.col("change_type") == "promotion").then(pl.Series(hire_level)[jc["i"]] + pl.col("promo")).cast(pl.Int32),
        new_department=pl.when(pl.col("change_type") == "transfer").then("dep"),
        new_manager_id=pl.when(pl.col("change_type") == "manager_change").then(pl.Series(ids)[jc["mgr"]]))
    cur = jc.group_by("i").agg(n_promo=(pl.col("change_type") == "promotion").sum(),
                               dept=pl.col("new_department").drop_nulls().last())
    cur = pl.DataFrame({"i": i}).join(cur, on="i", how="left").sort("i")
    employees = pl.DataFrame({
        "tenant_id": tenants, "employee_id": ids, "hire_date": day(hire),
        "termination_date": day(stop),
        "termination_type": pl.Series([ty if lf else None for ty, lf in zip(ttype, left)], dtype=pl.String),
        "department": pl.Series(depts[rng.integers(0, 4, n)]),
        "job_family": rng.choice(["engineering", "sales", "support"], n),
        "job_level": pl.Series(hire_level, dtype=pl.Int32) + cur["n_promo"].fill_null(0).cast(pl.Int32),
        "location": rng.choice(["DE", "FR", "PL"], n), "employment_type": np.where(part, "part_time", "full_time"),
        "weekly_hours": hours, "manager_id": [ids[m] for m in rng.integers(0, n, n)],
        "birth_year": pl.Series(rng.integers(1960, 2002, n), dtype=pl.Int32),
        "gender": rng.choice(["female", "male", "non_binary", "undisclosed"], n, p=[0.46, 0.5, 0.02, 0.02]),
        "nationality": rng.choice(["DE", "FR", "PL", "TR"], n)})
    employees = employees.with_columns(termination_date=pl.when(pl.Series(left)).then(day(stop)),
                                       department=pl.coalesce(cur["dept"], pl.col("department")))

    # compensation: a row at hire and one a year after, some without a raise, a few cuts
    m = (stop - hire) // 365 + 1
    who = np.repeat(i, m)
    step = np.concatenate([np.arange(c) for c in m])
    factor = np.where(step == 0, 1.0, rng.choice([1.0, 0.97, 1.02, 1.04, 1.06], len(who), p=[0.3, 0.05, 0.25, 0.25, 0.15]))
    base0 = 36000 * (1 + 0.15 * hire_level) * hours / 40
    comp = pl.DataFrame({"i": who, "d": hire[who] + 365 * step, "f": factor, "b0": base0[who]}).with_columns(
        base_salary=(pl.col("b0") * pl.col("f").cum_prod().over("i")).round(0))
    comp = comp.select(tenant_id=pl.Series(tenants)[comp["i"]], employee_id=pl.Series(ids)[comp["i"]],
                       effective_date=day(comp["d"]), base_salary="base_salary", variable_pay=pl.lit(0.0), currency=pl.lit("EUR"))

    # absences (some running past any snapshot date), reviews, quarterly timesheets
    a = rng.poisson(6, n)
    who = np.repeat(i, a)
    s = hire[who] + (rng.random(len(who)) * (stop[who] - hire[who])).astype(int)
    absences = pl.DataFrame({"tenant_id": pl.Series(tenants)[who], "employee_id": pl.Series(ids)[who],
                             "start_date": day(s), "end_date": day(s + rng.integers(0, 15, len(who))),
                             "type": rng.choice(["sick", "vacation", "parental", "other"], len(who), p=[0.5, 0.4, 0.05, 0.05])}
                            ).unique(["tenant_id", "employee_id", "start_date", "type"])
    who = np.repeat(i, m)
    rd = hire[who] + 365 * step + 180
    reviews = pl.DataFrame({"tenant_id": pl.Series(tenants)[who], "employee_id": pl.Series(ids)[who], "review_date": day(rd),
                            "rating": pl.Series(rng.integers(1, 6, len(who)), dtype=pl.Int32)}).filter(pl.Series(rd <= stop[who]))
    q = pl.date_range(start, end, "3mo", eager=True)
    ts = (employees.select(KEYS + ["hire_date", "termination_date", "weekly_hours"]).join(pl.DataFrame({"period_start": q}), how="cross")
          .filter((pl.col("period_start") >= pl.col("hire_date"))
                  & (pl.col("termination_date").is_null() | (pl.col("period_start").dt.offset_by("3mo") <= pl.col("termination_date"))))
          .select(KEYS + ["period_start", "weekly_hours"]))
    ts = ts.select(KEYS + ["period_start"], hours_worked=pl.col("weekly_hours") * 13 * pl.Series(1 + rng.normal(0.03, 0.08, ts.height)))
    jc = jc.select("tenant_id", "employee_id", "effective_date", "change_type", "new_job_level", "new_department", "new_manager_id")
    return dict(employees=employees, compensation=comp, absences=absences, reviews=reviews, job_changes=jc, timesheets=ts)


SOURCES = {"own": lambda: random_hris(300, seed=1)}
if generate is not None:
    SOURCES["synth"] = lambda: generate(n_employees=300, n_tenants=2, seed=7)[0]


@pytest.fixture(scope="module", params=list(SOURCES))
def hris(request):
    return SOURCES[request.param]()


def same_features(a: pl.DataFrame, b: pl.DataFrame):
    cols = lambda fr: fr.select(KEYS + FEATURES + [c for c in fr.columns if c.startswith(PROTECTED_PREFIX)])
    assert_frame_equal(cols(a), cols(b), rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_deleting_the_future_changes_no_feature(hris, data):
    first, end = data_range(hris)
    as_of = data.draw(st.dates(min_value=first, max_value=end), label="as_of")
    cut = truncate_to(hris, as_of)
    same_features(build_features(cut, as_of, end_date=as_of), build_features(hris, as_of))


def test_truncated_tables_hold_no_future_fact(hris):
    as_of = quarterly_dates(hris)[0]
    cut = truncate_to(hris, as_of)
    assert data_range(cut)[1] <= as_of
    emp = cut["employees"]
    assert emp["hire_date"].max() <= as_of
    assert emp["termination_date"].drop_nulls().max() <= as_of
    assert emp.filter(pl.col("termination_date").is_null())["termination_type"].null_count() == emp.filter(pl.col("termination_date").is_null()).height


def test_columns_dtypes_and_label(hris):
    as_of = quarterly_dates(hris)[-1]
    f = build_features(hris, as_of)
    assert f.columns[:3 + len(FEATURES)] == KEYS + ["as_of"] + FEATURES
    assert f["label"].dtype == pl.Int8 and f["label_complete"].all()
    assert f.select(pl.struct(KEYS).is_unique().all()).item()
    assert "prot_gender" in f.columns and "gender" not in f.columns
    emp = hris["employees"].join(f.select(KEYS + ["label"]), on=KEYS)
    t_h = f["as_of"].dt.offset_by("12mo")[0]
    leavers = emp.filter((pl.col("termination_type") == "voluntary") & (pl.col("termination_date") <= t_h))
    assert leavers.height == f["label"].sum() > 0


def test_employee_ids_repeated_across_tenants(hris):
    "Employee ids need only be unique within a tenant: renumbering them per tenant changes no feature."
    emp = hris["employees"]
    new = emp.select(KEYS, new_id=pl.format("E{}", pl.int_range(pl.len()).over("tenant_id")))
    assert new["new_id"].n_unique() < new.height                      # ids now collide across tenants
    renum = {k: df.join(new, on=KEYS).with_columns(employee_id="new_id").drop("new_id") if "employee_id" in df.columns else df
             for k, df in hris.items()}
    as_of = quarterly_dates(hris)[-1]
    a = build_features(hris, as_of).join(new, on=KEYS).with_columns(employee_id="new_id").drop("new_id")
    same_features(build_features(renum, as_of).sort(KEYS), a.sort(KEYS))


FROM_TABLE = {  # the features each optional table feeds, and those it changes without being their only source
    "compensation": (["last_raise_pct", "compa_ratio"], ["months_since_raise"]),   # months since hire instead
    "absences": (["sick_days_90d", "sick_days_365d", "sick_days_trend", "vacation_ratio"], []),
    "reviews": (["last_rating", "rating_trend"], []),
    "job_changes": (["manager_changes_12m"], ["job_level", "department", "team_exits_6m", "compa_ratio"]),   # current state, not rolled back
    "timesheets": (["overtime_ratio"], []),
}


@pytest.mark.parametrize("table", list(FROM_TABLE))
def test_each_optional_table_may_be_missing(hris, table):
    "Without one optional table its features are null (same dtype); every other feature is unchanged."
    as_of, end = quarterly_dates(hris)[-1], data_range(hris)[1]        # (a table left out may hold the latest date)
    full = build_features(hris, as_of, end_date=end)
    part = build_features({k: v for k, v in hris.items() if k != table}, as_of, end_date=end)
    gone, moved = FROM_TABLE[table]
    assert part.schema == full.schema and part.height == full.height
    assert all(part[c].null_count() == part.height for c in gone), [c for c in gone if part[c].null_count() < part.height]
    assert all(full[c].null_count() < full.height for c in gone)        # the full data does fill them
    assert_frame_equal(part.drop(gone + moved), full.drop(gone + moved), rel_tol=1e-12, abs_tol=1e-12)


def test_only_the_employees_table(hris):
    "The employees table alone still gives one row per employee with every table-fed feature null."
    as_of = quarterly_dates(hris)[-1]
    f = build_features({"employees": hris["employees"]}, as_of)
    assert f.height == build_features(hris, as_of).height
    assert all(f[c].null_count() == f.height for gone, _ in FROM_TABLE.values() for c in gone)


def test_as_of_outside_the_data(hris):
    first, end = data_range(hris)
    with pytest.raises(HRDataError, match=f"is after the last date in the data \\({end}\\); pick a date between {first} and {end}"):
        build_features(hris, end + timedelta(days=1))
    with pytest.raises(HRDataError, match="before the earliest hire"):
        build_features(hris, first - timedelta(days=1))


def test_training_set_and_splits(hris):
    df = build_training_set(hris, quarterly_dates(hris, n=12))
    assert df["label_complete"].all()
    year = df["as_of"].dt.year().max()
    train, test = time_split(df, year)
    assert (train["as_of"].dt.offset_by("12mo") < date(year, 1, 1)).all()      # every training label closed before the test year
    assert (test["as_of"].dt.year() == year).all()
    assert train["as_of"].dt.offset_by("12mo").max() < test["as_of"].min()
    g = groups(df)
    for tr, te in group_kfold(df, n_splits=4, seed=0):
        assert not set(g[tr]) & set(g[te])



def test_time_split_boundary():
    "A label window ending on 1 January of the test year is not closed before it: that snapshot is not trained on."
    df = pl.DataFrame({"as_of": [date(2022, 12, 31), date(2023, 1, 1), date(2024, 3, 31)], "label": [0, 1, 0]})
    train, test = time_split(df, 2024)
    assert train["as_of"].to_list() == [date(2022, 12, 31)] and test["as_of"].to_list() == [date(2024, 3, 31)]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_backtest_training_set_knows_nothing_after_the_cut(hris, data):
    "The back-test's training rows: labels closed by the cut, and every row, label and feature the same when the future is deleted first."
    first, end = data_range(hris)
    cut = data.draw(st.dates(min_value=date(end.year - 4, 1, 1), max_value=end - timedelta(days=400)), label="cut")
    try: past = training_set_as_of(hris, cut, n=4, history_months=None)
    except HRDataError: return                                                   # nothing to train on by this cut
    assert (past["as_of"].dt.offset_by("12mo") <= cut).all() and past["label_complete"].all()
    again = training_set_as_of(truncate_to(hris, cut), cut, n=4, history_months=None)
    assert_frame_equal(past, again)                                              # the future played no part
    full = build_training_set(hris, sorted(set(past["as_of"])))                  # the same snapshots from the full export: same rows,
    dept = ["department", "team_exits_6m"]    # labels and features, but for the department before a first transfer (see nbs/03)
    assert_frame_equal(past.drop(dept), full.drop(dept), rel_tol=1e-12, abs_tol=1e-12)


def test_backtest_training_needs_a_year_of_records():
    "Snapshots before every table has a year of records are not trained on (their 12-month features would count a partial year)."
    three, _ = generate(n_employees=600, n_tenants=2, seed=7, years=3)           # records begin 2023-01-01
    with pytest.raises(HRDataError, match="the data needs more history"):
        training_set_as_of(three, date(2023, 12, 31))
    four, _ = generate(n_employees=600, n_tenants=2, seed=7, years=4)            # records begin 2022-01-01: one quarter-end
    assert training_set_as_of(four, date(2023, 12, 31))["as_of"].unique().to_list() == [date(2022, 12, 31)]   # has a full year
    past = training_set_as_of(generate(n_employees=600, n_tenants=2, seed=7, years=6)[0], date(2023, 12, 31))   # from 2020
    assert past["as_of"].min() >= date(2021, 1, 1) and past["as_of"].n_unique() == 8

def test_bench_smoke(tmp_path):
    "The benchmark runs in a tiny configuration and the pandas reference agrees with hr_ml."
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_features.py"), "--smoke", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "features.json").read_text())
    assert res["agree"] and res["polars"]["seconds"] > 0 and (tmp_path / "features.md").exists()
