"""The privacy gate (`hr_ml.privacy`) on every reader: a corpus of salted exports (the README's demo export and the
synthetic HRIS, salted with identifiers, protected synonyms, typos, duplicated headers and free text), each case with
its expected one-line error or note; the CLI for a handful; and a property test: no salted identifier reaches any
output file of a run."""
import json, os, re, sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hr_ml.io import read_hris, write_hris, load_mapping
from hr_ml.pay_equity import load_pay
from hr_ml.pipeline import load_dataset
from hr_ml.privacy import check_keys, find_identifier
from hr_ml.schema import HRDataError
from hr_ml.synth import generate
from hr_ml.tabular import demo_export, prepare_table, table_features, table_columns

sys.path.insert(0, str(Path(__file__).parent))
from conftest import hr_ml_inprocess                                 # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _salt():
    "The key for `hash:` in this module only (set at import time it would leak into other test files' runs)."
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HR_ML_SALT", "test-salt")
        yield


N = 150
FIRST = ["John", "Mary", "Anna", "Peter", "Maria", "James", "Laura", "David", "Sarah", "Thomas"]
LAST = ["Smith", "Weber", "Lopez", "Brown", "Schmidt", "Garcia", "Miller", "Fischer", "Jones", "Wagner", "Taylor", "Meyer",
        "Rossi", "Dubois", "Novak"]
NAMES = [f"{FIRST[i % 10]} {LAST[(i // 10) % 15]}" for i in range(N)]
SALTED = {   # column -> values: direct identifiers salted into exports
    "Email": [f"{n.lower().replace(' ', '.')}{i}@acme-corp.com" for i, n in enumerate(NAMES)],
    "Phone": [f"+49 30 {5550000 + 7 * i}" for i in range(N)],
    "USPhone": [f"({200 + i % 700}) 555-{1000 + i:04d}" for i in range(N)],
    "IBAN": [f"DE89 3704 0044 0532 {i:04d} 00" for i in range(N)],
    "SSN": [f"{100 + i}-{10 + i % 80:02d}-{1000 + 3 * i:04d}" for i in range(N)],
    "NINO": [f"AB {i % 90 + 10:02d} {i % 70 + 10:02d} {i % 50 + 10:02d} C" for i in range(N)],
    "SVNr": [f"65 {150380 + i:06d} M {100 + i:03d}" for i in range(N)],
    "SteuerID": [f"{10 + i % 80:02d} {100 + i:03d} {200 + i % 700:03d} {300 + i % 600:03d}" for i in range(N)],
    "EmployeeName": NAMES,
    "ManagerName": [f"{FIRST[i % 4]} {LAST[i % 4]}" for i in range(N)],
    "Person": [f"{LAST[(i // 10) % 15]}, {FIRST[i % 10]}" for i in range(N)],
}
BASE = {"id": "EmployeeNumber", "target": "Attrition", "positive": "Yes"}


def base(n=N) -> pl.DataFrame:
    "A small demo export without its leak traps, as a CSV is read: every cell text."
    return demo_export(n=n, seed=1, leaks=False, duplicates=0).cast(pl.String)


def salt(*cols):
    "Add salted identifier columns."
    def f(df):
        for c in cols: df = df.with_columns(pl.Series(c, SALTED[c][:df.height]))
        return df
    return f


def col(name, values):
    return lambda df: df.with_columns(pl.Series(name, (values * df.height)[:df.height] if isinstance(values, list) else values(df)))


def cell(column, row, value):
    "Set one cell (0-based row) of a text column."
    return lambda df: df.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(column)).alias(column))


def err(*words): return ("error", words)
def ok(check): return ("ok", check)


def moved(c):
    "`c` is not a feature, sits in the audit and a note says so."
    return lambda p: c not in p.X.columns and f"prot_{c}" in p.protected.columns and any(c in n and "protected" in n for n in p.notes)


def notin(*cs, note=None):
    return lambda p: not set(cs) & set(p.X.columns) and (note is None or any(note in n for n in p.notes))


