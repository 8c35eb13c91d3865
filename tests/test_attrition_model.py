"Contract tests for hr_ml.attrition: scikit-learn estimator rules, determinism, save/load, categoricals, errors, evaluation."
import hashlib, json, math, os, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from hr_ml.attrition import (AttritionModel, bucket_table, buckets, compare_models, cross_validate, metrics, risk_bucket)
from hr_ml.schema import HRDataError

FAST = dict(n_estimators=40, n_jobs=1)


def make_data(n=600, seed=0):
    "Small HR-like table with a logistic ground truth."
    rng = np.random.default_rng(seed)
    fam = rng.choice(["sales", "engineering", "operations", "hr"], n)
    compa = rng.normal(1.0, 0.12, n)
    overtime = rng.normal(0.05, 0.15, n)
    level = rng.integers(1, 6, n)
    logit = -1.5 + 5 * overtime - 6 * (compa - 1) + 0.8 * (fam == "sales")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    X = pl.DataFrame({"compa_ratio": compa, "overtime_ratio": overtime, "job_level": level.astype(np.int32), "job_family": fam})
    return X, y


@pytest.fixture(scope="module")
def data(): return make_data()


@pytest.fixture(scope="module")
def fitted(data): return AttritionModel(**FAST).fit(*data)


def sha(path): return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- scikit-learn estimator contract -------------------------------------------------------------

def test_init_stores_params_unchanged():
    mono, cats = {"overtime_ratio": 1}, ["job_family"]
    m = AttritionModel(monotone=mono, categorical=cats, random_state=7, calibration=None)
    assert m.monotone is mono and m.categorical is cats
    p = m.get_params()
    assert p["monotone"] is mono and p["random_state"] == 7 and p["calibration"] is None
    assert clone(m).get_params() == p
    assert m.set_params(max_depth=3) is m and m.max_depth == 3
    assert not [k for k in vars(m) if k.endswith("_")]          # nothing learned before fit


def test_defaults():
    p = AttritionModel().get_params()
    assert p == dict(kind="xgboost", n_estimators=400, max_depth=4, learning_rate=0.05, subsample=0.8, colsample_bytree=0.8,
                     min_child_weight=5, reg_lambda=1.0, early_stopping_rounds=30, inner_valid_frac=0.2, monotone=None,
                     calibration="sigmoid", categorical=None, allow_protected=False, protected=None, n_jobs=None, random_state=0)


def test_invalid_params_are_checked_in_fit_not_init(data):
    m = AttritionModel(kind="forest")                              # constructing never fails
    with pytest.raises(HRDataError, match="kind must be"): m.fit(*data)
    with pytest.raises(HRDataError, match="calibration must be"): AttritionModel(calibration="beta").fit(*data)


@pytest.mark.parametrize("kind", ["xgboost", "logistic"])
def test_fit_returns_self_and_learned_attributes_end_in_underscore(data, kind):
    m = AttritionModel(kind=kind, **FAST)
    before = set(vars(m))
    assert m.fit(*data) is m
    learned = set(vars(m)) - before
    assert learned and all(k.endswith("_") for k in learned)
    assert m.feature_names_ == data[0].columns and list(m.classes_) == [0, 1]
    P = m.predict_proba(data[0])
    assert P.shape == (len(data[1]), 2) and np.allclose(P.sum(1), 1) and ((P >= 0) & (P <= 1)).all()
    np.testing.assert_array_equal(P[:, 1], m.predict_risk(data[0]))


def test_not_fitted_raises(data, tmp_path):
    m = AttritionModel()
    for f in (m.predict_proba, m.predict_risk, m.predict):
        with pytest.raises(NotFittedError): f(data[0])
    with pytest.raises(NotFittedError): m.save(tmp_path)


def test_calibrator_is_plain_numbers(fitted):
    c = fitted.calibrator_
    assert c["method"] == "sigmoid" and isinstance(c["a"], float) and isinstance(c["b"], float)
    json.dumps(c)
    assert fitted.booster_.num_boosted_rounds() == fitted.best_iteration_ + 1


# --- determinism --------------------------------------------------------------------------------

def test_two_fits_give_identical_bytes(data, tmp_path):
    a = AttritionModel(**FAST).fit(*data).save(tmp_path / "a")
    b = AttritionModel(**FAST).fit(*data).save(tmp_path / "b")
    assert sha(a / "model.ubj") == sha(b / "model.ubj")
    assert sha(a / "model.json") == sha(b / "model.json")
    c = AttritionModel(**{**FAST, "random_state": 1}).fit(*data).save(tmp_path / "c")
    assert sha(a / "model.ubj") != sha(c / "model.ubj")           # randomness flows from random_state


