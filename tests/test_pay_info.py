"""A worker's right to information (Art. 7): `hr-ml pay-info` and `GET /v1/tenants/{t}/employees/{e}/pay-info` on a small
synthetic HRIS. The figures equal a direct polars computation, small categories are suppressed (both sexes), the audit log
holds a pseudonym and no raw id or pay figure, another tenant is refused, and an unknown id is a 404 that does not say
whether the id exists in another tenant."""
import datetime as dt, json
from datetime import date

import polars as pl
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hr_ml.attrition import AttritionModel
from hr_ml.cli import app as cli
from hr_ml.features import FEATURES, build_features
from hr_ml.pay_equity import pay_table
from hr_ml.pay_info import pay_info, pay_info_text
from hr_ml.schema import HRDataError
from hr_ml.serve import _salt, create_app, create_key, pseudonym
from hr_ml.suppression import scan_for_small
from hr_ml.synth import generate, write_synth

ROUTE = "/v1/tenants/{}/employees/{}/pay-info"


@pytest.fixture(scope="module")
def hris(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("payinfo")
    tables, truth = generate(n_employees=3000, n_tenants=3, seed=5)
    folder = write_synth(tables, truth, tmp / "hris")
    pay = pay_table(tables)
    counts = (pay.group_by("tenant_id", "category").agg(nf=(pl.col("gender") == "female").sum(), nm=(pl.col("gender") == "male").sum())
                 .sort("tenant_id", "category"))
    big = counts.filter((pl.col("nf") >= 5) & (pl.col("nm") >= 5)).row(0, named=True)
    small = counts.filter((pl.col("nm") < 5) & (pl.col("nm") > 0) & (pl.col("nf") > 0)).row(0, named=True)
    pick = lambda c, g: pay.filter((pl.col("tenant_id") == c["tenant_id"]) & (pl.col("category") == c["category"]) & (pl.col("gender") == g))["employee_id"][0]
    return dict(tmp=tmp, tables=tables, folder=folder, pay=pay, big=big, small=small,
                shown=(big["tenant_id"], pick(big, "female")), hidden=(small["tenant_id"], pick(small, "male")))


def direct(pay, tenant, employee):
    "The expected figures, computed from the pay columns without hr_ml.pay_info."
    h = (pl.col("base_salary") + pl.col("variable_pay").fill_null(0)) / (pl.col("weekly_hours") * 52)
    t = pay.filter(pl.col("tenant_id") == tenant).with_columns(h=h)
    me = t.filter(pl.col("employee_id") == employee).row(0, named=True)
    c = t.filter(pl.col("category") == me["category"])
    g = {s: c.filter(pl.col("gender") == s)["h"] for s in ("female", "male")}
    return {"own": round(me["h"], 2), "annual": round(me["base_salary"] + me["variable_pay"], 2),
            "women": (g["female"].len(), round(g["female"].mean(), 2), round(g["female"].median(), 2)),
            "men": (g["male"].len(), round(g["male"].mean(), 2), round(g["male"].median(), 2))}


def figures(a):
    return {"own": a["own"]["hourly_pay"], "annual": a["own"]["annual_pay"],
            "women": tuple(a["women"][x] for x in ("n", "mean_hourly_pay", "median_hourly_pay")),
            "men": tuple(a["men"][x] for x in ("n", "mean_hourly_pay", "median_hourly_pay"))}


# ---------------------------------------------------------------- the function

def test_figures_equal_a_direct_computation(hris):
    t, e = hris["shown"]
    a = pay_info(hris["pay"], t, e)
    assert not a["suppressed"] and a["reason"] is None and a["category"] == hris["big"]["category"]
    assert figures(a) == direct(hris["pay"], t, e)
    assert a["criteria"] == {c: v for c, v in zip(("job_family", "job_level"), a["category"].split(" / "))} | {"job_level": int(a["category"].split(" / ")[1])}
    assert "Art. 7(5)" in a["share_note"] and "Art. 7(5)" in pay_info_text(a)


def test_small_category_suppresses_both_sexes(hris):
    t, e = hris["hidden"]
    a = pay_info(hris["pay"], t, e)
    assert a["suppressed"] and "fewer than 5 men" in a["reason"]
    assert all(v is None for g in ("women", "men") for v in a[g].values())
    assert scan_for_small(a, 5) == []
    assert a["own"]["hourly_pay"] == direct(hris["pay"], t, e)["own"]          # her own pay is always there
    assert "not shown" in pay_info_text(a) and a["reason"] in pay_info_text(a)


def test_six_women_one_man_and_the_complement():
    rows = [(f"{f}{g[0]}{i}", g, f, 40.0 + i + (f == "eng")) for f, ns in (("ops", (6, 1)), ("eng", (7, 7)), ("it", (7, 7)))
            for g, n in zip(("female", "male"), ns) for i in range(n)]
    emp = pl.DataFrame([dict(tenant_id="A", employee_id=e, hire_date=date(2020, 1, 1), termination_date=None, job_family=f, job_level=1,
                             location="DE", weekly_hours=40.0, gender=g) for e, g, f, h in rows], schema_overrides=dict(termination_date=pl.Date))
    comp = pl.DataFrame([dict(tenant_id="A", employee_id=e, effective_date=date(2025, 1, 1), base_salary=h * 40 * 52, variable_pay=0.0)
                         for e, g, f, h in rows])
    pay = pay_table({"employees": emp, "compensation": comp})
    woman, man = pay_info(pay, "A", "opsf0"), pay_info(pay, "A", "opsm0")
    assert woman["suppressed"] and man["suppressed"] and woman["women"]["mean_hourly_pay"] is None
    assert "40.0" not in json.dumps({k: v for k, v in woman.items() if k != "own"})    # the one man's 40.00 an hour: nowhere
    assert "another category" in pay_info(pay, "A", "engf0")["reason"]                 # hidden as the complement, as in the report
    shown = pay_info(pay, "A", "itm3")
    assert not shown["suppressed"] and shown["men"]["mean_hourly_pay"] == 43.0 and shown["women"]["median_hourly_pay"] == 43.0


def test_unknown_and_other_tenant_read_the_same(hris):
    t, e = hris["shown"]
    other_t = next(x for x in hris["pay"]["tenant_id"].unique().to_list() if x != t)
    other_e = hris["pay"].filter(pl.col("tenant_id") == other_t)["employee_id"][0]
    msgs = []
    for emp in ("nobody", other_e):
        with pytest.raises(HRDataError) as ex: pay_info(hris["pay"], t, emp)
        msgs.append(str(ex.value).replace(emp, "ID"))
    assert msgs[0] == msgs[1] and "\n" not in msgs[0]


# ---------------------------------------------------------------- the CLI

def test_cli_json_and_text(hris):
    t, e = hris["shown"]
    r = CliRunner().invoke(cli, ["pay-info", "--tenant", t, "--employee", e, "--data", str(hris["folder"]), "--json"])
    assert r.exit_code == 0, r.output
    a = json.loads(r.output)
    assert figures(a) == direct(hris["pay"], t, e) and a["as_of"] == str(max(d for tb, c in (("employees", "hire_date"), ("employees", "termination_date"), ("compensation", "effective_date"))
                                                                  for d in [hris["tables"][tb][c].max()] if d is not None))
    r = CliRunner().invoke(cli, ["pay-info", "--tenant", t, "--employee", e, "--data", str(hris["folder"])])
    assert r.exit_code == 0 and f"{a['women']['mean_hourly_pay']:,.2f}" in r.output and "Art. 7(5)" in r.output
    th, eh = hris["hidden"]
    r = CliRunner().invoke(cli, ["pay-info", "--tenant", th, "--employee", eh, "--data", str(hris["folder"]), "--k-anon", "5"])
    assert r.exit_code == 0 and "not shown" in r.output and "fewer than 5 men" in r.output


def test_cli_errors_are_one_line(hris):
    t, e = hris["shown"]
    other = hris["pay"].filter(pl.col("tenant_id") != t)["employee_id"][0]
    for args in (["--employee", "nobody"], ["--employee", other], ["--employee", e, "--k-anon", "1"], ["--employee", e, "--as-of", "yesterday"]):
        r = CliRunner().invoke(cli, ["pay-info", "--tenant", t, "--data", str(hris["folder"]), *args])
        assert r.exit_code == 2 and r.output.count("error:") == 1, (args, r.output)
    r = CliRunner().invoke(cli, ["serve", "--pay-data", str(hris["tmp"] / "missing")])
    assert r.exit_code == 2 and "pay data not found" in r.output


# ---------------------------------------------------------------- the API

@pytest.fixture(scope="module")
def api(hris):
    snap = build_features(hris["tables"], dt.date(2024, 12, 31))
    model = AttritionModel(n_estimators=5, max_depth=2, early_stopping_rounds=None, n_jobs=1).fit(snap.select(FEATURES), snap["label"])
    state = hris["tmp"] / "state"
    tenants = hris["pay"]["tenant_id"].unique().sort().to_list()
    keys = {t: create_key(t, state)[1] for t in tenants}
    app = create_app(model, state, pay=hris["pay"])
    bare = create_app(model, hris["tmp"] / "bare_state")
    return dict(client=TestClient(app), bare=TestClient(bare), keys=keys, state=state, model=model,
                h=lambda t: {"Authorization": f"Bearer {keys[t]}"})


def audit(state):
    return [json.loads(l) for f in sorted((state / "audit").glob("*.jsonl")) for l in f.read_text().splitlines()]


def test_api_answer_equals_the_function_and_the_audit_is_pseudonymous(hris, api):
    c = api["client"]
    n0 = len(audit(api["state"]))
    answers = []
    for t, e in (hris["shown"], hris["hidden"]):
        r = c.get(ROUTE.format(t, e), headers=api["h"](t))
        assert r.status_code == 200, r.text
        assert r.json() == pay_info(hris["pay"], t, e)
        answers.append(r.json())
    assert figures(answers[0]) == direct(hris["pay"], *hris["shown"]) and answers[1]["suppressed"]
    lines = audit(api["state"])[n0:]
    salt = _salt(api["state"])
    assert [(l["tenant"], l["employee"], l["route"], l["suppressed"]) for l in lines] == \
           [(t, pseudonym(salt, t, e), "pay-info", a["suppressed"]) for (t, e), a in zip((hris["shown"], hris["hidden"]), answers)]
    text = "".join(f.read_text() for f in (api["state"] / "audit").glob("*.jsonl"))
    for (t, e), a in zip((hris["shown"], hris["hidden"]), answers):
        assert e not in text and a["category"] not in text
        for v in [*a["own"].values(), *a["women"].values(), *a["men"].values()]:
            if isinstance(v, float): assert f"{v}" not in text and f"{v:.2f}" not in text, v


def test_api_refuses_other_tenants_and_hides_whether_an_id_exists(hris, api):
    c, h = api["client"], api["h"]
    t, e = hris["shown"]
    other_t = next(x for x in api["keys"] if x != t)
    other_e = hris["pay"].filter(pl.col("tenant_id") == other_t)["employee_id"][0]
    n0 = len(audit(api["state"]))
    assert c.get(ROUTE.format(t, e)).status_code == 401
    assert c.get(ROUTE.format(t, e), headers=h(other_t)).status_code == 403              # B's key on A's worker
    assert c.get(ROUTE.format(other_t, other_e), headers=h(t)).status_code == 403        # A's key on B's path
    unknown, elsewhere = (c.get(ROUTE.format(t, x), headers=h(t)) for x in ("T99999-E000001", other_e))
    assert unknown.status_code == elsewhere.status_code == 404 and unknown.json() == elsewhere.json()
    assert other_e not in elsewhere.text
    assert len(audit(api["state"])) == n0                                                  # nothing answered, nothing logged


def test_api_without_pay_data_is_404_and_the_route_is_in_openapi(hris, api):
    t, e = hris["shown"]
    r = api["bare"].get(ROUTE.format(t, e), headers=api["h"](t))
    assert r.status_code == 401      # the bare app has its own (empty) key store
    kid, secret = create_key(t, hris["tmp"] / "bare_state")
    r = api["bare"].get(ROUTE.format(t, e), headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 404 and "no pay data" in r.json()["detail"]
    spec = api["client"].get("/openapi.json").json()
    op = spec["paths"][ROUTE.format("{tenant_id}", "{employee_id}")]["get"]
    assert {"401", "403", "404"} <= set(op["responses"]) and op["security"] == [{"ApiKey": []}]
    assert "PayInfoResponse" in spec["components"]["schemas"]