gender = lambda df: df["Gender"]
CASES = {
    # ---- identifiers, by their values (the header says nothing about some)
    "email": (salt("Email"), {}, err("column 'Email', row 2: holds e-mail addresses", "drop:", "hash:")),
    "email_unnamed": (lambda df: df.with_columns(pl.Series("Contact", SALTED["Email"])), {}, err("column 'Contact', row 2: holds e-mail addresses")),
    "short_text_column": (col("Remarks", ["fine", "ok", "good"]), {}, ok(lambda p: "Remarks" in p.X.columns)),
    "email_in_one_cell": (lambda df: cell("Remarks", 5, "write to john.smith@acme-corp.com")(col("Remarks", ["fine", "ok", "good"])(df)),
                          {}, ok(lambda p: "Remarks" in p.X.columns)),   # an address inside text is not a cell that is an address
    "email_whole_cell": (lambda df: cell("Remarks", 5, "john.smith@acme-corp.com")(col("Remarks", ["fine", "ok", "good"])(df)),
                         {}, err("column 'Remarks', row 7: holds e-mail addresses")),
    "phone": (salt("Phone"), {}, err("column 'Phone', row 2: holds phone numbers")),
    "phone_us_unnamed": (lambda df: df.with_columns(pl.Series("Reach", SALTED["USPhone"])), {}, err("column 'Reach', row 2: holds phone numbers")),
    "iban": (salt("IBAN"), {}, err("column 'IBAN', row 2: holds IBANs")),
    "ssn": (salt("SSN"), {}, err("column 'SSN', row 2: holds US social security numbers")),
    "nino": (salt("NINO"), {}, err("column 'NINO', row 2: holds UK national insurance numbers")),
    "sv_number": (salt("SVNr"), {}, err("column 'SVNr', row 2: holds German social insurance numbers")),
    "tax_id": (salt("SteuerID"), {}, err("column 'SteuerID', row 2: holds German tax ids")),
    "employee_name": (salt("EmployeeName"), {}, err("column 'EmployeeName', row 2: holds person names")),
    "manager_name": (salt("ManagerName"), {}, err("column 'ManagerName', row 2: holds person names")),
    "name_last_first": (salt("Person"), {}, err("column 'Person', row 2: holds person names")),
    "first_name_by_header": (col("FirstName", FIRST), {}, err("column 'FirstName'", "named like one")),
    "id_is_email": (salt("Email"), {"id": "Email"}, err("column 'Email', row 2: holds e-mail addresses")),
    "job_titles_not_names": (col("Title", ["Sales Executive", "Research Scientist", "Laboratory Technician"]), {},
                             ok(lambda p: "Title" in p.X.columns)),
    "dates_not_phones": (col("ReviewDate", [f"2023-0{m}-1{m}" for m in range(1, 10)]), {}, ok(lambda p: "ReviewDate" in p.X.columns)),
    # ---- dropped or hashed: accepted, never a feature, with a note
    "email_dropped": (salt("Email"), {"drop": ["Email"]}, ok(notin("Email", note="dropped as the mapping asks: Email"))),
    "email_hashed": (salt("Email"), {"hash": ["Email"]}, ok(notin("Email", note="hashed as the mapping asks"))),
    "names_hashed": (salt("EmployeeName", "ManagerName"), {"hash": ["EmployeeName", "ManagerName"]},
                     ok(notin("EmployeeName", "ManagerName", note="EmployeeName, ManagerName"))),
    "id_hashed": (salt("Email"), {"id": "Email", "hash": ["Email"]},
                  ok(lambda p: p.ids.str.contains("@").sum() == 0 and p.ids.str.len_chars().unique().to_list() == [16])),
    "hash_typo_column": (salt("Email"), {"hash": ["E-mail"]}, err("column 'E-mail': named under `hash`")),
    "phone_and_iban_dropped": (salt("Phone", "IBAN"), {"drop": ["Phone", "IBAN"]}, ok(notin("Phone", "IBAN"))),
    # ---- free text: never a feature
    "free_text": (col("Comment", lambda df: [f"talked about role {i % 100}" for i in range(df.height)]), {},
                  ok(notin("Comment", note="dropped free-text columns"))),
    "free_text_kept_anyway": (col("Comment", lambda df: [f"talked about role {i % 100}" for i in range(df.height)]), {"keep": ["Comment"]},
                              ok(notin("Comment", note="free-text"))),
    "category_stays": (col("Site", ["Berlin", "Munich", "Hamburg"]), {}, ok(lambda p: "Site" in p.X.columns)),
    # ---- unknown mapping keys, with a did-you-mean
    "typo_target": (None, {"targte": "Attrition"}, err("unknown mapping key 'targte'; did you mean 'target'?")),
    "typo_positive": (None, {"postive": "Yes"}, err("unknown mapping key 'postive'; did you mean 'positive'?")),
    "typo_protected": (None, {"protcted": ["Age"]}, err("did you mean 'protected'?")),
    "typo_hash": (None, {"hashh": ["Email"]}, err("did you mean 'hash'?")),
    "typo_actionable": (None, {"actionabel": ["OverTime"]}, err("did you mean 'actionable'?")),
    "typo_pay_equity": (None, {"pay_equity": {"gendr": "Gender"}}, err("unknown mapping key 'pay_equity.gendr'; did you mean 'pay_equity.gender'?")),
    "unknown_key": (None, {"colour": "blue"}, err("unknown mapping key 'colour'", "Known keys")),
    "hris_key_in_row_mapping": (None, {"columns": {"EmpNo": "employee_id"}}, err("`columns` describes an HRIS export")),
    # ---- protected attributes, by meaning: moved to the audit with a note
    **{f"protected_{c}": (col(c, v), {}, ok(moved(c))) for c, v in {
        "GenderID": lambda df: (df["Gender"] == "Female").cast(pl.Int8).cast(pl.String), "Sex": gender,
        "SexCode": lambda df: df["Gender"].str.slice(0, 1), "RaceDesc": ["White", "Black or African American", "Asian"],
        "Ethnicity": ["A", "B", "C", "D"], "HispanicLatino": ["Yes", "yes", "No", "no"], "CitizenDesc": ["US Citizen", "Eligible NonCitizen"],
        "Nationality": ["DE", "FR", "IT"], "MaritalDesc": ["Married", "Single"], "MaritalStatusID": ["0", "1", "2"], "MarriedID": ["0", "1"],
        "Disability": ["No", "No", "Yes"], "Religion": ["none", "catholic", "protestant"], "DOB": ["1980-05-01", "1995-11-30", "1970-02-14"],
        "BirthYear": ["1980", "1995", "1970", "1988"], "date_of_birth": ["01.05.1980", "30.11.1995"], "Age Group": ["<30", "30-39", "40+"],
    }.items()},
    "duplicated_age_header": (lambda df: df.with_columns(pl.col("Age").alias("Age_duplicated_0")), {}, ok(moved("Age_duplicated_0"))),
    "audit_values_casefolded": (col("HispanicLatino", ["Yes", "yes ", "No", "no"]), {},
                                ok(lambda p: set(p.protected["prot_HispanicLatino"].drop_nulls()) == {"yes", "no"})),
    "birth_date_banded": (col("DOB", ["1980-05-01", "1995-11-30", "1970-02-14", "1962-07-01"]), {},
                          ok(lambda p: set(p.protected["prot_DOB"]) <= {"<30", "30-39", "40-49", "50+"} and any("age bands" in n for n in p.notes))),
    "code_kept_as_label": (col("GenderID", lambda df: (df["Gender"] == "Female").cast(pl.Int8).cast(pl.String)), {},
                           ok(lambda p: set(p.protected["prot_GenderID"]) == {"0", "1"})),
    "protected_keep_needs_opt_in": (col("Sex", gender), {"keep": ["Sex"]}, err("column 'Sex': is a protected attribute but `keep`")),
    "protected_keep_opt_in": (col("Sex", gender), {"keep": ["Sex"], "allow_protected": True}, ok(lambda p: "Sex" in p.X.columns)),
    # ---- proxies of a protected attribute
    "proxy_excluded": (col("Salutation", lambda df: (df["Gender"] == "Female").replace_strict({True: "Ms", False: "Mr"}, return_dtype=pl.String)),
                       {}, ok(notin("Salutation", note="excluded Salutation: a proxy of the protected attribute Gender"))),
    "proxy_kept": (col("Salutation", lambda df: (df["Gender"] == "Female").replace_strict({True: "Ms", False: "Mr"}, return_dtype=pl.String)),
                   {"keep": ["Salutation"]}, ok(lambda p: "Salutation" in p.X.columns and any("kept Salutation" in n for n in p.notes))),
    # ---- strict values
    "text_cell_in_numbers": (cell("MonthlyIncome", 4, "ask HR"), {}, err("column 'MonthlyIncome', row 6: 'ask HR' is not a number")),
    "mostly_text_is_category": (col("Band", ["A", "B", "C", "1"]), {}, ok(lambda p: p.X["Band"].dtype == pl.String)),
    "constant_id": (col("EmployeeNumber", ["7"]), {}, err("column 'EmployeeNumber'", "same value in every row")),
    "target_maybe": (cell("Attrition", 9, "Maybe"), {}, err("column 'Attrition', row 11: 'Maybe' is not yes or no")),
    "target_maybe_no_positive": (cell("Attrition", 9, "Maybe"), {"positive": None}, err("row 11: 'Maybe' is not yes or no")),
    "target_negative_listed": (lambda df: df.with_columns(pl.col("Attrition").replace({"Yes": "Left", "No": "Active"})),
                               {"positive": "Left", "negative": ["Active"]}, ok(lambda p: 0 < p.y.sum() < len(p.y))),
    "target_unknown_with_negative": (lambda df: cell("Attrition", 3, "On leave")(df.with_columns(pl.col("Attrition").replace({"Yes": "Left", "No": "Active"}))),
                                     {"positive": "Left", "negative": ["Active"]}, err("row 5: 'On leave' is not 'Left' (left) or one of 'Active'")),
}


