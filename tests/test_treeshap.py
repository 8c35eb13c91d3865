"Exactness of hr_ml.treeshap against xgboost's own pred_contribs, over random models."
import warnings

import numba
import numpy as np
import polars as pl
import pytest
import xgboost as xgb
from hypothesis import HealthCheck, given, settings, strategies as st

from hr_ml.schema import HRDataError
from hr_ml.treeshap import TreeShapModel, num_threads, tree_shap


def _data(seed, n, n_feat, n_cat, nan_frac, objective):
    "Random features (the first `n_cat` categorical codes), NaNs, and a label that depends on them."
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_feat)).astype(np.float32)
    for j in range(n_cat): X[:, j] = rng.integers(0, int(rng.integers(2, 12)), n)
    score = X @ rng.normal(size=n_feat) + np.sin(3 * X[:, 0]) + rng.normal(size=n)
    X[rng.random(X.shape) < nan_frac] = np.nan
    y = (score > 0).astype(float) if objective == "binary:logistic" else np.where(np.isnan(score), 0, score) * rng.uniform(0.1, 3)
    return X, y, ["c"] * n_cat + ["q"] * (n_feat - n_cat)


def _tol(ref):
    "1e-5, loosened only in proportion to the size of the values (xgboost sums in float32)."
    return 1e-5 * max(1.0, float(np.abs(ref).max()))


def _check(booster, X, types, **kw):
    dm = xgb.DMatrix(X, feature_types=types, enable_categorical=True)
    ref = booster.predict(dm, pred_contribs=True)
    got = tree_shap(booster, X, **kw) if not isinstance(kw.get("model"), TreeShapModel) else tree_shap(kw["model"], X)
    assert got.shape == ref.shape
    diff = np.abs(got.astype(np.float64) - ref).max()
    assert diff <= _tol(ref), f"max |diff| {diff}"
    return got, ref


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), depth=st.integers(1, 8), n_feat=st.integers(1, 30), n_trees=st.integers(1, 50),
       cat=st.booleans(), nan_frac=st.sampled_from([0.0, 0.05, 0.3]),
       objective=st.sampled_from(["binary:logistic", "reg:squarederror"]),
       base_score=st.sampled_from([None, 0.2, 0.5, 0.9]), eta=st.sampled_from([0.05, 0.3, 1.0]))
def test_random_models_match_pred_contribs(seed, depth, n_feat, n_trees, cat, nan_frac, objective, base_score, eta):
    n_cat = min(n_feat, 1 + seed % 3) if cat else 0
    X, y, types = _data(seed, 300, n_feat, n_cat, nan_frac, objective)
    params = {"objective": objective, "max_depth": depth, "eta": eta, "nthread": 1, "max_cat_to_onehot": 1 + seed % 4,
              "min_child_weight": 0.5, "seed": seed % 1000}
    if base_score is not None: params["base_score"] = base_score if objective == "binary:logistic" else 3 * base_score - 1
    bst = xgb.train(params, xgb.DMatrix(X, label=y, feature_types=types, enable_categorical=True), n_trees)
    Xt, _, _ = _data(seed + 1, 200, n_feat, n_cat, nan_frac, objective)
    _check(bst, Xt, types, n_threads=1 + seed % 2)


def _cat_model(n_trees=5, depth=3, seed=0):
    X, y, types = _data(seed, 600, 4, 2, 0.1, "binary:logistic")
    bst = xgb.train({"objective": "binary:logistic", "max_depth": depth, "max_cat_to_onehot": 1, "nthread": 1},
                    xgb.DMatrix(X, label=y, feature_types=types, enable_categorical=True), n_trees)
    return bst, X, types


def test_categorical_edge_codes_and_missing():
    "Unseen, negative, fractional and huge category codes and NaNs route exactly as in xgboost."
    bst, X, types = _cat_model()
    X = X[:60].copy()
    X[:10, 0] = [-1, -0.5, 0.5, 1.7, 11, 12, 40, 1e9, np.nan, 3]
    X[10:20, 1] = [np.nan, -3, 100, 2.2, 0, 1, 2, 5, 6, 7]
    X[20:30, 2:] = np.nan
    _check(bst, X, types)


