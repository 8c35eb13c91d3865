"""The scoring service (`hr_ml.serve`) through FastAPI's TestClient and through a real uvicorn process on 127.0.0.1:
scores and what-ifs equal `hr_ml.explain` on the same rows, every tenant route needs a key and refuses another tenant's,
batch and body limits, bad input is a 4xx (never a 500), the audit log is pseudonymous and erasable, retention purges
old days, /metrics parses, and schemathesis finds no 5xx or schema violation in the served OpenAPI spec."""
import datetime as dt, json, os, re, select, signal, subprocess, sys, threading, time
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from hr_ml.attrition import AttritionModel
from hr_ml.explain import drivers, what_if, what_if_fact
from hr_ml.features import FEATURES, build_features
from hr_ml.io import write_hris
from hr_ml.schema import HRDataError
from hr_ml.serve import (create_app, create_key, erase, list_keys, load_served_model, pseudonym, purge_audit,
                         revoke_key, _salt)
from hr_ml.synth import generate
from hr_ml.pay_equity import pay_table

SCORES, WHATIF = "/v1/tenants/{}/attrition/scores", "/v1/tenants/{}/attrition/what-if"
NARRATIVE = "/v1/tenants/{}/attrition/narrative"
RUN_ID = "20250101-000000-test01"


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    "A small model saved as a run folder, the employees to score, two tenants' keys, and a real server starting up."
    tmp = tmp_path_factory.mktemp("api")
    tables, _ = generate(n_employees=1500, n_tenants=6, seed=11)
    snap = build_features(tables, dt.date(2024, 12, 31))
    run = tmp / "runs" / "attrition" / RUN_ID
    AttritionModel(n_estimators=30, max_depth=3, early_stopping_rounds=None, n_jobs=1).fit(snap.select(FEATURES), snap["label"]).save(run)
    tenants = snap["tenant_id"].unique(maintain_order=True).to_list()
    A, B = tenants[0], tenants[1]
    # the real server starts now, in the background, so that its imports overlap the TestClient tests
    srv_state = tmp / "srv_state"
    srv_keys = {t: create_key(t, srv_state)[1] for t in (A, B)}
    write_hris(tables, tmp / "hris")   # the same HRIS for the server's pay-info route, read rather than generated again
    proc = subprocess.Popen([sys.executable, "-c",
                             f"from hr_ml.serve import serve; from hr_ml.pay_equity import load_pay; serve({str(run)!r}, port=0, state={str(srv_state)!r}, max_batch=50, max_body_bytes=200_000, pay=load_pay({str(tmp / 'hris')!r}))"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp)
    try:
        model = load_served_model(run)
        state = tmp / "state"
        keys = {t: create_key(t, state, label=f"backend {t}") for t in (A, B)}
        pay = pay_table(tables)   # the pay-info route's data (the same HRIS)
        pay_emp = dict(pay.group_by("tenant_id", maintain_order=True).agg(pl.col("employee_id").first()).iter_rows())
        app = create_app(model, state, pay=pay)
        yield dict(tmp=tmp, snap=snap, run=run, model=model, A=A, B=B, state=state, keys=keys, app=app, pay_emp=pay_emp,
                   client=TestClient(app), proc=proc, srv_state=srv_state, srv_keys=srv_keys)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try: proc.wait(20)
            except subprocess.TimeoutExpired: proc.kill()


def emp(base, i=0, **change):
    "Employee `i` of the snapshot as a request item (features as build_features gives them, optionally changed)."
    row = base["snap"].row(i, named=True)
    return {"employee_id": row["employee_id"], "features": {**{f: row[f] for f in FEATURES}, **change}}


def hdr(base, tenant=None, state_keys=None):
    secret = (state_keys or {t: s for t, (_, s) in base["keys"].items()})[tenant or base["A"]]
    return {"Authorization": f"Bearer {secret}"}


def audit_lines(state):
    return [json.loads(l) for f in sorted((Path(state) / "audit").glob("*.jsonl")) for l in f.read_text().splitlines()]


def tenant_routes(app):
    "(method, path template) of every route under /v1/tenants/{tenant_id}/."
    return sorted((m, r.path) for r in app.routes if "{tenant_id}" in getattr(r, "path", "") for m in r.methods)


def route_url(base, path, tenant):
    "A tenant route's URL for `tenant` (the employee of the pay-info route: one of that tenant's workers, else of tenant A)."
    return path.replace("{employee_id}", base["pay_emp"].get(tenant, base["pay_emp"][base["A"]])).replace("{tenant_id}", tenant)


def valid_body(base, path):
    "A valid request body for each tenant route (a new tenant route must be added here, or the isolation tests fail)."
    bodies = {SCORES.format("{tenant_id}"): {"employees": [emp(base, 0), emp(base, 1)]},
              WHATIF.format("{tenant_id}"): {**emp(base, 0), "change": {"feature": "compa_ratio", "value": 1.0}},
              NARRATIVE.format("{tenant_id}"): {"employee": emp(base, 0)}}
    return bodies.get(path)   # GET pay-info: no body


# ---------------------------------------------------------------- scoring and what-if

def test_scores_equal_explain_drivers_both_paths(base):
    "A batch of 100 (drivers() path) and single-employee requests (direct path) give exactly what hr_ml.explain.drivers gives."
    c, A = base["client"], base["A"]
    items = [emp(base, i) for i in range(100)]
    X = pl.DataFrame([it["features"] for it in items]).select(FEATURES).cast(
        {f: base["snap"].schema[f] for f in FEATURES})
    ref = drivers(base["model"], X).to_dicts()
    r = c.post(SCORES.format(A), json={"employees": items}, headers=hdr(base))
    assert r.status_code == 200, r.text
    batch = r.json()["employees"]
    singles = [c.post(SCORES.format(A), json={"employees": [it]}, headers=hdr(base)).json()["employees"][0] for it in items[:15]]
    for got, want, it in zip(batch, ref, items):
        assert got["employee_id"] == it["employee_id"]
        assert got["risk"] == want["risk"] and got["bucket"] == want["bucket"]
        assert [d["feature"] for d in got["drivers"]] == [want[f"driver_{j}"] for j in (1, 2, 3)]
        assert [d["shap"] for d in got["drivers"]] == [want[f"driver_{j}_shap"] for j in (1, 2, 3)]
        assert [d["text"] for d in got["drivers"]] == [want[f"driver_{j}_text"] for j in (1, 2, 3)]
        assert [d["direction"] for d in got["drivers"]] == [want[f"driver_{j}_direction"] for j in (1, 2, 3)]
        assert [d["actionable"] for d in got["drivers"]] == [want[f"driver_{j}_actionable"] for j in (1, 2, 3)]
    assert singles == batch[:15]
    body = r.json()
    assert body["model"]["run"] == RUN_ID and body["model"]["sha256"] == base["model"].registry_["sha256"] and body["n"] == 100


def test_nulls_and_unseen_categories(base):
    "null where a feature may be missing scores like a missing value; an unseen category is scored as missing, with a warning."
    c, A, m = base["client"], base["A"], base["model"]
    it = emp(base, 3, overtime_ratio=None, last_rating=None, department="brand-new-dept")
    r = c.post(SCORES.format(A), json={"employees": [it]}, headers=hdr(base))
    assert r.status_code == 200, r.text
    got = r.json()["employees"][0]
    X = pl.DataFrame([it["features"]]).select(FEATURES).cast({f: base["snap"].schema[f] for f in FEATURES})
    assert got["risk"] == drivers(m, X)["risk"][0]
    assert got["warnings"] == ["department 'brand-new-dept' was not seen in training; scored as missing"]


def test_what_if_equals_explain(base):
    c, A, m = base["client"], base["A"], base["model"]
    it = emp(base, 2)
    X = pl.DataFrame([it["features"]]).select(FEATURES).cast({f: base["snap"].schema[f] for f in FEATURES})
    for feature, value in (("compa_ratio", 1.0), ("manager_changes_12m", 3), ("overtime_ratio", -0.05)):
        r = c.post(WHATIF.format(A), json={**it, "change": {"feature": feature, "value": value}}, headers=hdr(base))
        assert r.status_code == 200, r.text
        want = what_if(m, X, feature, value)
        got = r.json()
        for k in ("old_risk", "new_risk", "old_bucket", "new_bucket", "feature", "new_value"): assert got[k] == want[k], k
        assert got["model"]["run"] == RUN_ID
    for change, field in (({"feature": "tenure_years", "value": 3.0}, "change"),          # not actionable
                          ({"feature": "manager_changes_12m", "value": 1.5}, "value"),    # integer feature
                          ({"feature": "compa_ratio", "value": True}, "value"),
                          ({"feature": "compa_ratio"}, "value")):
        r = c.post(WHATIF.format(A), json={**it, "change": change}, headers=hdr(base))
        assert r.status_code == 422, (change, r.text)
        assert any(field in map(str, e["loc"]) for e in r.json()["detail"]), r.json()
    msg = c.post(WHATIF.format(A), json={**it, "change": {"feature": "tenure_years", "value": 3.0}}, headers=hdr(base)).json()["detail"][0]["msg"]
    assert "compa_ratio" in msg  # names what may be changed


def test_what_if_fact_equals_explain(base):
    "A `fact` re-derives the features with hr_ml.explain.what_if_fact (the same function), and lists every feature that changed."
    c, A, m = base["client"], base["A"], base["model"]
    it = emp(base, 2)
    X = pl.DataFrame([it["features"]]).select(FEATURES).cast({f: base["snap"].schema[f] for f in FEATURES})
    lvl = it["features"]["job_level"]
    assert lvl < 12
    for name, value, moved in (("raise_pct", 5, {"compa_ratio", "months_since_raise", "last_raise_pct"}), ("raise_pct", -10.0, {"compa_ratio"}),
                               ("weekly_hours", 24.0, {"weekly_hours", "part_time", "compa_ratio", "overtime_ratio", "vacation_ratio"}),
                               ("new_manager", True, {"manager_changes_12m"}), ("new_manager", "M-0042", {"manager_changes_12m"}),
                               ("promotion_level", lvl + 1, {"job_level", "compa_ratio"})):
        r = c.post(WHATIF.format(A), json={**it, "fact": {"name": name, "value": value}}, headers=hdr(base))
        assert r.status_code == 200, r.text
        got, want = r.json(), what_if_fact(m, X, name, value)
        for k in ("old_risk", "new_risk", "old_bucket", "new_bucket", "change", "changed"): assert got[k] == want[k], k
        assert {ch["feature"] for ch in got["changed"]} == moved - ({"overtime_ratio"} if it["features"]["overtime_ratio"] is None else set()), name
        assert got["fact"] == {"name": name, "value": want["value"]} and got["feature"] is None
    raised = {ch["feature"]: ch for ch in c.post(WHATIF.format(A), json={**it, "fact": {"name": "raise_pct", "value": 5}}, headers=hdr(base)).json()["changed"]}
    assert abs(raised["compa_ratio"]["new"] - it["features"]["compa_ratio"] * 1.05) < 1e-12 and raised["months_since_raise"]["new"] == 0
    old = c.post(WHATIF.format(A), json={**it, "change": {"feature": "months_since_raise", "value": 0.0}}, headers=hdr(base)).json()
    assert [ch["feature"] for ch in old["changed"]] == ["months_since_raise"] and old["fact"] is None   # the old form still answers, and says what it changed
    for body, code, says in (({"name": "raise", "value": 5}, 422, "'raise_pct'"), ({"name": "raise_pct", "value": 150}, 422, "less than or equal to 100"),
                             ({"name": "raise_pct", "value": -50}, 422, "greater than -50"), ({"name": "weekly_hours", "value": 0}, 422, "greater than 0"),
                             ({"name": "promotion_level", "value": 13}, 422, "less than or equal to 12"), ({"name": "new_manager", "value": 1.5}, 422, "new_manager"),
                             ({"name": "new_manager", "value": False}, 422, "new_manager"),
                             ({"name": "promotion_level", "value": lvl}, 409, f"a promotion to level {lvl} is not above the current level {lvl}")):
        r = c.post(WHATIF.format(A), json={**it, "fact": body}, headers=hdr(base))
        assert r.status_code == code and any(says in e["msg"] or says in map(str, e["loc"]) for e in r.json()["detail"]), (body, r.text)
    r = c.post(WHATIF.format(A), json={**it, "features": {**it["features"], "compa_ratio": None}, "fact": {"name": "raise_pct", "value": 5}}, headers=hdr(base))
    assert r.status_code == 409 and r.json()["detail"][0]["msg"] == "what-if: raise_pct needs compa_ratio, which is empty for this employee (no record to start from)"
    for extra in ({"fact": {"name": "new_manager", "value": True}, "change": {"feature": "compa_ratio", "value": 1.0}}, {}):
        assert c.post(WHATIF.format(A), json={**it, **extra}, headers=hdr(base)).status_code == 422, extra     # one of the two, not both or neither
    for bad in ({"name": "raise_pct", "value": [5]}, {"name": "raise_pct"}, {"name": "raise_pct", "value": 5, "unit": "%"}):
        assert c.post(WHATIF.format(A), json={**it, "fact": bad}, headers=hdr(base)).status_code == 422, bad


# ---------------------------------------------------------------- authentication and tenant isolation

def test_every_tenant_route_requires_a_key(base):
    c, A = base["client"], base["A"]
    routes = tenant_routes(base["app"])
    assert len(routes) == 4, routes
    revoked_id, revoked = create_key(A, base["state"], label="to revoke")
    revoke_key(revoked_id, base["state"])
    bad_headers = [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}, {"Authorization": "Bearer nonsense"},
                   {"Authorization": "Bearer hrml.000000000000.guessed"}, {"Authorization": f"Bearer {revoked}"},
                   {"Authorization": hdr(base)["Authorization"][:-2]}, {"X-API-Key": hdr(base)["Authorization"][7:]}]
    n0 = len(audit_lines(base["state"]))
    for method, path in routes:
        body = valid_body(base, path)
        for h in bad_headers:
            r = c.request(method, route_url(base, path, A), json=body, headers=h)
            assert r.status_code == 401, (path, h, r.status_code, r.text)
            assert r.headers.get("www-authenticate") == "Bearer" and "detail" in r.json()
        assert c.request(method, route_url(base, path, A), json=body, headers=hdr(base)).status_code == 200
    assert len(audit_lines(base["state"])) == n0 + 5  # only the authorised requests were scored (2 + 1 + 1, and 1 pay-info)