@pytest.fixture(scope="module")
def demo(): return base()


def _identifier_values():
    return [v for vs in SALTED.values() for v in vs]


@pytest.mark.parametrize("case", list(CASES))
def test_one_row_corpus(demo, case):
    change, extra, (kind, what) = CASES[case]
    df = change(demo) if change else demo
    m = {k: v for k, v in {**BASE, **extra}.items() if v is not None}
    if kind == "error":
        with pytest.raises(HRDataError) as e: prepare_table(df, m, source="export.csv", n_splits=3)
        msg = str(e.value)
        assert "\n" not in msg
        for w in what: assert w in msg, (w, msg)
        assert not any(v in msg for v in _identifier_values()), msg   # never the value itself
    else:
        p = prepare_table(df, m, source="export.csv", n_splits=3)
        assert what(p), p.notes


def test_corpus_is_large_enough():
    assert len(CASES) + len(HRIS_CASES) + len(OTHER_PATHS) >= 50


# ---------------------------------------------------------------- the HRIS reader (validate, train, pay equity, score, monitor)
@pytest.fixture(scope="module")
def hris(tmp_path_factory):
    d = tmp_path_factory.mktemp("hris")
    tables, _ = generate(n_employees=200, n_tenants=2, seed=3)
    write_hris(tables, d / "clean")
    return d, tables


