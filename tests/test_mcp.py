"""The MCP tool server through the official SDK's real client: `hr-ml mcp` over stdio (a session bound to --tenant) and over
streamable HTTP (each API key bound to its tenant), every tool checked against direct computation, refusals, suppression, the audit log."""
import asyncio, json, os, socket, subprocess, sys, time
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest

from hr_ml.attrition import AttritionModel, metrics
from hr_ml.explain import contributions
from hr_ml.features import FEATURES, build_features
from hr_ml.pay_equity import category_gaps, indicators, pay_table
from hr_ml.privacy import protected_kind
from hr_ml.serve import create_key, revoke_key
from hr_ml.synth import generate
from hr_ml.tools import TOOLS

from conftest import hr_ml_inprocess

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

A, B = "T00005", "T00004"   # 352 and 136 current employees
THREE = "ethics"            # a department of three people in tenant A


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    "A small synthetic HRIS export (one team of 3 made in tenant A), a model trained on its 2024 snapshot with a card's metrics.json."
    d = tmp_path_factory.mktemp("mcp")
    tables, _ = generate(n_employees=1500, n_tenants=8, seed=5)
    tr = build_features(tables, date(2024, 12, 31))
    hold = tr["tenant_id"].is_in(["T00002", "T00007"])
    m = AttritionModel(n_estimators=40, max_depth=3, early_stopping_rounds=None, n_jobs=1).fit(tr.filter(~hold).select(FEATURES), tr.filter(~hold)["label"])
    run = m.save(d / "run")
    te = tr.filter(hold)
    oof = metrics(te["label"].to_numpy(), m.predict_risk(te.select(FEATURES)))
    (run / "metrics.json").write_text(json.dumps({"oof_metrics": oof, "chosen_model": "xgboost", "horizon_months": 12, "cuts": [0.15, 0.35],
                                                  "features": FEATURES, "source": "synthetic HRIS (seed 5)"}, default=float))
    # three current employees of tenant A move to a new department: a team of 3
    from hr_ml.features import data_range
    emp = tables["employees"]
    cur = build_features(tables, data_range(tables)[1], 12)
    moved = tables["job_changes"].filter(pl.col("new_department").is_not_null())["employee_id"]   # a transfer would override the move
    three = cur.filter((pl.col("tenant_id") == A) & ~pl.col("employee_id").is_in(moved.to_list()))["employee_id"].head(3).to_list()
    tables["employees"] = emp.with_columns(department=pl.when((pl.col("tenant_id") == A) & pl.col("employee_id").is_in(three))
                                           .then(pl.lit(THREE)).otherwise(pl.col("department")))
    hris = d / "hris"; hris.mkdir()
    for name, t in tables.items(): t.write_parquet(hris / f"{name}.parquet")
    from hr_ml.score import score_inputs
    X = score_inputs(hris, m)[0]                     # what the server reads: the export's last date
    X = X.collect() if isinstance(X, pl.LazyFrame) else X
    assert X.filter((pl.col("tenant_id") == A) & (pl.col("department") == THREE)).height == 3
    return {"d": d, "run": run, "hris": hris, "model": m, "X": X, "tables": tables, "oof": oof}


def _args(w, *more):
    return ["-m", "hr_ml.cli", "mcp", "--model", str(w["run"]), "--data", str(w["hris"]), *more]


def _text(r): return r.content[0].text


def _row(w, tenant, i=0):
    x = w["X"].filter(pl.col("tenant_id") == tenant)
    return x["employee_id"][i], x.slice(i, 1)


def _audit_lines(state: Path) -> list[dict]:
    return [json.loads(l) for f in sorted((state / "audit").glob("*.jsonl")) for l in f.read_text().splitlines()]