_CHILD = textwrap.dedent("""
    import hashlib, sys, numpy as np
    sys.path.insert(0, sys.argv[1])
    from test_attrition_model import make_data, FAST
    from hr_ml.attrition import AttritionModel
    m = AttritionModel(**{**FAST, "n_jobs": 2}).fit(*make_data()).save(sys.argv[2])
    print(hashlib.sha256((m / "model.ubj").read_bytes()).hexdigest())
""")


def test_identical_bytes_in_a_separate_process(data, tmp_path):
    here = AttritionModel(**FAST).fit(*data).save(tmp_path / "here")
    out = subprocess.run([sys.executable, "-c", _CHILD, str(Path(__file__).parent), str(tmp_path / "there")],
                         capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == sha(here / "model.ubj")          # another process, another thread count
    a, b = (json.loads((d / "model.json").read_text()) for d in (here, tmp_path / "there"))
    assert a["params"].pop("n_jobs") == 1 and b["params"].pop("n_jobs") == 2
    assert a == b


# --- save / load --------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [dict(kind="xgboost"), dict(kind="xgboost", calibration="isotonic"),
                                    dict(kind="xgboost", calibration=None, early_stopping_rounds=None),
                                    dict(kind="logistic"), dict(kind="logistic", calibration="isotonic"),
                                    dict(kind="logistic", calibration=None)])