def _employees_csv(d, tables, extra: dict):
    e = tables["employees"]
    for c, v in extra.items(): e = e.with_columns(pl.Series(c, (v * e.height)[:e.height]))
    f = d / "employees.csv"
    e.write_csv(f)
    return f


HRIS_CASES = {
    "hris_email": ({"Contact": SALTED["Email"]}, {}, "column 'Contact', row 2: holds e-mail addresses"),
    "hris_manager_name": ({"Manager Name": SALTED["ManagerName"]}, {}, "column 'Manager Name', row 2: holds person names"),
    "hris_iban": ({"Bank": SALTED["IBAN"]}, {}, "column 'Bank', row 2: holds IBANs"),
    "hris_ssn": ({"Ref": SALTED["SSN"]}, {}, "holds US social security numbers"),
    "hris_dropped": ({"Contact": SALTED["Email"]}, {"drop": ["Contact"]}, None),
    "hris_hashed": ({"Contact": SALTED["Email"]}, {"hash": ["Contact"]}, None),
    "hris_typo": ({}, {"date_fromat": "%Y-%m-%d"}, "unknown mapping key 'date_fromat'; did you mean 'date_format'?"),
    "hris_typo_target": ({}, {"targte": "x"}, "did you mean 'target'?"),
}


@pytest.mark.parametrize("case", list(HRIS_CASES))
def test_hris_corpus(hris, tmp_path, case):
    extra, m, expect = HRIS_CASES[case]
    f = _employees_csv(tmp_path, hris[1], extra)
    if expect:
        with pytest.raises(HRDataError, match=re.escape(expect)) as e: read_hris(f, m)
        assert not any(v in str(e.value) for v in _identifier_values())
    else:
        e = read_hris(f, m)["employees"]
        if "Contact" in e.columns: assert e["Contact"].str.contains("@").sum() == 0