# ---- stdio ------------------------------------------------------------------------------------------------------------
async def _stdio_session(w, state):
    params = StdioServerParameters(command=sys.executable, args=_args(w, "--tenant", A, "--state", str(state)), cwd=str(w["d"]),
                                   env=dict(os.environ))   # the SDK passes only HOME, PATH, SHELL, TERM by default; BLAS settings
                                                           # (OPENBLAS_CORETYPE) move the small pay regressions' adjusted gaps
    out = {}
    async with Client(params, read_timeout_seconds=120) as c:
        out["tools"] = (await c.list_tools()).tools
        e, _ = _row(w, A)
        out["drivers"] = await c.call_tool("employee_drivers", {"employee_id": e})
        out["what_if"] = await c.call_tool("what_if", {"employee_id": e, "fact": "raise_pct", "value": 10})
        out["teams"] = await c.call_tool("team_risk", {})
        out["three"] = await c.call_tool("team_risk", {"department": THREE})
        out["unknown_dept"] = await c.call_tool("team_risk", {"department": "astrology"})
        out["pay"] = await c.call_tool("pay_equity_indicators", {})
        out["card"] = await c.call_tool("model_card", {})
        out["other_tenant"] = await c.call_tool("employee_drivers", {"employee_id": _row(w, B)[0]})
        out["bad_fact"] = await c.call_tool("what_if", {"employee_id": e, "fact": "free_lunch", "value": 1})
    return out


@pytest.fixture(scope="module")
def stdio(world):
    state = world["d"] / "stdio_state"
    return asyncio.run(_stdio_session(world, state)), state


def test_stdio_lists_the_five_tools(stdio):
    out, _ = stdio
    test = {t.name: t for t in out["tools"]}
    assert set(test) == set(TOOLS)
    assert all(test[n].description == TOOLS[n] for n in TOOLS)
    assert set(test["what_if"].input_schema["required"]) == {"employee_id", "fact", "value"}
    assert "tenant" not in json.dumps([t.input_schema for t in out["tools"]])   # no tool takes a tenant: the session has one


def test_stdio_employee_drivers_match_the_model(stdio, world):
    out, _ = stdio
    r = out["drivers"]
    assert not r.is_error, _text(r)
    s = r.structured_content
    e, row = _row(world, A)
    m = world["model"]
    assert s["employee_id"] == e
    assert s["risk"] == pytest.approx(float(m.predict_proba(row.select(FEATURES))[0, 1]), abs=1e-4)
    phi, _ = contributions(m, row.select(m.feature_names_))
    shap = dict(zip(m.feature_names_, phi[0]))
    assert s["drivers"], "no driver"
    for d in s["drivers"]:
        assert d["shap"] == pytest.approx(shap[d["feature"]], abs=1e-4)
        assert d["direction"] == ("raises" if shap[d["feature"]] > 0 else "lowers")
    assert e not in s["narrative"]                      # the narrative names a pseudonym
    named = [d["feature"] for d in s["drivers"] + s["context"]]
    assert not [f for f in named if f.startswith("prot_") or protected_kind(f)]
    assert not any(k in json.dumps(s) for k in ("prot_", "gender", "nationality", "birth"))
    assert json.loads(_text(r)) == s                    # the text content is the same JSON


def test_stdio_what_if_matches_the_model(stdio, world):
    out, _ = stdio
    s = out["what_if"].structured_content
    _, row = _row(world, A)
    x = row.select(FEATURES)
    new = x.with_columns(compa_ratio=pl.col("compa_ratio") * 1.1, months_since_raise=pl.lit(0.0), last_raise_pct=pl.lit(10.0))
    m = world["model"]
    assert s["risk_before"] == pytest.approx(float(m.predict_risk(x)[0]), abs=1e-4)
    assert s["risk_after"] == pytest.approx(float(m.predict_risk(new)[0]), abs=1e-4)
    assert s["risk_after"] != s["risk_before"]
    assert {c["feature"] for c in s["changed"]} == {"compa_ratio", "months_since_raise", "last_raise_pct"}


def test_stdio_team_risk_is_k_anonymous_and_right(stdio, world):
    out, _ = stdio
    deps = out["teams"].structured_content["departments"]
    a = world["X"].filter(pl.col("tenant_id") == A)
    risk = world["model"].predict_risk(a.select(FEATURES))
    shown = [r for r in deps if not r["suppressed"]]
    assert shown and all(r["n"] >= 5 for r in shown)
    for r in shown:
        mask = (a["department"] == r["department"]).to_numpy()
        assert r["n"] == mask.sum()
        assert r["mean_risk"] == pytest.approx(float(risk[mask].mean()), abs=2e-4)
        high = int((risk[mask] >= 0.35).sum())
        if r["high_risk_share"] == "suppressed": assert 0 < high < 5 or 0 < r["n"] - high < 5
        else: assert r["high_risk_share"] == pytest.approx(high / r["n"], abs=1e-4) and (high == 0 or high >= 5) and r["n"] - high >= 5
    hidden = {r["department"]: r for r in deps if r["suppressed"]}
    assert THREE in hidden and set(hidden[THREE]) == {"department", "suppressed", "reason"}
    assert len(hidden) >= 2                              # complementary suppression: the headcount minus the rest gives nothing away
    three = out["three"].structured_content
    assert three["suppressed"] is True and "n" not in three and "mean_risk" not in three and "narrative" not in three
    assert "3" not in json.dumps(three)
    assert out["unknown_dept"].is_error and _text(out["unknown_dept"]).startswith(f"no department 'astrology' in tenant {A}")


