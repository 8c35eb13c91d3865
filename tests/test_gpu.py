"""`device="cuda"` (xgboost's GPUTreeShap) against the CPU TreeSHAP: the same values to float32 rounding, the same drivers.

The GPU tests run only where xgboost sees a CUDA device (on a GPU machine: `bash .gpu/check.sh`, or plain pytest); elsewhere
they are skipped, and what runs is the one-line refusal, and the GPU code path itself with xgboost's CPU standing in for
the GPU (so its plumbing — booster copy, DMatrix with names and types, categories, frames — is tested everywhere)."""
import json, subprocess, sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import xgboost as xgb

import hr_ml.treeshap as T
from hr_ml.schema import HRDataError
from hr_ml.treeshap import check_device, tree_shap

ROOT = Path(__file__).resolve().parent.parent


def _gpu_here():
    try: return check_device("cuda") == "cuda"
    except HRDataError: return False


GPU = _gpu_here()
gpu_only = pytest.mark.skipif(not GPU, reason="xgboost sees no CUDA device here")
no_gpu_only = pytest.mark.skipif(GPU, reason="this machine has a GPU")
TOL = 1e-4  # GPUTreeShap adds up in float32; expected max |cuda - cpu| is ~1e-6 to 1e-5 on values of order 1


def _device(b): return json.loads(b.save_config())["learner"]["generic_param"]["device"]


def _model(seed, n_trees, depth, n_cat=3, n_feat=12, nan_frac=0.1, objective="binary:logistic", n=3000):
    "A random xgboost model with categorical (partition) splits and missing values, and rows to explain."
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_feat)).astype(np.float32)
    for j in range(n_cat): X[:, j] = rng.integers(0, int(rng.integers(2, 12)), n)
    z = X[:, n_cat:] @ rng.normal(size=n_feat - n_cat) + np.sin(3 * X[:, 0]) + (X[:, 1] % 3 == 1) + rng.normal(size=n)
    X[rng.random(X.shape) < nan_frac] = np.nan
    y = (z > 0).astype(float) if objective == "binary:logistic" else np.nan_to_num(z) * 3
    types = ["c"] * n_cat + ["q"] * (n_feat - n_cat)
    dm = xgb.DMatrix(X, label=y, feature_types=types, enable_categorical=True)
    b = xgb.train({"objective": objective, "max_depth": depth, "eta": 0.2, "max_cat_to_onehot": 1, "nthread": 4,
                   "seed": seed, "subsample": 0.8}, dm, n_trees)
    return b, X, types


CASES = [  # (seed, trees, depth, categorical features, objective)
    (0, 10, 2, 3, "binary:logistic"), (1, 50, 4, 3, "binary:logistic"), (2, 100, 6, 2, "binary:logistic"),
    (3, 300, 4, 0, "binary:logistic"), (4, 40, 8, 3, "binary:logistic"), (5, 500, 6, 3, "binary:logistic"),
    (6, 60, 5, 2, "reg:squarederror"), (7, 200, 3, 1, "reg:squarederror"),
]


@gpu_only
@pytest.mark.parametrize("seed, n_trees, depth, n_cat, objective", CASES)
def test_cuda_equals_cpu(seed, n_trees, depth, n_cat, objective):
    b, X, _ = _model(seed, n_trees, depth, n_cat, objective=objective)
    cpu = tree_shap(b, X)
    gpu = tree_shap(b, X, device="cuda")
    assert gpu.shape == cpu.shape and gpu.dtype == np.float32
    diff = float(np.abs(gpu.astype(np.float64) - cpu).max())
    print(f"{n_trees} trees depth {depth}, {n_cat} categorical, {objective}: max |cuda - cpu| = {diff:.2e}")
    assert diff <= TOL * max(1.0, float(np.abs(cpu).max())), diff
    margin = b.predict(xgb.DMatrix(X, feature_types=b.feature_types, enable_categorical=True), output_margin=True)
    np.testing.assert_allclose(gpu.sum(1), margin, atol=1e-3 * max(1.0, float(np.abs(margin).max())), rtol=0)
    assert _device(b) == "cpu"  # the caller's booster stays on the CPU


@gpu_only
def test_cuda_frames_threads_and_out_of_scope_models():
    b, X, types = _model(11, 80, 5, 2)
    names = [f"f{i}" for i in range(X.shape[1])]
    b.feature_names = names
    df = pl.DataFrame(X, schema=names, orient="row").with_columns(pl.col(n).fill_nan(None) for n in names)
    cpu = tree_shap(b, df)
    gpu = tree_shap(b, df.select(reversed(names)), device="cuda", n_threads=2, dtype=np.float64)
    assert gpu.dtype == np.float64 and np.abs(gpu - cpu).max() <= TOL
    mc = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "nthread": 4},
                   xgb.DMatrix(X[:, 3:], label=np.nan_to_num(X[:, 0]) % 3), 5)
    with pytest.warns(UserWarning, match="out of scope"): cpu = tree_shap(mc, X[:500, 3:])
    gpu = tree_shap(mc, X[:500, 3:], device="cuda")
    assert gpu.shape == cpu.shape == (500, 3, X.shape[1] - 3 + 1) and np.abs(gpu - cpu).max() <= TOL