def test_save_load_roundtrip(data, tmp_path, params):
    X, y = data
    m = AttritionModel(**FAST, **params).fit(X, y)
    m.save(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == (["manifest.json", "model.json", "model.ubj"] if m.kind == "xgboost" else ["manifest.json", "model.json"])  # sealed: hashes of the model files
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["kind"] == m.kind and meta["versions"]["xgboost"] and meta["learned"]["feature_names_"] == X.columns
    m2 = AttritionModel.load(tmp_path)
    assert m2.get_params() == m.get_params() and m2.calibrator_ == m.calibrator_
    assert (m.calibrator_ is None) == (m.calibration is None)   # a calibration is fitted for both kinds, and only when asked for
    np.testing.assert_array_equal(m2.predict_risk(X), m.predict_risk(X))
    assert not any(p.suffix in (".pkl", ".pickle", ".joblib") for p in tmp_path.iterdir())


def test_load_detects_changed_model_file(fitted, tmp_path):
    fitted.save(tmp_path)
    (tmp_path / "model.ubj").write_bytes((tmp_path / "model.ubj").read_bytes() + b" ")
    with pytest.raises(HRDataError, match="does not match the SHA-256"): AttritionModel.load(tmp_path)
    with pytest.raises(HRDataError, match="no model.json"): AttritionModel.load(tmp_path / "nowhere")


# --- categoricals -------------------------------------------------------------------------------

def test_unseen_category_is_missing(fitted, data):
    X = data[0].head(4)
    assert fitted.categories_["job_family"] == ["engineering", "hr", "operations", "sales"]
    unseen = fitted.predict_risk(X.with_columns(job_family=pl.lit("legal")))
    null = fitted.predict_risk(X.with_columns(job_family=pl.lit(None, pl.String)))
    assert np.isfinite(unseen).all()
    np.testing.assert_array_equal(unseen, null)


def test_unseen_category_logistic(data):
    m = AttritionModel(kind="logistic").fit(*data)
    r = m.predict_risk(data[0].head(3).with_columns(job_family=pl.lit("legal")))
    assert np.isfinite(r).all()
    assert "job_family=sales" in m.design_names_ and len(m.coef_) == len(m.design_names_)


def test_numeric_column_declared_categorical(data):
    m = AttritionModel(categorical=["job_level"], **FAST).fit(*data)
    assert m.categories_["job_level"] == ["1", "2", "3", "4", "5"]
    assert m.feature_types_ == ["q", "q", "c", "c"]


def test_extra_columns_ignored_missing_column_refused(fitted, data):
    X = data[0].head(5)
    np.testing.assert_array_equal(fitted.predict_risk(X.with_columns(extra=pl.lit(1.0))), fitted.predict_risk(X))
    with pytest.raises(HRDataError, match="lacks feature column 'compa_ratio'"): fitted.predict_risk(X.drop("compa_ratio"))


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_logistic_calibration_is_fitted_and_used(data, method):
    "The logistic model fits the calibrator on its inner split, and predict_risk applies it (it used to be ignored)."
    X, y = data
    emp = np.repeat(np.arange(len(y) // 3), 3)
    m, raw = AttritionModel(kind="logistic", calibration=method).fit(X, y, groups=emp), AttritionModel(kind="logistic", calibration=None).fit(X, y)
    assert m.calibrator_["method"] == method and m.calibrator_["n"] % 3 == 0 and 0 < m.calibrator_["n"] < len(y)
    score = m.design(X) @ np.asarray(m.coef_) + m.intercept_
    np.testing.assert_allclose(m.predict_risk(X), m.risk_from_margin(score), rtol=0, atol=1e-12)
    if method == "sigmoid":
        np.testing.assert_allclose(m.predict_risk(X), 1 / (1 + np.exp(-(m.calibrator_["a"] * score + m.calibrator_["b"]))), rtol=1e-12)
    else:
        p = m.predict_risk(X)[np.argsort(score)]
        assert (np.diff(p) >= -1e-12).all() and not np.allclose(p, np.sort(raw.predict_risk(X)))   # monotone in the score, not the raw logistic
    np.testing.assert_allclose(raw.predict_risk(X), 1 / (1 + np.exp(-(raw.design(X) @ np.asarray(raw.coef_) + raw.intercept_))), rtol=1e-12)
    assert raw.calibrator_ is None
    assert m.coef_ == raw.coef_ and m.intercept_ == raw.intercept_   # refitted on every row: calibration moves the probabilities only


def test_groups_keep_employee_together_in_inner_split(data):
    emp = np.repeat(np.arange(len(data[1]) // 3), 3)
    m = AttritionModel(**FAST).fit(*data, groups=emp)
    assert m.calibrator_["n"] % 3 == 0                           # whole employees in the validation part


def test_monotone_constraint(data):
    m = AttritionModel(monotone={"overtime_ratio": 1}, **FAST).fit(*data)
    grid = pl.concat([data[0].head(1)] * 11).with_columns(overtime_ratio=pl.Series(np.linspace(-0.3, 0.5, 11)))
    assert (np.diff(m.predict_risk(grid)) >= -1e-12).all()
    with pytest.raises(HRDataError, match="categorical feature 'job_family'"): AttritionModel(monotone={"job_family": 1}).fit(*data)
    with pytest.raises(HRDataError, match="'tenure'"): AttritionModel(monotone={"tenure": 1}).fit(*data)


# --- error contract -----------------------------------------------------------------------------

@pytest.mark.parametrize("change, contains", [
    (lambda X, y: (X.with_columns(gender=pl.lit("female")), y), "'gender' is a protected attribute"),
    (lambda X, y: (X.with_columns(birth_year=pl.lit(1980)), y), "pass allow_protected=True only after a documented review"),
    (lambda X, y: (X.with_columns(prot_union=pl.lit("x")), y), "'prot_union' is a protected attribute"),
    (lambda X, y: (X, np.zeros(len(y))), "target has a single class (all 0)"),
    (lambda X, y: (X, np.ones(len(y))), "target has a single class (all 1)"),
    (lambda X, y: (X, y[:-1]), "X has 600 rows but the target has 599"),
    (lambda X, y: (X, np.where(y == 1, 2, 0)), "target must be 0/1"),
    (lambda X, y: (X.with_columns(bonus=pl.lit(None, pl.Float64)), y), "feature 'bonus' is empty"),
    (lambda X, y: (X.with_columns(bonus=pl.lit(float("nan"))), y), "feature 'bonus' is empty"),
    (lambda X, y: (X.with_columns(hired=pl.date(2020, 1, 1)), y), "feature 'hired' has dtype Date"),
    (lambda X, y: (X.head(15), y[:15]), "too few rows to fit"),
    (lambda X, y: (X, np.r_[np.ones(3), np.zeros(len(y) - 3)]), "need at least 20 rows and 5 of each class"),
    (lambda X, y: (X.with_columns(compa_ratio=pl.lit(float("inf"))), y), "'compa_ratio' has infinite values"),
])
def test_errors_are_one_line_hrdataerrors(data, change, contains):
    X, y = change(*data)
    with pytest.raises(HRDataError) as e: AttritionModel(**FAST).fit(X, y)
    assert contains in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, ValueError)


def test_protected_allowed_after_review(data):
    X, y = data
    m = AttritionModel(allow_protected=True, **FAST).fit(X.with_columns(gender=pl.lit("female")), y)
    assert "gender" in m.feature_names_
    m = AttritionModel(protected=["job_level"], **FAST)             # a custom protected list
    with pytest.raises(HRDataError, match="'job_level' is a protected"): m.fit(X, y)


def test_polars_series_target(data):
    X, y = data
    a = AttritionModel(**FAST).fit(X, pl.Series(y)).predict_risk(X)
    np.testing.assert_array_equal(a, AttritionModel(**FAST).fit(X, y).predict_risk(X))


# --- evaluation ---------------------------------------------------------------------------------

def test_metrics_known_values():
    m = metrics([0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.9])
    assert (m["roc_auc"], m["pr_auc"], m["n"], m["n_pos"], m["base_rate"]) == (1.0, 1.0, 5, 2, 0.4)
    assert m["precision_top10"] == 1.0 and m["lift_top10"] == 2.5
    assert math.isclose(m["brier"], (0.01 + 0.04 + 0.09 + 0.04 + 0.01) / 5)
    worst = metrics([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9])
    assert worst["roc_auc"] == 0.0
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.6, 20000)
    good = metrics((rng.random(20000) < p).astype(int), p)
    assert good["ece"] < 0.02 and abs(good["calibration_slope"] - 1) < 0.1 and abs(good["calibration_intercept"]) < 0.1
    one = metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(one["roc_auc"]) and one["brier"] > 0
    json.dumps(good)


def test_buckets():
    assert [risk_bucket(p) for p in (0.0, 0.1499, 0.15, 0.3499, 0.35, 1.0)] == ["Low", "Low", "Medium", "Medium", "High", "High"]
    assert buckets(np.array([0.05, 0.5]), cuts=(0.1, 0.4)).tolist() == ["Low", "High"]
    with pytest.raises(HRDataError, match="0 < low < high < 1"): buckets([0.1], cuts=(0.5, 0.2))


def test_bucket_table_suppresses_small_buckets():
    y = [0] * 8 + [1, 1, 0, 1]
    p = [0.05] * 8 + [0.2, 0.25, 0.9, 0.95]
    t = bucket_table(y, p)
    assert t["bucket"].to_list() == ["Low", "Medium", "High"]
    # 2 + 2 people hidden are fewer than k together, so the complementary Low bucket is hidden too (no subtraction from the total)
    assert t["n"].to_list() == [None, None, None]
    assert t["observed_rate"].to_list() == [None, None, None] and t["predicted_mean"][1] is None
    t = bucket_table(y, p, k=2)
    assert t["n"].to_list() == [8, 2, 2] and t["observed_rate"].to_list() == [0.0, 1.0, 0.5]


def test_cross_validate_keeps_duplicates_and_groups_in_one_fold():
    X, y = make_data(300, seed=3)
    X, y = pl.concat([X, X.head(60)]), np.r_[y, y[:60]]               # 60 exact duplicate rows
    dup = X.with_row_index("i").group_by(X.columns, maintain_order=True).agg(pl.col("i")).with_row_index("g").explode("i").sort("i")["g"].to_numpy()
    cv = cross_validate(AttritionModel(kind="logistic"), X, y, groups=dup, n_splits=4, n_repeats=2, seed=5)
    assert cv["grouped"] and len(cv["folds"]) == 8
    folds = pl.DataFrame({"g": dup, "f": cv["oof_fold"]}).group_by("g").agg(pl.col("f").n_unique())
    assert folds["f"].max() == 1 and (cv["oof_fold"] >= 0).all()
    assert set(cv["mean"]) == set(cv["std"]) == set(cv["summary"]) and " ± " in cv["summary"]["roc_auc"]
    again = cross_validate(AttritionModel(kind="logistic"), X, y, groups=dup, n_splits=4, n_repeats=2, seed=5)
    np.testing.assert_array_equal(again["oof"], cv["oof"])


def test_cross_validate_too_few_rows_for_folds():
    X, y = make_data(60)
    y = np.r_[np.ones(3), np.zeros(57)].astype(int)
    with pytest.raises(HRDataError, match="fewer rows than folds need: 3 exits for n_splits=5"):
        cross_validate(AttritionModel(), X, y)


def test_compare_models_chooses_and_explains():
    X, y = make_data(400, seed=1)
    r = compare_models(X, y, n_splits=3, n_repeats=1, params={"n_estimators": 30, "n_jobs": 1})
    auc = {k: r["cv"][k]["mean"]["roc_auc"] for k in ("xgboost", "logistic")}
    assert r["chosen"] in auc and r["reason"].startswith(f"{r['chosen']} chosen")
    if abs(auc["xgboost"] - auc["logistic"]) >= 1e-3: assert auc[r["chosen"]] == max(auc.values())
    assert "\n" not in r["reason"]