def test_stdio_pay_equity_and_card(stdio, world):
    out, _ = stdio
    p = out["pay"].structured_content
    direct = indicators(pay_table(world["tables"], tenant=A), 5)
    for k in ("mean_gap_pct", "median_gap_pct", "n_female", "n_male"):
        assert p[k] == direct[k]
    cats = category_gaps(pay_table(world["tables"], tenant=A), k=5)
    want = {c["category"]: c for c in cats.iter_rows(named=True) if not c["suppressed"] and c["gap_pct"] is not None and c["gap_pct"] >= 5}
    assert want and {c["category"] for c in p["above_threshold"]} == set(want)
    for c in p["above_threshold"]:
        assert c["adjusted_gap_pct"] == want[c["category"]]["adjusted_gap_pct"] and c["art10_flag"] == want[c["category"]]["art10_flag"]
    assert "suppressed" in json.dumps(p)                 # the tenant has small groups (e.g. a gender of fewer than 5), and they read so
    c = out["card"].structured_content
    assert c["performance"]["roc_auc"] == pytest.approx(world["oof"]["roc_auc"])
    assert c["card"] == "run" and "Not a sole basis" in c["out_of_scope"]


def test_stdio_refusals_are_tool_errors(stdio, world):
    out, _ = stdio
    r = out["other_tenant"]
    assert r.is_error and _text(r) == f"employee {_row(world, B)[0]} not found in tenant {A}"
    assert out["bad_fact"].is_error and "unknown fact 'free_lunch'" in _text(out["bad_fact"])


def test_stdio_audit_log(stdio, world):
    out, state = stdio
    lines = _audit_lines(state)
    assert [l["tool"] for l in lines] == ["employee_drivers", "what_if", "team_risk", "team_risk", "team_risk", "pay_equity_indicators",
                                          "model_card", "employee_drivers", "what_if"]
    assert [l["outcome"] for l in lines] == ["ok", "ok", "ok", "suppressed", "refused", "ok", "ok", "refused", "refused"]
    assert {l["tenant"] for l in lines} == {A}
    assert all(l["model_sha256"] for l in lines)
    raw = "".join(f.read_text() for f in (state / "audit").glob("*.jsonl"))
    for e in (_row(world, A)[0], _row(world, B)[0]): assert e not in raw
    assert lines[0]["employee"] and len(lines[0]["employee"]) == 64


def test_cli_unknown_tenant_is_one_line_on_stderr(world, tmp_path):
    "In this process (typer's runner): the command's own output; the real server processes are the stdio and HTTP fixtures."
    r = hr_ml_inprocess(*_args(world, "--tenant", "T99999", "--state", str(tmp_path / "s"))[2:])
    assert r.returncode == 2 and r.stdout == ""          # stdout belongs to the protocol
    assert r.stderr == "error: no employees of tenant T99999 in the data; check the tenant id\n"


@pytest.mark.parametrize("more, expect", [
    ([], "pass --tenant T (the tenant a stdio session acts for), or --http"),
    (["--http", "--tenant", A], "--tenant is for stdio; over --http each API key binds its tenant (hr-ml keys create --tenant T)"),
    (["--http"], "no API keys; create one with hr-ml keys create"),
    (["--http", "--port", "70000"], "--port 70000: use 1 to 65535"),
    (["--tenant", A, "--k-anon", "1"], "--k-anon"),
])
def test_cli_refusals_are_one_line(world, tmp_path, more, expect):
    from typer.testing import CliRunner
    from hr_ml.cli import app
    r = CliRunner().invoke(app, _args(world, *more, "--state", str(tmp_path / "s"))[2:])
    assert r.exit_code == 2 and r.stdout == "", r.stdout
    assert r.stderr.startswith("error: ") and expect in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# ---- streamable HTTP --------------------------------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture(scope="module")