# ---------------------------------------------------------------- score, serve and pay equity
@pytest.fixture(scope="module")
def recipe(demo):
    return prepare_table(demo, {**BASE, "hash": ["EmployeeNumber"]}, source="export.csv", n_splits=3).recipe


def _score_email(recipe, demo):
    df = demo.with_columns(pl.Series("Department", SALTED["Email"]))
    with pytest.raises(HRDataError, match="column 'Department', row 2: holds e-mail addresses"): table_features(df, recipe)


def _score_hashes_id(recipe, demo):
    _, ids = table_features(demo, recipe)
    assert ids.str.len_chars().unique().to_list() == [16] and not set(ids) & set(demo["EmployeeNumber"])


def _score_typo(recipe, demo):
    with pytest.raises(HRDataError, match="did you mean 'tenant'"): table_features(demo, recipe, mapping={"tenannt": "ACME"})


def _serve_email(recipe, demo):
    cols = {c: demo[c].head(2).to_list() for c in recipe["columns"]}
    cols["JobRole"] = ["anna.weber@acme-corp.com", "Manager"]
    with pytest.raises(HRDataError, match="request, column 'JobRole', record 1: holds e-mail addresses"): table_columns(cols, recipe)


def _pay_equity_email(recipe, demo, tmp_path):
    demo.with_columns(pl.Series("Email", SALTED["Email"])).write_csv(tmp_path / "export.csv")
    with pytest.raises(HRDataError, match="column 'Email', row 2: holds e-mail addresses"): load_pay(tmp_path / "export.csv", BASE)
    pay = load_pay(tmp_path / "export.csv", {**BASE, "hash": ["Email", "EmployeeNumber"]})
    assert pay.pay["employee_id"].str.len_chars().unique().to_list() == [16]
    assert any("hashed" in n for n in pay.notes)


def _pay_equity_typo(recipe, demo, tmp_path):
    demo.write_csv(tmp_path / "export.csv")
    with pytest.raises(HRDataError, match="did you mean 'pay_equity.period'"):
        load_pay(tmp_path / "export.csv", {**BASE, "pay_equity": {"gender": "Gender", "perod": "monthly"}})


def _load_dataset_typo(recipe, demo, tmp_path):
    demo.write_csv(tmp_path / "export.csv")
    (tmp_path / "m.yaml").write_text("targte: Attrition\npositive: 'Yes'\n")
    with pytest.raises(HRDataError, match="unknown mapping key 'targte'; did you mean 'target'"): load_dataset(tmp_path / "export.csv", tmp_path / "m.yaml")


OTHER_PATHS = {"score_email": _score_email, "score_hashes_id": _score_hashes_id, "score_typo": _score_typo, "serve_email": _serve_email,
               "pay_equity_email": _pay_equity_email, "pay_equity_typo": _pay_equity_typo, "load_dataset_typo": _load_dataset_typo}


@pytest.mark.parametrize("case", list(OTHER_PATHS))
def test_other_paths(recipe, demo, tmp_path, case):
    f = OTHER_PATHS[case]
    f(recipe, demo, tmp_path) if f.__code__.co_argcount == 3 else f(recipe, demo)


def test_identifier_detection_has_no_false_positives_on_clean_data(demo, hris):
    for c in demo.columns: assert find_identifier(demo[c]) is None, c
    for t, df in hris[1].items():
        for c in df.columns: assert find_identifier(df[c].cast(pl.String)) is None, (t, c)