def test_cross_tenant_access_is_refused_on_every_tenant_route(base):
    "OWASP API1: tenant A's key on tenant B's path (or any other tenant's, existing or not) is 403, and nothing is scored."
    c, A, B = base["client"], base["A"], base["B"]
    n0 = len(audit_lines(base["state"]))
    for method, path in tenant_routes(base["app"]):
        body = valid_body(base, path)
        for key_tenant, path_tenant in ((A, B), (B, A), (A, "T99999"), (A, A.lower()), (A, A + " "), (A, "")):
            url_ = route_url(base, path, path_tenant if path_tenant else "%20")
            r = c.request(method, url_, json=body, headers=hdr(base, key_tenant))
            assert r.status_code == 403, (path, key_tenant, path_tenant, r.status_code, r.text)
            assert B not in r.text or path_tenant == B
        assert c.request(method, route_url(base, path, B), json=body, headers=hdr(base, B)).status_code == 200
    lines = audit_lines(base["state"])[n0:]
    assert {l["tenant"] for l in lines} == {B} and {l["key_id"] for l in lines} == {base["keys"][B][0]}


def test_new_and_revoked_keys_take_effect_without_restart(base):
    c, A = base["client"], base["A"]
    kid, secret = create_key(A, base["state"])
    h = {"Authorization": f"Bearer {secret}"}
    assert c.post(SCORES.format(A), json={"employees": [emp(base)]}, headers=h).status_code == 200
    revoke_key(kid, base["state"])
    assert c.post(SCORES.format(A), json={"employees": [emp(base)]}, headers=h).status_code == 401
    listed = {k["key_id"]: k for k in list_keys(base["state"])}
    assert listed[kid]["revoked_utc"] and "sha256" not in listed[kid]
    text = (base["state"] / "keys.json").read_text()
    assert secret not in text and secret.split(".")[2] not in text
    assert (base["state"] / "keys.json").stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------- limits and bad input