@gpu_only
def test_drivers_on_gpu_name_the_same_drivers():
    pytest.importorskip("sklearn"); pytest.importorskip("matplotlib")
    from datetime import date
    from hr_ml.attrition import AttritionModel
    from hr_ml.explain import contributions, drivers
    from hr_ml.features import FEATURES, build_features
    from hr_ml.synth import generate
    tables, _ = generate(n_employees=4000, n_tenants=10, seed=5)
    tr = build_features(tables, date(2024, 12, 31))
    m = AttritionModel(n_estimators=150, max_depth=5, early_stopping_rounds=None, n_jobs=4).fit(tr.select(FEATURES), tr["label"])
    cur = build_features(tables, date(2025, 12, 31)).select(FEATURES)
    phi_c, bias_c = contributions(m, cur)
    phi_g, bias_g = contributions(m, cur, device="cuda")
    assert np.abs(phi_g - phi_c).max() <= TOL and np.abs(bias_g - bias_c).max() <= TOL
    a, g = drivers(m, cur), drivers(m, cur, device="cuda")
    assert a["risk"].equals(g["risk"]) and a["bucket"].equals(g["bucket"])
    # the top drivers agree wherever their |SHAP| are not within float32 rounding of each other
    s = -np.sort(-np.abs(phi_c), axis=1)
    clear = np.all(np.diff(s[:, :4], axis=1) < -2 * TOL, axis=1)
    for j in (1, 2, 3):
        assert (a[f"driver_{j}"].to_numpy()[clear] == g[f"driver_{j}"].to_numpy()[clear]).all()
        assert a[f"driver_{j}_text"].filter(pl.Series(clear)).equals(g[f"driver_{j}_text"].filter(pl.Series(clear)))
    print(f"{int(clear.sum())} of {len(clear)} employees have clearly ranked drivers: all the same on the GPU")


@gpu_only
def test_score_cli_on_gpu(tmp_path):
    pytest.importorskip("sklearn"); pytest.importorskip("matplotlib")
    from datetime import date
    from hr_ml.attrition import AttritionModel
    from hr_ml.features import FEATURES, build_features
    from hr_ml.synth import generate
    tables, _ = generate(n_employees=2500, n_tenants=8, seed=11)
    tr = build_features(tables, date(2024, 12, 31))
    AttritionModel(n_estimators=40, max_depth=3, early_stopping_rounds=None, n_jobs=4).fit(tr.select(FEATURES), tr["label"]).save(tmp_path / "run")
    build_features(tables, date(2025, 12, 31)).write_parquet(tmp_path / "features.parquet")
    outs = {}
    for dev in ("cpu", "cuda"):
        r = subprocess.run([sys.executable, "-m", "hr_ml.cli", "score", "--model", str(tmp_path / "run"), "--data",
                            str(tmp_path / "features.parquet"), "--out", str(tmp_path / f"{dev}.parquet"), "--no-progress",
                            "--device", dev], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs[dev] = pl.read_parquet(tmp_path / f"{dev}.parquet")
    assert outs["cpu"]["risk"].equals(outs["cuda"]["risk"])
    assert np.abs(outs["cpu"]["driver_1_shap"].to_numpy() - outs["cuda"]["driver_1_shap"].to_numpy()).max() <= TOL


# --- everywhere --------------------------------------------------------------------------------------------------------

@no_gpu_only
def test_cuda_refused_in_one_line():
    b, X, _ = _model(0, 5, 2)
    with pytest.raises(HRDataError) as e: tree_shap(b, X, device="cuda")
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and "needs an xgboost built with CUDA and a visible NVIDIA GPU" in msg and "device='cpu'" in msg
    assert _device(b) == "cpu"


def test_unknown_device():
    b, X, _ = _model(0, 5, 2)
    for dev in ("gpu", "CUDA", "cuda:0", "", None):
        with pytest.raises(HRDataError, match="is not known; use 'cpu'"): tree_shap(b, X, device=dev)
        with pytest.raises(HRDataError, match="is not known"): check_device(dev)


def test_gpu_code_path_with_the_cpu_standing_in(monkeypatch):
    "The whole device='cuda' path, with xgboost's CPU pred_contribs in place of the GPU: same values as the CPU path."
    monkeypatch.setattr(T, "_cuda_problem", lambda: None)
    monkeypatch.setattr(T, "_set_cuda", lambda booster: None)  # the copy stays on the CPU
    monkeypatch.setattr(T, "_GPU", T.weakref.WeakKeyDictionary())
    b, X, _ = _model(3, 60, 5, 3)
    got = tree_shap(b, X, device="cuda")
    np.testing.assert_allclose(got, tree_shap(b, X), atol=1e-5, rtol=0)
    names = [f"f{i}" for i in range(X.shape[1])]
    b2 = xgb.train({"max_depth": 3, "nthread": 2}, xgb.DMatrix(X[:, 3:], label=np.nan_to_num(X[:, 4])), 5)
    df = pl.DataFrame(X[:, 3:], schema=names[3:], orient="row")
    b2.feature_names = names[3:]
    np.testing.assert_allclose(tree_shap(b2, df.select(reversed(names[3:])), device="cuda"), tree_shap(b2, df), atol=1e-5, rtol=0)
    with pytest.raises(HRDataError, match="expects 9 feature columns"): tree_shap(b2, X[:, :4], device="cuda")
    with pytest.raises(HRDataError, match="pass the booster"): tree_shap(T.TreeShapModel.from_booster(b2), X[:, 3:], device="cuda")
    b2.feature_names = [n.upper() for n in names[3:]]  # renamed: a fresh copy, matched by the new names
    np.testing.assert_allclose(tree_shap(b2, df.rename(str.upper), device="cuda"), tree_shap(b2, X[:, 3:]), atol=1e-5, rtol=0)
    assert len(T._GPU) == 2 and _device(b) == _device(b2) == "cpu"


@no_gpu_only
def test_bench_gpu_skips_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--smoke", "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 1 and "skipped, nothing written" in r.stdout
    assert not (tmp_path / "out").exists()
