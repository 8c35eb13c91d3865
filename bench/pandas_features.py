"""A straightforward pandas implementation of `hr_ml.features.build_features` (same definitions), for the benchmark.

Written the way a data scientist would write it: vectorised groupby / merge / transform, no loops over employees.
Input: the HR tables as pandas DataFrames (dates as datetime64). Output: one row per employee employed on `as_of`
with the same feature columns, label and label_complete.
"""
from datetime import date, timedelta
import numpy as np
import pandas as pd

KEYS = ["tenant_id", "employee_id"]
DAY = np.timedelta64(1, "D")


def _shift(d: date, months: int) -> date:
    return (pd.Timestamp(d) + pd.DateOffset(months=months)).date()


def _quarter_start(t: date) -> date:
    qs = date(t.year, 3 * ((t.month - 1) // 3) + 1, 1)
    return qs if _shift(qs, 3) - timedelta(days=1) == t else _shift(qs, -3)


def _state_at(emp, jc, t):
    emp = emp.copy()
    if jc is None:
        return emp
    later = jc[(jc.effective_date > t) & (jc.change_type == "promotion")]
    promos = later.groupby(KEYS).size().rename("_promos").reset_index()
    before = jc[jc.effective_date <= t].sort_values("effective_date")
    dept = (before[(before.change_type == "transfer") & before.new_department.notna()]
            .groupby(KEYS).new_department.last().rename("_dept").reset_index())
    emp = emp.merge(promos, on=KEYS, how="left").merge(dept, on=KEYS, how="left")
    emp["job_level"] = emp.job_level - emp._promos.fillna(0).astype(int)
    emp["department"] = emp._dept.where(emp._dept.notna(), emp.department)
    return emp.drop(columns=["_promos", "_dept"])


def build_features_pd(tables: dict, as_of: date, horizon_months: int = 12, end_date: date = None) -> pd.DataFrame:
    t = pd.Timestamp(as_of)
    emp, comp = tables["employees"], tables.get("compensation")
    ab, rev, jc, ts = (tables.get(n) for n in ["absences", "reviews", "job_changes", "timesheets"])
    if end_date is None:
        end_date = max(df[c].max() for df in tables.values() for c in df.columns
                       if pd.api.types.is_datetime64_any_dtype(df[c])).date()
    state = _state_at(emp, jc, t)
    df = state[(state.hire_date <= t) & (state.termination_date.isna() | (state.termination_date > t))].copy()

    # pay: base at t, latest raise
    c = comp[comp.effective_date <= t].sort_values(KEYS + ["effective_date"])
    c = c.assign(_prev=c.groupby(KEYS).base_salary.shift(1))
    cur = c.groupby(KEYS).base_salary.last().rename("_base").reset_index()
    r = c[c.base_salary > c._prev]
    r = r.assign(last_raise_pct=100 * (r.base_salary / r._prev - 1))
    raises = r.groupby(KEYS).agg(_raise_date=("effective_date", "last"), last_raise_pct=("last_raise_pct", "last")).reset_index()
    df = df.merge(cur, on=KEYS, how="left").merge(raises, on=KEYS, how="left")

    # absences
    if ab is not None:
        a = ab[(ab.start_date <= t) & (ab.end_date > t - pd.Timedelta(days=365))]
        end = a.end_date.where(a.end_date < t, t)
        def overlap(w):
            lo = t - pd.Timedelta(days=w - 1)
            return ((end - a.start_date.where(a.start_date > lo, lo)) / DAY + 1).clip(lower=0)
        sick, vac = a.type == "sick", a.type == "vacation"
        a = a[KEYS].assign(sick_days_90d=overlap(90) * sick, sick_days_365d=overlap(365) * sick, _vac=overlap(365) * vac)
        df = df.merge(a.groupby(KEYS).sum().reset_index(), on=KEYS, how="left")
        df[["sick_days_90d", "sick_days_365d", "_vac"]] = df[["sick_days_90d", "sick_days_365d", "_vac"]].fillna(0)
    else:
        df["sick_days_90d"] = df["sick_days_365d"] = df["_vac"] = np.nan

    # reviews
    if rev is not None:
        rv = rev[rev.review_date <= t].sort_values(KEYS + ["review_date"])
        rv = rv.assign(_prev_rating=rv.groupby(KEYS).rating.shift(1))
        last = rv.groupby(KEYS).tail(1)[KEYS + ["rating", "_prev_rating"]].rename(columns={"rating": "last_rating"})
        df = df.merge(last, on=KEYS, how="left")
    else:
        df["last_rating"] = df["_prev_rating"] = np.nan

    # manager changes
    if jc is not None:
        m = jc[(jc.change_type == "manager_change") & (jc.effective_date <= t) & (jc.effective_date > t - pd.Timedelta(days=365))]
        df = df.merge(m.groupby(KEYS).size().rename("manager_changes_12m").reset_index(), on=KEYS, how="left")
        df["manager_changes_12m"] = df.manager_changes_12m.fillna(0)
    else:
        df["manager_changes_12m"] = np.nan

    # overtime
    if ts is not None:
        q = ts[ts.period_start == pd.Timestamp(_quarter_start(as_of))]
        df = df.merge(q.groupby(KEYS).hours_worked.sum().rename("_hours").reset_index(), on=KEYS, how="left")
    else:
        df["_hours"] = np.nan

    # team exits
    lv = state[(state.termination_type == "voluntary") & (state.termination_date <= t)
               & (state.termination_date > t - pd.Timedelta(days=182))]
    df = df.merge(lv.groupby(["tenant_id", "department"]).size().rename("team_exits_6m").reset_index(),
                  on=["tenant_id", "department"], how="left")
    df["team_exits_6m"] = df.team_exits_6m.fillna(0)

    # compa-ratio
    df["_hourly"] = df._base / (df.weekly_hours * 52)
    tiers = [["tenant_id", "job_family", "job_level"], ["tenant_id", "job_level"], ["job_family", "job_level"]]
    med = [df.groupby(g)._hourly.transform("median") for g in tiers]
    cnt = [df.groupby(g)._hourly.transform("count") for g in tiers]
    peer = np.where(cnt[0] >= 3, med[0], np.where(cnt[1] >= 3, med[1], med[2]))

    t_h = pd.Timestamp(_shift(as_of, horizon_months))
    raise_date = df._raise_date.where(df._raise_date.notna(), df.hire_date)
    out = df[KEYS].copy()
    out["as_of"] = t
    out["tenure_years"] = (t - df.hire_date) / DAY / 365.25
    out["months_since_raise"] = (t - raise_date) / DAY / 30.4375
    out["last_raise_pct"] = df.last_raise_pct.fillna(0.0)
    out["compa_ratio"] = df._hourly / peer
    out["overtime_ratio"] = df._hours / (df.weekly_hours * 13) - 1
    out["manager_changes_12m"] = df.manager_changes_12m
    out["last_rating"] = df.last_rating
    out["rating_trend"] = (df.last_rating - df._prev_rating.fillna(df.last_rating))
    out["sick_days_90d"] = df.sick_days_90d
    out["sick_days_365d"] = df.sick_days_365d
    out["sick_days_trend"] = df.sick_days_90d - df.sick_days_365d / 4
    out["vacation_ratio"] = df._vac / (25 * df.weekly_hours / 40)
    out["team_exits_6m"] = df.team_exits_6m
    out["part_time"] = (df.employment_type == "part_time").astype("int8")
    out["weekly_hours"] = df.weekly_hours
    out["job_level"] = df.job_level
    for col in ["job_family", "department", "location"]:
        out[col] = df[col]
    for col in ["gender", "nationality", "ethnicity", "marital_status", "disability"]:
        if col in df:
            out["prot_" + col] = df[col]
    if "birth_year" in df:
        age = t.year - df.birth_year
        out["prot_age"] = age
        out["prot_age_band"] = pd.cut(age, [-np.inf, 29, 39, 49, np.inf], labels=["<30", "30-39", "40-49", "50+"]).astype(object)
    out["label"] = ((df.termination_type == "voluntary") & (df.termination_date > t)
                    & (df.termination_date <= t_h)).astype("int8")
    out["label_complete"] = t_h.date() <= end_date
    return out.sort_values(KEYS).reset_index(drop=True)
