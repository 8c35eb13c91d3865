"""MLflow tracking and registry end to end: a trained run is logged by `hr-ml train`, a good run is promoted and loads
back by alias with identical predictions, a failing gate or a missing gate record blocks promotion (one line, exit 2),
a tampered model is refused on load, and killing a training run or a logger mid-way leaves the registry unchanged."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import hr_ml_inprocess

from hr_ml.attrition import AttritionModel
from hr_ml.runs import sha256_file
from hr_ml.attrition import model_sha256
from hr_ml.score import domain
from hr_ml.schema import HRDataError

TINY = ["--employees", "600", "--tenants", "6", "-p", "n_splits=3", "-p", "model_kind=xgboost", "-p", "n_boot=20", "-p", "shap_rows=300",
        "-p", "model_params={n_estimators: 60, max_depth: 3}", "--no-progress"]


def hr_ml(*args, cwd=None, env=None):
    """`hr-ml ARGS` in this process (tests/conftest.py); the real-process path of train, promote, models and score is kept
    by tests/test_journey.py, and the crash-safety tests below kill real processes."""
    return hr_ml_inprocess(*args, cwd=cwd, env=env)


def with_gates(src: Path, name: str, fail: tuple = (), drop: bool = False) -> Path:
    "Copy run folder `src` as `name` with every gate passing except those named in `fail` (or no gates at all)."
    d = Path(shutil.copytree(src, src.parent / name))
    m = json.loads((d / "metrics.json").read_text())
    gates = m.get("gates") or [dict(name="roc_auc", value=0.74, op=">=", threshold=0.65, passed=True, blocking=True),
                               dict(name="ece", value=0.02, op="<=", threshold=0.05, passed=True, blocking=True)]
    gates = [{**g, "passed": True} for g in gates if g["name"] not in fail]
    gates += [dict(name=f, value=0.58, op=">=", threshold=0.65, passed=False, blocking=True) for f in fail]
    if drop: m.pop("gates", None); m.pop("gates_passed", None)
    else: m.update(gates=gates, gates_passed=not fail)
    (d / "metrics.json").write_text(json.dumps(m))
    man = json.loads((d / "manifest.json").read_text())
    man["run_id"], man["files"]["metrics.json"] = name, sha256_file(d / "metrics.json")
    (d / "manifest.json").write_text(json.dumps(man))
    return d


def sample_X(model: AttritionModel, n=300, seed=0) -> pl.DataFrame:
    "Employees with plausible-looking values for every feature the model uses."
    rng = np.random.default_rng(seed)
    cols = {}
    for f, t in zip(model.feature_names_, model.feature_types_):
        cols[f] = rng.choice(model.categories_[f], n) if t == "c" else np.clip(rng.gamma(2.0, 1.0, n), *domain(f))  # within what the feature can be
    return pl.DataFrame(cols)


def store_uri(root: Path) -> str:
    return f"sqlite:///{root.resolve()}/mlflow.db"


def client(uri):
    import mlflow
    return mlflow.MlflowClient(uri)


def all_runs(uri):
    c = client(uri)
    exps = [e.experiment_id for e in c.search_experiments()]
    return sorted((r.info.run_id, r.info.status, r.info.lifecycle_stage) for r in c.search_runs(exps, run_view_type=3)) if exps else []


def snapshot(uri):
    from hr_ml.registry import list_models
    ms = list_models(tracking_uri=uri)
    return [(m["version"], m["aliases"], m["sha256"]) for m in ms], all_runs(uri)


# ---------------------------------------------------------------- one tiny training run, tracked
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("registry")
    out, uri = base / "runs", store_uri(base / "mlruns")
    env = {**os.environ, "HR_ML_TRACKING_URI": uri}
    r = hr_ml("train", "attrition", *TINY, "--out", out, env=env, cwd=base)
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = sorted((out / "attrition").iterdir())
    line = [l for l in r.stdout.splitlines() if l.startswith("MLflow run id:")]
    assert line, r.stdout
    return dict(base=base, out=out, uri=uri, run=run, mlflow_id=line[0].split()[3], env=env)


def test_train_logs_the_run(trained):
    from hr_ml.registry import log_run
    run, uri = trained["run"], trained["uri"]
    before = {f.name: sha256_file(f) for f in run.iterdir()}
    assert log_run(run, uri) == trained["mlflow_id"]  # idempotent: same MLflow run, nothing logged twice
    assert {f.name: sha256_file(f) for f in run.iterdir()} == before  # the run folder is never modified
    r = client(uri).get_run(trained["mlflow_id"])
    m, man = json.loads((run / "metrics.json").read_text()), json.loads((run / "manifest.json").read_text())
    t = r.data.tags
    assert t["hr_ml.run_id"] == run.name and t["hr_ml.logged"] == "complete"
    assert t["hr_ml.model_sha256"] == man["model_sha256"] == model_sha256(run)  # one SHA over model.json and model.ubj
    assert t["hr_ml.lock_sha256"] == man["lock_sha256"] and t["hr_ml.git_commit"] == man["git_commit"]
    assert t["hr_ml.chosen_model"] == "xgboost" and t["hr_ml.model_uri"].startswith("models:/")
    assert r.data.params["n_splits"] == "3" and r.data.params["model_params.n_estimators"] == "60"
    from hr_ml.gates import load_policy
    assert m["policy"] == load_policy()  # no policy given: the defaults are recorded (the strict-policy run is in test_governance)
    assert r.data.metrics["cv.xgboost.mean.roc_auc"] == pytest.approx(m["cv"]["xgboost"]["mean"]["roc_auc"])
    for g in m.get("gates") or []:
        if isinstance(g.get("value"), (int, float)): assert r.data.metrics[f"gate.{g['name']}"] == pytest.approx(g["value"])
    arts = {a.path for a in client(uri).list_artifacts(r.info.run_id, "run")}
    assert {"run/model.ubj", "run/model.json", "run/metrics.json", "run/manifest.json", "run/params.yaml"} <= arts


# ---------------------------------------------------------------- promotion and loading by alias
@pytest.fixture(scope="module")
def champion(trained):
    from hr_ml.registry import promote
    run = trained["run"]
    good = run if json.loads((run / "metrics.json").read_text()).get("gates_passed") else with_gates(run, run.name + "-good")
    return good, promote(good, trained["uri"])


def test_good_run_promoted_and_loads_identically(trained, champion):
    import mlflow, xgboost as xgb
    from hr_ml.registry import load_champion, list_models
    good, p = champion
    assert p["alias"] == "champion" and p["previous"] is None
    m = load_champion(tracking_uri=trained["uri"])
    assert m.registry_["version"] == p["version"] and m.registry_["sha256"] == model_sha256(good)
    X = sample_X(m)
    np.testing.assert_array_equal(m.predict_proba(X), AttritionModel.load(good).predict_proba(X))
    # the MLflow xgboost flavor holds the same booster
    mv = client(trained["uri"]).get_model_version_by_alias("attrition", "champion")
    mlflow.set_tracking_uri(trained["uri"])
    b = mlflow.xgboost.load_model(mv.source)
    ref = xgb.Booster(); ref.load_model(good / "model.ubj")
    assert bytes(b.save_raw("ubj")) == bytes(ref.save_raw("ubj"))
    (v,) = [v for v in list_models(tracking_uri=trained["uri"]) if v["version"] == p["version"]]
    assert v["aliases"] == ["champion"] and v["gates_passed"] and v["run"] == good.name


def test_failing_gate_cannot_be_promoted(trained, champion):
    from hr_ml.cli import app
    uri = trained["uri"]
    before = snapshot(uri)[0]
    bad = with_gates(trained["run"], trained["run"].name + "-weak", fail=("roc_auc",))
    r = CliRunner().invoke(app, ["promote", str(bad), "--tracking-uri", uri])
    assert r.exit_code == 2, r.output
    msg = r.stderr.strip()
    lines = msg.splitlines()  # what failed, one line per failed blocking gate, then the ways forward
    assert "Traceback" not in r.output and lines[0].startswith("error: ") and "cannot be promoted" in lines[0], msg
    assert [l.strip() for l in lines if l.strip().startswith("roc_auc")] == ["roc_auc = 0.58 (needs >= 0.65) (not waivable)"], msg
    assert "no sign-off: roc_auc is not waivable" in lines[-1], msg
    nogates = with_gates(trained["run"], trained["run"].name + "-nogates", drop=True)
    r2 = CliRunner().invoke(app, ["promote", str(nogates), "--tracking-uri", uri])
    assert r2.exit_code == 2 and "no gates recorded" in r2.stderr and len(r2.stderr.strip().splitlines()) == 1, r2.output
    assert snapshot(uri)[0] == before  # no new version, champion where it was


def test_models_command_lists_versions_aliases_gates(trained, champion):
    from hr_ml.cli import app
    r = CliRunner().invoke(app, ["models", "--tracking-uri", trained["uri"]])
    assert r.exit_code == 0, r.output
    gates = json.loads((champion[0] / "metrics.json").read_text())["gates"]
    assert "champion" in r.stdout, r.stdout
    r2 = CliRunner().invoke(app, ["models", "--gates", "--tracking-uri", trained["uri"]])
    assert r2.exit_code == 0 and "roc_auc" in r2.stdout, r2.output
    block, adv = [g for g in gates if g.get("blocking", True)], [g for g in gates if not g.get("blocking", True)]
    count = f"blocking {sum(g['passed'] for g in block)}/{len(block)} passed" + (f", advisory {sum(g['passed'] for g in adv)}/{len(adv)} passed" if adv else "")
    assert f"version {champion[1]['version']}: gates: {count}" in r2.stdout, r2.stdout  # a failed advisory gate is not counted as passed
    assert str(champion[1]["version"]) in r.stdout and champion[1]["sha256"][:6] in r.stdout, r.stdout


def test_tampered_model_refused_on_load(trained, champion):
    import urllib.parse
    from hr_ml.registry import load_champion
    mv = client(trained["uri"]).get_model_version_by_alias("attrition", "champion")
    art = Path(urllib.parse.unquote(client(trained["uri"]).get_run(mv.run_id).info.artifact_uri.removeprefix("file://"))) / "run"
    orig = (art / "model.ubj").read_bytes()
    try:
        data = bytearray(orig); data[len(data) // 2] ^= 0x01  # one flipped bit
        (art / "model.ubj").write_bytes(bytes(data))
        with pytest.raises(HRDataError) as e: load_champion(tracking_uri=trained["uri"])
        msg = str(e.value)
        assert "SHA-256" in msg and "tampered" in msg and len(msg.splitlines()) == 1, msg
    finally:
        (art / "model.ubj").write_bytes(orig)
    assert load_champion(tracking_uri=trained["uri"]).registry_["version"] == champion[1]["version"]


# ---------------------------------------------------------------- crash safety
def _kill_group(p):
    try: os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError: pass
    p.wait(timeout=60)


def test_killed_training_leaves_registry_unchanged(trained, champion, tmp_path):
    uri = trained["uri"]
    before = snapshot(uri)
    out = tmp_path / "runs"
    p = subprocess.Popen([sys.executable, "-m", "hr_ml.cli", "train", "attrition", *TINY, "--out", str(out)],
                         env=trained["env"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)  # its own process group: the papermill kernel dies with it
    try:
        t0 = time.time()
        while not list(out.glob("attrition/.tmp-*")):  # wait until the job is under way
            assert p.poll() is None and time.time() - t0 < 180, "training ended before it could be killed"
            time.sleep(0.2)
        time.sleep(3)  # mid-job: the notebook is executing
        assert p.poll() is None
    finally:
        _kill_group(p)
    assert not [d for d in (out / "attrition").iterdir() if not d.name.startswith(".tmp-")]  # no complete run folder
    assert snapshot(uri) == before  # same versions, same champion, not a single MLflow run added


def test_killed_logger_leaves_registry_unchanged_and_is_redone(trained, champion):
    from hr_ml.registry import log_run, promote
    uri = trained["uri"]
    before = snapshot(uri)
    run = with_gates(trained["run"], trained["run"].name + "-killedlog")
    # the logger hangs right after the artifacts are written (as if slow), and is killed there
    code = ("import time, mlflow.xgboost as X, hr_ml.registry as R\n"
            "X.log_model = lambda *a, **k: time.sleep(600)\n"
            f"R.log_run({str(run)!r}, {uri!r})\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    c = client(uri)
    exp = c.get_experiment_by_name("attrition").experiment_id
    try:
        t0 = time.time()
        while True:
            rs = c.search_runs([exp], f"tags.`hr_ml.run_id` = '{run.name}'")
            if rs and any(a.path == "run" for a in c.list_artifacts(rs[0].info.run_id)) and \
               {a.path for a in c.list_artifacts(rs[0].info.run_id, "run")} >= {"run/model.ubj"}: break
            assert p.poll() is None and time.time() - t0 < 120, "logger ended before it could be killed"
            time.sleep(0.2)
    finally:
        _kill_group(p)
    (left,) = c.search_runs([exp], f"tags.`hr_ml.run_id` = '{run.name}'")
    assert left.info.status == "RUNNING" and "hr_ml.logged" not in left.data.tags
    assert snapshot(uri)[0] == before[0]  # registry and champion untouched
    rid = log_run(run, uri)  # logging again replaces the unfinished run
    assert rid != left.info.run_id and c.get_run(left.info.run_id).info.lifecycle_stage == "deleted"
    assert c.get_run(rid).data.tags["hr_ml.logged"] == "complete"
    res = promote(run, uri)
    assert res["mlflow_run_id"] == rid and res["previous"] == champion[1]["version"]


def test_score_with_champion_records_which_model(trained, champion):
    "hr-ml score --model champion scores with the registered version and writes its version and SHA-256 into the file."
    import pyarrow.parquet as pq
    from hr_ml.registry import load_champion
    m = load_champion(tracking_uri=trained["uri"])  # whichever version earlier tests left as champion
    X = sample_X(m, n=250, seed=3).with_columns(pl.Series("tenant_id", ["t1"] * 250), pl.Series("employee_id", [f"e{i}" for i in range(250)]))
    X.write_parquet(trained["base"] / "features.parquet")
    out = trained["base"] / "scores.parquet"
    r = hr_ml("score", "--model", "champion", "--data", trained["base"] / "features.parquet", "--out", out, "--no-progress",
              env=trained["env"], cwd=trained["base"])
    assert r.returncode == 0, r.stderr[-2000:]
    info = json.loads(pq.read_schema(out).metadata[b"hr_ml.model"])
    reg = m.registry_
    assert info["version"] == reg["version"] and info["alias"] == "champion" and info["sha256"] == reg["sha256"]
    s = pl.read_parquet(out)
    assert s["employee_id"].to_list() == X["employee_id"].to_list()
    np.testing.assert_allclose(s["risk"].to_numpy(), m.predict_risk(X))
    assert f"v{reg['version']} (champion)" in r.stdout and reg["sha256"][:12] in r.stdout, r.stdout
    r = hr_ml("score", "--model", "challenger", "--data", trained["base"] / "features.parquet", "--out", trained["base"] / "s2.parquet",
              "--no-progress", env=trained["env"], cwd=trained["base"])
    assert r.returncode == 2 and "no 'challenger' version" in r.stderr and "Traceback" not in r.stderr
    assert not (trained["base"] / "s2.parquet").exists()


def test_default_policy_gates_stored_whole(trained, champion):
    "The default policy's gates for a customer with more protected attributes (over 5,000 characters of JSON) survive promote, `models` and `list_models` uncut."
    from hr_ml.gates import load_policy
    from hr_ml.registry import list_models
    run = trained["run"]
    m = json.loads((run / "metrics.json").read_text())
    extra = [{**g, "name": g["name"].replace(".gender.", f".{att}."), "note": f"groups compared for {att}: 4; reference: the largest group"}
             for att in ("disability", "ethnicity", "religion") for g in m["gates"] if g["name"].startswith("fairness.gender.")]
    assert len(extra) == 3 * len([k for k, v in load_policy()["fairness"].items() if v is not None])
    d = with_gates(run, run.name + "-wide")
    mw = json.loads((d / "metrics.json").read_text())
    mw["gates"] += [{**g, "passed": True} for g in extra]
    (d / "metrics.json").write_text(json.dumps(mw))
    man = json.loads((d / "manifest.json").read_text()); man["files"]["metrics.json"] = sha256_file(d / "metrics.json")
    (d / "manifest.json").write_text(json.dumps(man))
    assert len(json.dumps(mw["gates"], separators=(",", ":"))) > 5000
    r = hr_ml("promote", d, "--tracking-uri", trained["uri"], env=trained["env"])
    assert r.returncode == 0, r.stderr
    r = hr_ml("models", "--gates", "--tracking-uri", trained["uri"], env=trained["env"])
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert all(g["name"] in r.stdout for g in mw["gates"]), r.stdout
    (v,) = [v for v in list_models(tracking_uri=trained["uri"]) if v["run"] == d.name]
    assert v["gates"] == mw["gates"]
    logged = client(trained["uri"]).get_run(v["mlflow_run_id"]).data.tags
    assert all(len(t) <= 5000 for t in logged.values())
