"Bring-your-own table: the error contract and the traps `prepare_table` must catch."
from datetime import date
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from hr_ml.schema import HRDataError
from hr_ml.tabular import demo_export, prepare_table, column_auc, find_leaks

MAP = dict(id="EmployeeNumber", target="Attrition", positive="Yes", protected=["Age", "Gender", "MaritalStatus"])


@pytest.fixture(scope="module")
def export(): return demo_export(n=400, seed=5, duplicates=6)


@pytest.fixture(scope="module")
def prep(export): return prepare_table(export, MAP, source="staff.csv")


# ---- the error contract: HRDataError, one line, names the file and the column
@pytest.mark.parametrize("change, mapping, kw, expect", [
    (None, {"target": "Left"}, {}, "column 'Left': target column not found"),
    ("one_class", {}, {}, "column 'Attrition': only one class"),
    (None, {"positive": "Gone"}, {}, "positive value 'Gone' not found (values seen: "),
    (None, {"drop": ["Salary"]}, {}, "column 'Salary': named under `drop` in the mapping but not in the file"),
    (None, {"protected": ["Ethnicity"]}, {}, "column 'Ethnicity': named under `protected`"),
    (None, {"id": "EmpID"}, {}, "column 'EmpID': named under `id`"),
    (None, {"keep": ["Notes"]}, {}, "column 'Notes': every value is empty but the mapping keeps it"),
    (None, {}, {"n_splits": 500}, "column 'Attrition': only"),
    (None, {"keep": ["Gender"]}, {}, "column 'Gender': is a protected attribute"),
    (None, {"target": "Department", "positive": None}, {}, "no `positive`"),
])
def test_errors(export, change, mapping, kw, expect):
    df = export.with_columns(Attrition=pl.lit("No")) if change == "one_class" else export
    with pytest.raises(HRDataError) as e: prepare_table(df, {**MAP, **mapping}, source="staff.csv", **kw)
    msg = str(e.value)
    assert expect in msg and msg.startswith("staff.csv") and "\n" not in msg
    assert isinstance(e.value, ValueError)


def test_min_rows_message(export):
    with pytest.raises(HRDataError, match=r"fewer than the 500 cross-validation folds need"):
        prepare_table(export, MAP, n_splits=500)


def test_positive_values_listed(export):
    with pytest.raises(HRDataError, match=r"values seen: (Yes, No|No, Yes)"): prepare_table(export, {**MAP, "positive": "Left"})


def test_allow_protected(export):
    p = prepare_table(export, {**MAP, "keep": ["Gender"]}, allow_protected=True)
    assert "Gender" in p.X.columns and "prot_Gender" in p.protected.columns


# ---- traps
def test_leaks_excluded(prep):
    flagged = {d["column"]: d for d in prep.leaks}
    assert set(flagged) == {"TerminationDate", "EmploymentStatus", "LastReviewDate"}
    assert all(d["action"] == "excluded" and d["auc"] >= .99 for d in flagged.values())
    assert not set(flagged) & set(prep.X.columns)
    assert sum("probable target leak" in n for n in prep.notes) == 3


def test_keep_honoured(export):
    p = prepare_table(export, {**MAP, "keep": ["TerminationDate"]})
    assert "TerminationDate" in p.X.columns and "EmploymentStatus" not in p.X.columns
    assert {d["column"]: d["action"] for d in p.leaks}["TerminationDate"] == "kept"
    assert any(n.startswith("kept TerminationDate") for n in p.notes)


def test_leak_threshold_from_mapping(export):
    p = prepare_table(export, {**MAP, "leak_auc": 1.01})
    assert {"TerminationDate", "EmploymentStatus", "LastReviewDate"} <= set(p.X.columns)


def test_duplicates_share_groups(export, prep):
    dup = export.is_duplicated().to_numpy()
    assert dup.sum() == 12
    assert len(np.unique(prep.groups)) == 400 and len(np.unique(prep.groups[dup])) == 6
    # every copy's group is the original's; non-copies are alone in their group
    for g in np.unique(prep.groups[dup]): assert (prep.groups == g).sum() == 2
    assert any("6 rows are exact copies" in n for n in prep.notes)