def http_server(world):
    state = world["d"] / "http_state"
    (ka, key_a), (kb, key_b) = create_key(A, state), create_key(B, state)
    port = _free_port()
    p = subprocess.Popen([sys.executable, *_args(world, "--http", "--host", "127.0.0.1", "--port", str(port), "--state", str(state))], cwd=str(world["d"]),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/mcp"
    t0 = time.time()
    while True:
        try:
            httpx.get(url, timeout=1); break
        except httpx.TransportError:
            if p.poll() is not None: raise RuntimeError(p.stderr.read())
            if time.time() - t0 > 120: p.kill(); raise RuntimeError("hr-ml mcp --http did not start")
            time.sleep(0.3)
    yield {"url": url, "state": state, "key_a": key_a, "key_b": key_b, "key_id_a": ka}
    p.terminate()
    try: p.wait(10)
    except subprocess.TimeoutExpired: p.kill()


async def _http_calls(url, key, calls):
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {key}"}) as hc:
        async with Client(streamable_http_client(url, http_client=hc), read_timeout_seconds=120) as c:
            out = [(await c.list_tools()).tools]
            for name, args in calls: out.append(await c.call_tool(name, args))
            return out


def test_http_without_a_valid_key_is_401(http_server):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    hdr = {"Accept": "application/json, text/event-stream"}
    for extra in ({}, {"Authorization": "Bearer hrml.0000.wrong"}, {"Authorization": "Basic abc"}):
        r = httpx.post(http_server["url"], json=body, headers={**hdr, **extra}, timeout=10)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    with pytest.raises(Exception):   # the SDK's client cannot even start a session
        asyncio.run(_http_calls(http_server["url"], "hrml.0000.wrong", []))


def test_http_key_binds_the_tenant(http_server, world):
    ea, rowa = _row(world, A)
    eb, rowb = _row(world, B)
    tools, mine, theirs, teams = asyncio.run(_http_calls(http_server["url"], http_server["key_a"], [
        ("employee_drivers", {"employee_id": ea}), ("employee_drivers", {"employee_id": eb}), ("team_risk", {})]))
    assert {t.name for t in tools} == set(TOOLS)
    m = world["model"]
    assert mine.structured_content["risk"] == pytest.approx(float(m.predict_risk(rowa.select(FEATURES))[0]), abs=1e-4)
    assert theirs.is_error and _text(theirs) == f"employee {eb} not found in tenant {A}"
    assert teams.structured_content["tenant_id"] == A
    _, b_own, b_other = asyncio.run(_http_calls(http_server["url"], http_server["key_b"], [
        ("employee_drivers", {"employee_id": eb}), ("employee_drivers", {"employee_id": ea})]))
    assert b_own.structured_content["risk"] == pytest.approx(float(m.predict_risk(rowb.select(FEATURES))[0]), abs=1e-4)
    assert b_other.is_error and _text(b_other) == f"employee {ea} not found in tenant {B}"
    lines = [l for l in _audit_lines(http_server["state"]) if l["tool"] == "employee_drivers"]
    assert [(l["tenant"], l["outcome"]) for l in lines[-4:]] == [(A, "ok"), (A, "refused"), (B, "ok"), (B, "refused")]
    raw = "".join(f.read_text() for f in (http_server["state"] / "audit").glob("*.jsonl"))
    assert ea not in raw and eb not in raw


def test_http_session_stays_with_its_tenant(http_server):
    "A session opened with tenant A's key cannot be continued with tenant B's key."
    url, hdr = http_server["url"], {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    r = httpx.post(url, json=init, headers={**hdr, "Authorization": f"Bearer {http_server['key_a']}"}, timeout=10)
    assert r.status_code == 200
    sid = r.headers.get("mcp-session-id")
    if sid is None: pytest.skip("the server answered without a session id (stateless)")
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    r = httpx.post(url, json=call, headers={**hdr, "Authorization": f"Bearer {http_server['key_b']}", "mcp-session-id": sid,
                                            "mcp-protocol-version": "2025-06-18"}, timeout=10)
    assert r.status_code == 403


def test_http_revoked_key_is_refused(http_server):
    state = http_server["state"]
    ka, key = create_key(A, state)
    assert not asyncio.run(_http_calls(http_server["url"], key, [("model_card", {})]))[1].is_error
    revoke_key(ka, state)
    r = httpx.post(http_server["url"], json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                   headers={"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"}, timeout=10)
    assert r.status_code == 401