def test_batch_and_body_limits(base):
    A = base["A"]
    app = create_app(base["model"], base["tmp"] / "limits_state", max_batch=5, max_body_bytes=8_000)
    kid, secret = create_key(A, base["tmp"] / "limits_state")
    c, h = TestClient(app), {"Authorization": f"Bearer {secret}"}
    assert c.post(SCORES.format(A), json={"employees": [emp(base, i) for i in range(5)]}, headers=h).status_code == 200
    r = c.post(SCORES.format(A), json={"employees": [emp(base, i) for i in range(6)]}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "employees"], r.text
    big = json.dumps({"employees": [emp(base, i) for i in range(20)]}).encode()
    r = c.post(SCORES.format(A), content=big, headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 413 and "8,000 bytes" in r.json()["detail"], r.text
    def chunks():  # no Content-Length: counted while streaming
        for i in range(0, len(big), 1000): yield big[i:i + 1000]
    r = c.post(SCORES.format(A), content=chunks(), headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 413 and "8,000 bytes" in r.json()["detail"], r.text
    assert audit_lines(base["tmp"] / "limits_state").__len__() == 5


def _bad_payloads(base):
    ok = emp(base, 0)
    f = ok["features"]
    E = lambda **kw: {"employees": [{"employee_id": ok["employee_id"], "features": {**f, **kw}}]}
    missing = {k: v for k, v in f.items() if k != "compa_ratio"}
    return {
        "bool for a number": (E(compa_ratio=True), "compa_ratio"),
        "string for a number": (E(compa_ratio="0.93"), "compa_ratio"),
        "float for an integer": (E(job_level=3.5), "job_level"),
        "number for a category": (E(department=7), "department"),
        "null where a value is required": (E(tenure_years=None), "tenure_years"),
        "unknown field": (E(gender="female"), "gender"),
        "missing field": ({"employees": [{"employee_id": "E1", "features": missing}]}, "compa_ratio"),
        "too large a number": (E(compa_ratio=1e300), "compa_ratio"),
        "integer out of range": (E(job_level=2**40), "job_level"),
        "part_time not 0/1": (E(part_time=2), "part_time"),
        "empty employee id": ({"employees": [{**ok, "employee_id": ""}]}, "employee_id"),
        "long employee id": ({"employees": [{**ok, "employee_id": "E" * 200}]}, "employee_id"),
        "number as employee id": ({"employees": [{**ok, "employee_id": 12}]}, "employee_id"),
        "empty batch": ({"employees": []}, "employees"),
        "employees not a list": ({"employees": ok}, "employees"),
        "unknown top-level field": ({"employees": [ok], "tenant": "x"}, "tenant"),
        "array body": ([ok], "body"),
        "no body": (None, "content-type"),
    }


def test_bad_input_is_4xx_naming_the_field_never_500(base):
    c, A = base["client"], base["A"]
    for name, (payload, field) in _bad_payloads(base).items():
        r = c.post(SCORES.format(A), json=payload, headers=hdr(base))
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        detail = r.json()["detail"]
        assert any(field in map(str, e["loc"]) for e in detail), (name, detail)
    second_row = {"employees": [emp(base, 0), emp(base, 1, compa_ratio=False)]}
    assert c.post(SCORES.format(A), json=second_row, headers=hdr(base)).json()["detail"][0]["loc"] == ["body", "employees", 1, "features", "compa_ratio"]
    raw = [b'{"employees": [', b"not json", b"", b'{"employees": [{"employee_id": "E1", "features": {"compa_ratio": NaN}}]}',
           b'{"employees": [{"employee_id": "E1", "features": {"compa_ratio": Infinity}}]}', b'{"employees": "\\ud800"}',
           json.dumps({"employees": [{**emp(base), "employee_id": "a\ud800b"}]}).encode(), b"[" * 100_000 + b"]" * 100_000,
           "{\"employees\": [{\"employee_id\": \"\u00e9\u4e2d\"}]}".encode("latin-1", "replace")]
    for body in raw:
        for ctype in ("application/json", "text/plain"):
            r = c.post(SCORES.format(A), content=body, headers={**hdr(base), "Content-Type": ctype})
            assert 400 <= r.status_code < 500 and "detail" in r.json(), (body[:60], ctype, r.status_code, r.text[:300])
    what = {**emp(base), "change": {"feature": "compa_ratio", "value": "1.0"}}
    assert c.post(WHATIF.format(A), json=what, headers=hdr(base)).status_code == 422


# ---------------------------------------------------------------- audit log, erase, retention

def test_audit_lines_are_pseudonymous_and_complete(base):
    state, A = base["tmp"] / "audit_state", base["A"]
    app = create_app(base["model"], state)
    kid, secret = create_key(A, state)
    c, h = TestClient(app), {"Authorization": f"Bearer {secret}"}
    items = [emp(base, i) for i in range(4)]
    r = c.post(SCORES.format(A), json={"employees": items}, headers=h).json()
    c.post(WHATIF.format(A), json={**items[0], "change": {"feature": "compa_ratio", "value": 1.1}}, headers=h)
    lines = audit_lines(state)
    assert len(lines) == 5
    text = "".join(f.read_text() for f in (state / "audit").glob("*.jsonl"))
    salt = _salt(state)
    for it in items:
        assert it["employee_id"] not in text and it["employee_id"].split("-")[-1] not in text
    for f in FEATURES: assert f'"{f}"' not in text.replace('"feature":"compa_ratio"', "")   # no feature values or names (bar the what-if's)
    sha = base["model"].registry_["sha256"]
    for l, want in zip(lines, r["employees"]):
        assert set(l) == {"ts", "tenant", "employee", "route", "request_id", "model", "model_version", "model_sha256", "risk", "bucket", "key_id"}
        assert l["employee"] == pseudonym(salt, A, want["employee_id"]) and l["risk"] == want["risk"] and l["bucket"] == want["bucket"]
        assert l["tenant"] == A and l["key_id"] == kid and l["model_sha256"] == sha and l["route"] == "scores"
        assert dt.datetime.fromisoformat(l["ts"].replace("Z", "+00:00")).tzinfo is not None
    assert len({l["request_id"] for l in lines[:4]}) == 1
    w = lines[4]
    assert w["route"] == "what-if" and w["what_if"]["feature"] == "compa_ratio" and set(w["what_if"]) == {"feature", "new_risk", "new_bucket"}
    for f in (state / "audit").glob("*.jsonl"): assert f.stat().st_mode & 0o777 == 0o600
    assert (state / "audit_salt").stat().st_mode & 0o777 == 0o600


def test_concurrent_requests_write_every_line(base):
    state, A = base["tmp"] / "concurrent_state", base["A"]
    app = create_app(base["model"], state)
    kid, secret = create_key(A, state)
    c, h, codes = TestClient(app), {"Authorization": f"Bearer {secret}"}, []
    def work(t):
        for i in range(5): codes.append(c.post(SCORES.format(A), json={"employees": [emp(base, t * 5 + i), emp(base, 40 + t)]}, headers=h).status_code)
    ts = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert codes == [200] * 30
    assert len(audit_lines(state)) == 60 and all(l["key_id"] == kid for l in audit_lines(state))


def test_erase_removes_audit_lines_and_stored_scores(base):
    from hr_ml.score import score_to_parquet
    state, A, B = base["tmp"] / "erase_state", base["A"], base["B"]
    app = create_app(base["model"], state)
    ka, sa = create_key(A, state); kb, sb = create_key(B, state)
    c = TestClient(app)
    target = emp(base, 0)
    for _ in range(2): c.post(SCORES.format(A), json={"employees": [target, emp(base, 1)]}, headers={"Authorization": f"Bearer {sa}"})
    c.post(WHATIF.format(A), json={**target, "change": {"feature": "compa_ratio", "value": 1.0}}, headers={"Authorization": f"Bearer {sa}"})
    c.post(SCORES.format(B), json={"employees": [target]}, headers={"Authorization": f"Bearer {sb}"})  # same id at another tenant: not erased
    (state / "audit" / "2020-01-01.jsonl").write_text(json.dumps(audit_lines(state)[0], separators=(",", ":")) + "\n")  # an older day's file
    snap = base["snap"]
    p1 = score_to_parquet(base["model"], snap, ["tenant_id", "employee_id"], base["tmp"] / "scores1.parquet")
    p2 = score_to_parquet(base["model"], snap.filter(pl.col("tenant_id") == B), ["tenant_id", "employee_id"], base["tmp"] / "scores2.parquet")
    n1 = pl.read_parquet(p1).height
    before = p2.read_bytes()
    res = erase(A, target["employee_id"], state, scores=[p1, p2])
    assert res == {"audit_lines": 3 + 1, "audit_files": 2, "score_rows": 1, "score_files": 1}, res
    who = pseudonym(_salt(state), A, target["employee_id"])
    left = audit_lines(state)
    assert not [l for l in left if l["employee"] == who and l["tenant"] == A]
    assert len(left) == 3 and sum(l["tenant"] == B for l in left) == 1
    s1 = pl.read_parquet(p1)
    assert s1.height == n1 - 1 and s1.filter((pl.col("tenant_id") == A) & (pl.col("employee_id") == target["employee_id"])).height == 0
    assert p2.read_bytes() == before  # untouched: that employee was not in it
    assert erase(A, target["employee_id"], state, scores=[p1]) == {"audit_lines": 0, "audit_files": 0, "score_rows": 0, "score_files": 0}
    with pytest.raises(HRDataError, match="no tenant_id and employee_id"):
        snap.select(FEATURES).write_parquet(base["tmp"] / "noids.parquet"); erase(A, "x", state, scores=[base["tmp"] / "noids.parquet"])
    # the service keeps writing to the (replaced) file after an erase
    c.post(SCORES.format(A), json={"employees": [emp(base, 1)]}, headers={"Authorization": f"Bearer {sa}"})
    assert len(audit_lines(state)) == 4


def test_retention_purge(base):
    state = base["tmp"] / "retention_state"
    (state / "audit").mkdir(parents=True)
    today = dt.datetime.now(dt.timezone.utc).date()
    for d in (400, 31, 30, 29, 1):
        (state / "audit" / f"{today - dt.timedelta(days=d)}.jsonl").write_text("{}\n")
    (state / "audit" / "notes.jsonl").write_text("kept\n")
    assert purge_audit(state, 30) == 3
    left = sorted(f.name for f in (state / "audit").glob("*.jsonl"))
    assert left == sorted([f"{today - dt.timedelta(days=d)}.jsonl" for d in (29, 1)] + ["notes.jsonl"])
    with pytest.raises(HRDataError, match="at least 1 day"): purge_audit(state, 0)
    # the app purges at start-up, and again at the first write of a new day
    (state / "audit" / f"{today - dt.timedelta(days=10)}.jsonl").write_text("{}\n")
    app = create_app(base["model"], state, retention_days=5)
    assert not (state / "audit" / f"{today - dt.timedelta(days=10)}.jsonl").exists()
    (state / "audit" / f"{today - dt.timedelta(days=7)}.jsonl").write_text("{}\n")
    with TestClient(app): pass  # lifespan start-up
    assert not (state / "audit" / f"{today - dt.timedelta(days=7)}.jsonl").exists()
    app.state.audit._purged = today - dt.timedelta(days=1)   # as if the service had run since yesterday
    (state / "audit" / f"{today - dt.timedelta(days=6)}.jsonl").write_text("{}\n")
    kid, secret = create_key(base["A"], state)
    assert TestClient(app).post(SCORES.format(base["A"]), json={"employees": [emp(base)]}, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert not (state / "audit" / f"{today - dt.timedelta(days=6)}.jsonl").exists()


# ---------------------------------------------------------------- operations routes and metrics

def test_health_ready_metrics(base):
    from prometheus_client.parser import text_string_to_metric_families
    c = base["client"]
    assert c.get("/health").json() == {"status": "ok"}
    r = c.get("/ready").json()
    assert r["status"] == "ready" and r["model"]["run"] == RUN_ID and r["model"]["sha256"] == base["model"].registry_["sha256"]
    c.post(SCORES.format(base["A"]), json={"employees": [emp(base, 0), emp(base, 1)]}, headers=hdr(base))
    c.post(SCORES.format(base["A"]), json={"employees": [emp(base)]})
    m = c.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(m.text)}
    assert {"hr_ml_http_requests", "hr_ml_http_request_duration_seconds", "hr_ml_employees_scored", "hr_ml_model_info"} <= set(fams)
    req = {(s.labels["route"], s.labels["status"]): s.value for s in fams["hr_ml_http_requests"].samples if s.name.endswith("_total")}
    assert req[(SCORES.format("{tenant_id}"), "200")] >= 1 and req[(SCORES.format("{tenant_id}"), "401")] >= 1
    info = [s for s in fams["hr_ml_model_info"].samples][0]
    assert info.labels["sha256"] == base["model"].registry_["sha256"] and info.labels["run"] == RUN_ID
    assert base["A"] not in m.text and base["B"] not in m.text and emp(base, 0)["employee_id"] not in m.text  # no tenant or employee ids


def test_openapi_is_served_and_describes_the_strict_models(base):
    spec = base["client"].get("/openapi.json").json()
    assert {SCORES.format("{tenant_id}"), WHATIF.format("{tenant_id}"), NARRATIVE.format("{tenant_id}"), "/health", "/ready", "/metrics"} <= set(spec["paths"])
    feats = spec["components"]["schemas"]["EmployeeFeatures"]
    assert feats["additionalProperties"] is False and set(feats["required"]) == set(FEATURES)
    assert feats["properties"]["job_level"]["type"] == "integer"
    assert {"type": "null"} in feats["properties"]["overtime_ratio"]["anyOf"]
    assert "ApiKey" in spec["components"]["securitySchemes"]
    assert {"NarrativeRequest", "NarrativeEmployee", "NarrativeTeam", "NarrativeResponse"} <= set(spec["components"]["schemas"])
    for p in (SCORES, WHATIF, NARRATIVE):
        op = spec["paths"][p.format("{tenant_id}")]["post"]
        assert {"401", "403", "413", "422"} <= set(op["responses"]) and op["security"] == [{"ApiKey": []}]


# ---------------------------------------------------------------- model loading

def test_load_served_model_errors(base, tmp_path):
    import shutil
    with pytest.raises(HRDataError, match="no such run folder"): load_served_model(str(tmp_path / "runs" / "missing"))
    with pytest.raises(HRDataError, match="no such run folder"): load_served_model("champion; rm -rf /")
    bad = Path(shutil.copytree(base["run"], tmp_path / "tampered"))
    (bad / "model.ubj").write_bytes((bad / "model.ubj").read_bytes()[:-1] + b"\x00")
    with pytest.raises(HRDataError, match="SHA-256") as e: load_served_model(bad)
    assert "\n" not in str(e.value)
    man = Path(shutil.copytree(base["run"], tmp_path / "with_manifest"))
    (man / "manifest.json").write_text(json.dumps({"files": {"model.json": "0" * 64}}))
    with pytest.raises(HRDataError, match="manifest"): load_served_model(man)


# ---------------------------------------------------------------- schemathesis against the served spec

def test_schemathesis_no_5xx_and_schema_conformance(base):
    """Bounded, deterministic schemathesis run over every operation of the served spec, valid and invalid data, all checks.

    (The pytest plugin's lazy `from_fixture` loader breaks on pytest 9 -- it sets `request.node._nodeid` -- so the cases
    come from each operation's hypothesis strategy instead.)"""
    from hypothesis import given
    state = base["tmp"] / "fuzz_state"
    app = create_app(base["model"], state, max_batch=10, max_body_bytes=64_000)
    kid, secret = create_key(base["A"], state)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(deterministic=True)
    headers, seen = {"Authorization": f"Bearer {secret}"}, []
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) == 7
    for op in ops:
        tenant = {"tenant_id": base["A"]} if "{tenant_id}" in op.path else None
        post = op.method.upper() == "POST"
        for mode in (schemathesis.GenerationMode.POSITIVE,) + ((schemathesis.GenerationMode.NEGATIVE,) if post else ()):  # GETs take no input
            n = 10 if post else 3
            @given(case=op.as_strategy(generation_mode=mode, path_parameters=tenant))
            @settings(max_examples=n, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def run(case):
                r = case.call_and_validate(headers=headers)
                assert r.status_code < 500, (case.method, case.path, r.status_code, r.text[:300])
                seen.append((op.path, mode.value, r.status_code))
            run()
    ok = {(p, c) for p, m, c in seen if m == "positive"}
    assert (SCORES.format("{tenant_id}"), 200) in ok and (WHATIF.format("{tenant_id}"), 200) in ok, sorted(set(seen))
    assert (NARRATIVE.format("{tenant_id}"), 200) in ok, sorted(set(seen))
    assert any(m == "negative" and c == 422 for p, m, c in seen)


# ---------------------------------------------------------------- a real uvicorn process

@pytest.fixture(scope="module")
def server(base):
    "The base URL of the real server started in `base` (waits for its ready line, then polls /ready)."
    proc, deadline, out = base["proc"], time.time() + 240, []
    while time.time() < deadline:
        if proc.poll() is not None: pytest.fail("server exited: " + "".join(out) + proc.stdout.read())
        if select.select([proc.stdout], [], [], 1.0)[0]:
            line = proc.stdout.readline(); out.append(line)
            m = re.search(r"ready on (http://127\.0\.0\.1:\d+)", line)
            if m: break
    else: pytest.fail("no ready line from the server: " + "".join(out))
    url = m.group(1)
    assert "run " + RUN_ID in line and "2 active API keys" in line and not any("Traceback" in l for l in out), out
    for _ in range(50):
        try:
            if httpx.get(url + "/ready", timeout=5).status_code == 200: break
        except httpx.TransportError: time.sleep(0.2)
    return url


def test_real_server_scores_and_isolates_tenants(base, server):
    A, B, keys = base["A"], base["B"], base["srv_keys"]
    h = {"Authorization": f"Bearer {keys[A]}"}
    with httpx.Client(base_url=server, timeout=30) as c:
        items = [emp(base, i) for i in range(3)]
        r = c.post(SCORES.format(A), json={"employees": items}, headers=h)
        assert r.status_code == 200, r.text
        want = base["client"].post(SCORES.format(A), json={"employees": items}, headers=hdr(base)).json()
        assert r.json()["employees"] == want["employees"]
        assert c.post(WHATIF.format(A), json={**items[0], "change": {"feature": "compa_ratio", "value": 1.0}}, headers=h).status_code == 200
        for method, path in tenant_routes(base["app"]):
            body = valid_body(base, path)
            assert c.request(method, route_url(base, path, A), json=body).status_code == 401
            assert c.request(method, route_url(base, path, B), json=body, headers=h).status_code == 403
            assert c.request(method, route_url(base, path, B), json=body, headers={"Authorization": f"Bearer {keys[B]}"}).status_code == 200
        r = c.post(SCORES.format(A), json={"employees": [emp(base, 0, compa_ratio=True)]}, headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "employees", 0, "features", "compa_ratio"]
        assert c.post(SCORES.format(A), json={"employees": [emp(base, i) for i in range(51)]}, headers=h).status_code in (413, 422)
        big = json.dumps({"employees": [emp(base, i % 50) for i in range(400)]}).encode()
        r = c.post(SCORES.format(A), content=big, headers={**h, "Content-Type": "application/json"})
        assert r.status_code == 413 and "200,000 bytes" in r.json()["detail"]
        r = c.post(SCORES.format(A), content=(big[i:i + 4096] for i in range(0, len(big), 4096)), headers={**h, "Content-Type": "application/json"})
        assert r.status_code == 413 and "200,000 bytes" in r.json()["detail"]
        assert c.get("/health").json() == {"status": "ok"}
        assert "hr_ml_http_requests_total" in c.get("/metrics").text
    lines = audit_lines(base["srv_state"])
    assert [("model_sha256" in l) for l in lines if l["route"] == "pay-info"] == [False]   # one pay-info line; no model involved
    lines = [l for l in lines if l["route"] != "pay-info"]
    assert len(lines) == 3 + 1 + (2 + 1 + 1) and all(l["model_sha256"] == base["model"].registry_["sha256"] for l in lines)
    text = "".join(f.read_text() for f in (base["srv_state"] / "audit").glob("*.jsonl"))
    assert not any(it["employee_id"] in text for it in items)


def test_real_server_stops_cleanly_on_sigterm(base, server):
    proc = base["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn shuts down gracefully, then re-raises the signal it caught
    rest = proc.stdout.read()
    assert "Traceback" not in rest and "Error" not in rest, rest