# ---------------------------------------------------------------- the CLI: exit 2, one line, no traceback, no run folder
def hr_ml(*args, cwd=None):
    "`hr-ml ARGS` in this process (the command's real process is kept by test_journey), with the key for `hash:`; jobs still run in a kernel."
    return hr_ml_inprocess(*args, cwd=cwd, env={**os.environ, "HR_ML_SALT": "test-salt"})


def assert_refused(r, out, *words):
    msg = (r.stderr or "").strip()
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout and len(msg.splitlines()) == 1, msg
    for w in words: assert w in msg, (w, msg)
    assert not any(v in msg for v in _identifier_values())
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], list(out.rglob("*"))


MAPPING = "id: EmployeeNumber\ntarget: Attrition\npositive: 'Yes'\nprotected: [Age, Gender, MaritalStatus]\n"
TINY = ["-p", "n_splits=3", "-p", "n_repeats=1", "-p", "model_params={n_estimators: 30, max_depth: 3}", "--no-progress", "--no-track"]


def test_cli_validate_refuses_identifier(hris, tmp_path):
    f = _employees_csv(tmp_path, hris[1], {"Contact": SALTED["Email"]})
    assert_refused(hr_ml("validate", "--data", f), tmp_path / "none", "holds e-mail addresses", "drop:")


@pytest.mark.parametrize("what", ["email", "typo"])
def test_cli_train_refuses(demo, tmp_path, what):
    data = demo.with_columns(pl.Series("Email", SALTED["Email"])) if what == "email" else demo
    data.write_csv(tmp_path / "export.csv")
    (tmp_path / "m.yaml").write_text(MAPPING.replace("target:", "targte:") if what == "typo" else MAPPING)
    out = tmp_path / "runs"
    r = hr_ml("train", "attrition", "--data", tmp_path / "export.csv", "--mapping", tmp_path / "m.yaml", *TINY, "--out", out)
    assert_refused(r, out, *(["column 'Email', row 2: holds e-mail addresses"] if what == "email" else ["unknown mapping key 'targte'; did you mean 'target'?"]))


def test_cli_pay_equity_refuses_identifier(demo, tmp_path):
    demo.with_columns(pl.Series("Manager", SALTED["ManagerName"])).write_csv(tmp_path / "export.csv")
    (tmp_path / "m.yaml").write_text(MAPPING)
    out = tmp_path / "runs"
    assert_refused(hr_ml("report", "pay-equity", "--data", tmp_path / "export.csv", "--mapping", tmp_path / "m.yaml", "--no-progress", "--out", out),
                   out, "column 'Manager', row 2: holds person names")


# ---------------------------------------------------------------- property: no salted identifier in any output file
HASHED_DROPPED = "hash: [Email, ManagerName]\ndrop: [EmployeeName, Phone, IBAN]\n"


@pytest.fixture(scope="module")
def salted_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("salted")
    df = salt("Email", "ManagerName", "EmployeeName", "Phone", "IBAN")(base())
    df.write_csv(d / "export.csv")
    (d / "m.yaml").write_text(MAPPING + HASHED_DROPPED)
    r = hr_ml("train", "attrition", "--data", d / "export.csv", "--mapping", d / "m.yaml", *TINY, "--out", d / "runs")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (run,) = sorted((d / "runs" / "attrition").iterdir())
    return d, run, r.stdout


def _text_of(f: Path) -> str:
    if f.suffix == ".parquet":
        t = pl.read_parquet(f)
        return json.dumps(t.to_dicts() if t.width else [], default=str) + " ".join(t.columns)
    if f.suffix == ".json": return json.dumps(json.loads(f.read_text()))
    return f.read_bytes().decode("utf-8", errors="replace")


def _leaked(folder: Path) -> list:
    vals = [v for c in ("Email", "ManagerName", "EmployeeName", "Phone", "IBAN") for v in SALTED[c]]
    out = []
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = _text_of(f)
        out += [(f.name, v) for v in vals if v in text]
        if "@acme-corp.com" in text: out.append((f.name, "@acme-corp.com"))
    return out