def test_constant_and_id_dropped(prep):
    assert not {"EmployeeCount", "Over18", "StandardHours", "Notes", "EmployeeNumber"} & set(prep.X.columns)
    assert any("EmployeeCount=1" in n and "StandardHours=80" in n for n in prep.notes)
    p = prepare_table(demo_export(n=400, seed=5, duplicates=6), {k: v for k, v in MAP.items() if k != "id"})
    assert "EmployeeNumber" not in p.X.columns and any("id-like" in n and "EmployeeNumber" in n for n in p.notes)


def test_no_protected_features(prep):
    assert not {"Age", "Gender", "MaritalStatus"} & set(prep.X.columns)
    assert prep.protected.columns == ["prot_Age", "prot_Gender", "prot_MaritalStatus"]
    p = prepare_table(demo_export(n=200, seed=1), dict(target="Attrition"))   # mapping forgot them
    assert not {"Age", "Gender", "MaritalStatus"} & set(p.X.columns) and p.protected.width == 3


def test_merely_predictive_not_flagged():
    g = np.random.default_rng(0)
    y = (g.random(1000) < .2).astype(int)
    X = pl.DataFrame({"PayGap": y + g.normal(0, 1.35, 1000),                       # AUC about 0.7
                      "Team": [f"T{i}" for i in g.integers(0, 400, 1000)],         # high cardinality, no signal
                      "Code": [f"C{i:04d}" for i in g.permutation(1000)]})         # unique per row
    aucs = {c: column_auc(X[c], y)[0] for c in X.columns}
    assert .65 < aucs["PayGap"] < .75 and aucs["Team"] < .6 and aucs["Code"] < .6
    assert find_leaks(X, y) == []


def test_clean_export_has_no_leaks():
    p = prepare_table(demo_export(n=600, seed=2, leaks=False, duplicates=0), MAP)
    assert p.leaks == [] and not any("leak" in n or "copies" in n for n in p.notes)
    assert {"OverTime", "MonthlyIncome", "YearsSinceLastPromotion", "JobSatisfaction"} <= set(p.X.columns)


def test_nonmonotone_status_code_flagged():
    g = np.random.default_rng(4)
    y = (g.random(500) < .3).astype(int)
    code = np.where(y == 1, g.choice([1, 3], 500), 2)   # 1 and 3 = left, 2 = active: rank AUC alone would miss it
    assert column_auc(pl.Series("StatusCode", code), y) == (1.0, "levels")


# ---- cleaning
def test_cleaning_and_types():
    df = pl.DataFrame({" Left ": ["yes", "No ", "YES", "no", None, "no"] * 10,
                       "Remote": ["True", "false", "FALSE", "true", "true", "false"] * 10,
                       "Band": [1, 2, 3, 1, 2, 3] * 10,
                       "Site": [" Berlin", "Paris ", "Berlin", "Rome", "Paris", "Rome"] * 10,
                       "Hired": ["01.03.2020", "15.07.2021", "30.06.2024", "01.01.2019", "01.03.2020", "02.02.2022"] * 10})
    p = prepare_table(df, {"target": "Left", "positive": True, "categorical": ["Band"], "values": {"Site": {"Rome": "Roma"}}},
                      n_splits=3)
    assert len(p.y) == 50 and p.y.sum() == 20 and any("dropped 10 rows with an empty Left" in n for n in p.notes)
    assert p.X["Remote"].dtype == pl.Int8 and p.X["Band"].dtype == pl.String
    assert sorted(p.X["Site"].unique()) == ["Berlin", "Paris", "Roma"]
    assert p.X["Hired"].dtype == pl.Int32 and p.X["Hired"].min() == 0 and p.X["Hired"].max() == (date(2024, 6, 30) - date(2019, 1, 1)).days
    assert p.ids[0] == "1"