def test_native_categorical_from_pandas_and_polars():
    "A model trained on a pandas categorical explains a polars frame with string categories by their names."
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    n = 800
    lvl = rng.choice(["L1", "L2", "L3", "L4"], n)
    ten = rng.gamma(2, 2, n)
    y = ((lvl == "L2") + 0.2 * ten + rng.normal(size=n) > 1).astype(int)
    pdf = pd.DataFrame({"tenure": ten, "level": pd.Categorical(lvl)})
    bst = xgb.train({"objective": "binary:logistic", "max_depth": 3, "max_cat_to_onehot": 1, "nthread": 1},
                    xgb.DMatrix(pdf, label=y, enable_categorical=True), 10)
    ref = bst.predict(xgb.DMatrix(pdf, enable_categorical=True), pred_contribs=True)
    got = tree_shap(bst, pl.DataFrame({"level": lvl, "tenure": ten}))  # other column order, strings
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    got = tree_shap(bst, pl.DataFrame({"tenure": ten, "level": lvl}).with_columns(pl.col("level").cast(pl.Categorical)))
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("unit_nodes,max_bits", [(0, 12), (1, 12), (3, 12), (7, 14), (3, 2), (3, 0)])
def test_layouts_agree(unit_nodes, max_bits):
    "Every table layout, down to computing every leaf on the fly, gives the same values."
    bst, X, types = _cat_model(n_trees=8, depth=6, seed=1)
    m = TreeShapModel.from_booster(bst, unit_nodes=unit_nodes, max_bits=max_bits)
    _check(bst, X[:100], types, model=m)


def test_deep_lossguide_trees():
    "Trees deeper than the table limit (lossguide, many leaves) are still exact."
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2000, 20)).astype(np.float32)
    y = np.sin(X[:, :20].sum(1)) + 0.1 * rng.normal(size=2000)
    bst = xgb.train({"objective": "reg:squarederror", "grow_policy": "lossguide", "max_leaves": 200, "max_depth": 0,
                     "tree_method": "hist", "min_child_weight": 0, "nthread": 1}, xgb.DMatrix(X, label=y), 3)
    m = TreeShapModel.from_booster(bst)
    assert len(m.arrays["o_node"]) > 0  # some leaves too deep for a table
    _check(bst, X[:100], ["q"] * 20, model=m)


@pytest.mark.parametrize("objective", ["count:poisson", "reg:gamma", "reg:pseudohubererror", "reg:absoluteerror",
                                       "binary:logitraw", "reg:logistic"])
def test_other_objectives_bias(objective):
    "The bias column carries the base score on the margin scale for other objectives too."
    rng = np.random.default_rng(7)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    y = np.exp(0.3 * X[:, 0]) if objective in ("count:poisson", "reg:gamma") else (X[:, 0] > 0).astype(float)
    bst = xgb.train({"objective": objective, "max_depth": 3, "nthread": 1}, xgb.DMatrix(X, label=y), 5)
    _check(bst, X[:50], ["q"] * 3)


def test_out_of_scope_falls_back_once():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    models = [xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=y), 2),
              xgb.train({"booster": "gblinear", "objective": "reg:squarederror", "nthread": 1}, xgb.DMatrix(X, label=y), 2),
              xgb.train({"booster": "dart", "objective": "reg:squarederror", "rate_drop": 0.5, "nthread": 1}, xgb.DMatrix(X, label=y), 3)]
    for bst, word in zip(models, ["multi-class", "gblinear", "dart"]):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            a = tree_shap(bst, X[:20], n_threads=1); b = tree_shap(bst, X[:20])
        assert len(w) == 1 and word in str(w[0].message)
        np.testing.assert_array_equal(a, bst.predict(xgb.DMatrix(X[:20]), pred_contribs=True))
        np.testing.assert_array_equal(a, b)


def test_cache_threads_and_errors():
    bst, X, types = _cat_model()
    a = tree_shap(bst, X[:50], n_threads=1)
    from hr_ml.treeshap import _CACHE
    m = _CACHE[bst][1]
    before = numba.get_num_threads()
    b = tree_shap(bst, X[:50], n_threads=2, dtype=np.float64)
    assert _CACHE[bst][1] is m and numba.get_num_threads() == before
    assert b.dtype == np.float64
    np.testing.assert_allclose(a, b, atol=1e-6)
    with num_threads(1): assert numba.get_num_threads() == 1
    with pytest.raises(HRDataError, match="expects 4 feature columns"): tree_shap(bst, X[:5, :3])
    bst.update(xgb.DMatrix(X, label=(X[:, 2] > 0), feature_types=types, enable_categorical=True), 5)  # one more round
    _check(bst, X[:50], types)
    assert _CACHE[bst][1] is not m