def test_no_identifier_in_any_output(salted_run):
    d, run, stdout = salted_run
    names = {f.name for f in run.rglob("*") if f.is_file()}
    assert {"model.json", "metrics.json", "drivers.parquet", "executed.ipynb", "report.html"} <= names, names
    assert _leaked(run) == []
    assert not any(v in stdout for v in SALTED["Email"])
    m = json.loads((run / "metrics.json").read_text())
    assert not {"Email", "ManagerName", "EmployeeName", "Phone", "IBAN"} & set(m["features"])
    assert any("hashed as the mapping asks" in n for n in m["notes"])


def test_cli_score_refuses_identifier(salted_run, demo, tmp_path):
    d, run, _ = salted_run
    (tmp_path / "s").mkdir()
    demo.with_columns(pl.Series("JobRole", SALTED["EmployeeName"])).write_csv(tmp_path / "new.csv")
    assert_refused(hr_ml("score", "--model", run, "--data", tmp_path / "new.csv", "--out", tmp_path / "s" / "x.parquet", "--no-progress"),
                   tmp_path / "s", "column 'JobRole', row 2: holds person names")


# ---------------------------------------------------------------- monitor and serve: the same gate on their inputs and outputs
def test_cli_monitor_refuses_identifier(salted_run, demo, tmp_path):
    "A new export for monitoring with names in a business column: refused in one line, no monitor folder."
    d, run, _ = salted_run
    demo.with_columns(pl.Series("JobRole", SALTED["EmployeeName"])).write_csv(tmp_path / "new.csv")
    out = tmp_path / "mon"
    assert_refused(hr_ml("monitor", "--model", run, "--data", tmp_path / "new.csv", "-p", "n_boot=10", "--no-progress", "--out", out),
                   out, "column 'JobRole', row 2: holds person names")


def test_cli_monitor_salted_export_leaks_nothing(salted_run, tmp_path):
    "The salted training export monitored with the model's own mapping (hash/drop): no identifier in any file it writes."
    d, run, _ = salted_run
    out = tmp_path / "mon"
    r = hr_ml("monitor", "--model", run, "--data", d / "export.csv", "-p", "n_boot=10", "--no-progress", "--out", out)
    assert r.returncode in (0, 1), r.stdout[-3000:] + r.stderr[-3000:]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "monitor.json" for p in files) and _leaked(out) == []
    assert not any(v in r.stdout + r.stderr for c in ("Email", "ManagerName", "EmployeeName") for v in SALTED[c])


def test_api_refuses_identifier_and_logs_none(salted_run, demo, tmp_path):
    "The scoring API of the salted run: an e-mail address in a text feature is a 422 naming the field, and reaches no log."
    from fastapi.testclient import TestClient
    from hr_ml.serve import create_app, create_key, load_served_model
    d, run, _ = salted_run
    model = load_served_model(str(run))
    state = tmp_path / "state"
    kid, secret = create_key("ACME", state)
    client = TestClient(create_app(model, state))
    cols = model.recipe_["columns"]
    row = {c: (float(demo[c][0]) if k["kind"] == "number" else demo[c][0]) for c, k in cols.items() if c in demo.columns}
    email = SALTED["Email"][0]
    bad = {**row, "JobRole": email}
    r = client.post("/v1/tenants/ACME/attrition/scores", headers={"Authorization": f"Bearer {secret}"},
                    json={"employees": [{"employee_id": "E1", "features": bad}]})
    assert r.status_code == 422, r.text
    (err,) = r.json()["detail"]                                                      # FastAPI's 422 shape: one error, one line
    assert "\n" not in err["msg"] and "column 'JobRole', record 1: holds e-mail addresses" in err["msg"] and email not in r.text
    ok = client.post("/v1/tenants/ACME/attrition/scores", headers={"Authorization": f"Bearer {secret}"},
                     json={"employees": [{"employee_id": email, "features": row}]})      # an e-mail as the employee id
    logged = "".join(p.read_text() for p in (state / "audit").rglob("*") if p.is_file()) if (state / "audit").exists() else ""
    assert email not in logged
    if ok.status_code == 200: assert email not in json.dumps([e["drivers"] for e in ok.json()["employees"]])