def test_csv_round_trip(tmp_path, export):
    f = tmp_path / "export.csv"
    export.write_csv(f)
    for kw in (dict(try_parse_dates=False), dict(try_parse_dates=True), dict(infer_schema=False)):   # the last: all text
        p = prepare_table(pl.read_csv(f, **kw), MAP, source=f.name)
        assert {d["column"] for d in p.leaks if d["action"] == "excluded"} == {"TerminationDate", "EmploymentStatus", "LastReviewDate"}
        assert "HireDate" in p.X.columns and p.X["HireDate"].dtype == pl.Int32
        assert p.X["MonthlyIncome"].dtype == pl.Int64 and p.categorical == ["BusinessTravel", "Department", "EducationField", "JobRole"]
        assert not {"EmployeeCount", "EmployeeNumber", "Over18"} & set(p.X.columns) and len(np.unique(p.groups)) == 400


def test_deterministic():
    assert demo_export(n=100, seed=7).equals(demo_export(n=100, seed=7))
    assert not demo_export(n=100, seed=7).equals(demo_export(n=100, seed=8))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", None]), st.integers(0, 2)), min_size=12, max_size=40))
def test_groups_match_identical_rows(rows):
    n = len(rows)
    df = pl.DataFrame({"Left": ["Yes", "No"] * (n // 2) + ["No"] * (n % 2),
                       "Team": [r[0] for r in rows], "Band": [r[1] for r in rows], "Shift": [i % 3 for i in range(n)]})
    p = prepare_table(df, {"target": "Left", "leak_auc": 1.01}, n_splits=2)   # tiny tables: leak check off
    keys = list(zip(df["Left"], df["Team"], df["Band"], df["Shift"]))
    for i in range(n):
        for j in range(n): assert (p.groups[i] == p.groups[j]) == (keys[i] == keys[j])


# ---- new rows made the same way as the training rows (what scoring a one-row export relies on)
def test_recipe_rebuilds_training_features_from_any_reading(tmp_path, export):
    import json
    from hr_ml.tabular import table_features
    f = tmp_path / "export.csv"
    export.write_csv(f)
    p = prepare_table(pl.read_csv(f, infer_schema=False), MAP, source=f.name)
    recipe = json.loads(json.dumps(p.recipe))                 # plain JSON, as model.json stores it
    assert set(recipe["columns"]) == set(p.X.columns) and "salt" not in recipe["mapping"]
    for df in (pl.read_csv(f, infer_schema=False), pl.read_csv(f, try_parse_dates=True), export,
               export.drop("Attrition").with_columns(pl.col("HireDate").str.to_date())):   # text, typed, no target, real dates
        X, ids = table_features(df, recipe, source="new.csv")
        assert X.equals(p.X) and ids.to_list() == p.ids.to_list()


def test_recipe_keeps_categorical_values_and_date_format():
    from hr_ml.tabular import table_features
    g = np.random.default_rng(0)
    df = pl.DataFrame({"Left": g.choice(["yes", "no"], 80).tolist(), "Band": g.integers(1, 4, 80),
                       "Site": g.choice(["Berlin", "Paris", "Rome"], 80).tolist(),
                       "Hired": g.choice(["01.03.2020", "15.07.2021", "30.06.2024", "01.01.2019", "02.02.2022"], 80).tolist()})
    p = prepare_table(df, {"target": "Left", "categorical": ["Band"], "values": {"Site": {"Rome": "Roma"}}}, n_splits=3)
    assert not p.leaks
    assert p.recipe["columns"]["Band"] == {"kind": "category"} and p.recipe["columns"]["Hired"]["format"] == "%d.%m.%Y"
    new = pl.DataFrame({"Band": [2.0], "Site": [" Rome "], "Hired": ["30.06.2023"]})     # Parquet-like float, stray spaces
    X, ids = table_features(new, p.recipe, source="new.parquet")
    assert X.row(0) == ("2", "Roma", 366) and ids.to_list() == ["1"]
    with pytest.raises(HRDataError, match=r"new.parquet, column 'Hired', record 1: '2023-06-30' is not a date \(%d.%m.%Y\)"):
        table_features(new.with_columns(Hired=pl.lit("2023-06-30")), p.recipe, source="new.parquet")
