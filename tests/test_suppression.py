"""Small numbers are suppressed everywhere (`hr_ml.suppression`): k is checked where it enters, every aggregate of fewer than k
people is hidden with its complementary cells (pay equity, fairness, monitoring, reports), and, reading the files of real runs,
no output of the train, pay-equity or monitor jobs shows a count of 1 to k-1 people."""
import json, sys, tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_pay_equity import tables_from                              # noqa: E402  (the hand-made HRIS of the pay-equity tests)
from conftest import hr_ml_inprocess                                 # noqa: E402

from hr_ml import pay_equity as PE                                   # noqa: E402
from hr_ml.fairness import audit                                     # noqa: E402
from hr_ml.schema import HRDataError                                 # noqa: E402
from hr_ml.suppression import COUNT_KEYS, check_k, complement, scan_for_small, suppress, suppress_frame   # noqa: E402


def hr_ml(*args, cwd=None):
    "`hr-ml ARGS` in this process (the command's real process is kept by test_journey); train, report and monitor still run their job's kernel."
    return hr_ml_inprocess(*args, cwd=cwd)


def one_line(e) -> str:
    msg = str(e.value if hasattr(e, "value") else e)
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


# ---------------------------------------------------------------- k where it enters
@pytest.mark.parametrize("k", [2, 5, 6, np.int64(10)])
def test_k_accepted(k):
    assert check_k(k) == int(k)


@pytest.mark.parametrize("k,words", [(0, "below 2"), (1, "below 2"), (-3, "below 2"), ("abc", "whole number"), ("5", "whole number"),
                                     (2.5, "whole number"), (5.0, "whole number"), (None, "whole number"), (True, "whole number"),
                                     ([5], "whole number")])
def test_k_refused_in_one_line(k, words):
    with pytest.raises(HRDataError) as e: check_k(k, "k_anon")
    msg = one_line(e)
    assert words in msg and "k_anon" in msg and "-p k_anon=5" in msg


# ---------------------------------------------------------------- one figure, and complementary cells
@pytest.mark.parametrize("value,n,k,expected", [(0.42, 12, 5, 0.42), (0.42, 5, 5, 0.42), (0.42, 4, 5, None), (0.0, 1, 2, None),
                                                (3, None, 5, None), (0.9, 2, 2, 0.9)])
def test_suppress_one_figure(value, n, k, expected):
    assert suppress(value, n, k) == expected


@pytest.mark.parametrize("counts,k,hidden", [
    ([12, 40, 3], 5, [True, False, True]),                       # the smallest other cell goes with the small one
    ([12, 40, 30], 5, [False, False, False]),                    # nothing small: nothing hidden
    ([3, 2], 5, [True, True]),                                   # a tiny company: everything
    ([1], 5, [True]),                                            # one person
    ([4, 1, 100], 5, [True, True, False]),                       # two small cells that hold k together
    ([2, 2, 7, 7], 5, [True, True, True, False]),                # two small cells under k together: one more
    ([[2, 9, 30], [8, 9, 30]], 5, [True, True, False]),          # women and men: the women must be >= k together too
    ([[0, 10], [6, 10]], 5, [True, True]),                       # no women in a cell: its men's gap cannot be shown, nor the rest
])
def test_complementary_cells(counts, k, hidden):
    h = complement(counts, k)
    assert h.tolist() == hidden
    C = np.atleast_2d(counts)
    if h.any() and not h.all(): assert (C[:, h].sum(axis=1) >= k).all() and h.sum() >= 2   # no subtraction from a total gives a cell back


def test_suppress_frame_keeps_labels_and_marks_rows():
    t = pl.DataFrame({"department": ["Sales", "Legal", "R&D"], "n": [12, 3, 40], "mean_risk": [0.2, 0.5, 0.1]})
    s = suppress_frame(t, "n", 5, keep=["department"])
    assert s["department"].to_list() == ["Sales", "Legal", "R&D"]
    assert s["suppressed"].to_list() == [True, True, False]
    assert s.filter(pl.col("suppressed")).select("n", "mean_risk").null_count().row(0) == (2, 2)


@pytest.mark.parametrize("obj,k,found", [
    ({"n": 3}, 5, ["$.n = 3"]),
    ({"n": 0, "n_pos": 5, "k": 2, "n_boot": 3, "n_suppressed": 1}, 5, []),           # 0 describes nobody; other counts are not people
    ({"groups": [{"group": "a", "n_people": 4}, {"group": "b", "suppressed": True}]}, 5, ["$.groups[0].n_people = 4"]),
    ([{"Women": 2, "Men": "suppressed (n < 5)"}], 5, ["$[0].Women = 2"]),              # a report table's labels
    (pl.DataFrame({"people": [7, 1]}), 5, ["$[1].people = 1"]),
])
def test_scan_for_small(obj, k, found):
    assert scan_for_small(obj, k) == found


# ---------------------------------------------------------------- pay equity: tiny companies
W = lambda i, fam="ops", lvl=1, var=0: (f"W{i}", "female", fam, lvl, 40, 20 + i, var)
M = lambda i, fam="ops", lvl=1, var=0: (f"M{i}", "male", fam, lvl, 40, 21 + i, var)
X = lambda i: (f"X{i}", "non_binary", "ops", 1, 40, 25, 0)
COMPANIES = {
    "1 woman, 1 man": [W(1), M(1)],
    "2 women, 1 man": [W(1), W(2, var=2), M(1)],
    "2 women, 2 men": [W(1), W(2, "eng", 2), M(1, var=3), M(2, "eng", 2)],
    "1 woman, 2 men, 1 non-binary": [W(1), M(1), M(2), X(1)],
    "3 women, 1 man": [W(1), W(2), W(3, var=1), M(1)],
    "5 women, 5 men, 3 with variable pay": [*(W(i, var=2 if i < 2 else 0) for i in range(5)), *(M(i, var=2 if i < 1 else 0) for i in range(5))],
}


@pytest.mark.parametrize("name", COMPANIES)
@pytest.mark.parametrize("k", [2, 5])
def test_tiny_company_fully_suppressed(name, k):
    rep, cats = PE.report(PE.pay_table(tables_from(COMPANIES[name])), k, n_boot=0)
    doc = json.loads(json.dumps(rep))
    assert scan_for_small(doc, k) == []                                              # no count of 1..k-1 people anywhere
    assert scan_for_small(cats, k) == []
    assert [b["band"] for b in doc["quartile_bands"]] == [1, 2, 3, 4]                 # a complete report: four bands...
    for b in doc["quartile_bands"]: assert b["suppressed"] and isinstance(b["n"], str)   # ...of 1 to 3 people each, suppressed
    vs = doc["variable_pay_share"]
    assert all(isinstance(v, str) for v in vs.values()) or k == 2                    # shares of 1..4 recipients (k = 5)
    few = min(sum(r[1] == g for r in COMPANIES[name]) for g in ("female", "male")) < k
    assert isinstance(doc["mean_gap_pct"], str) == few and isinstance(doc["unexplained_gap_pct"], str) == few   # gaps of fewer than k women or men


@pytest.mark.parametrize("rows", [[W(1)], [M(1), M(2), M(3)], [*(M(i) for i in range(12)), X(1)], [*(W(i, var=1) for i in range(9))]])
@pytest.mark.parametrize("k", [2, 5])
def test_one_gender_company_complete_and_suppressed(rows, k):
    "Only women or only men: not refused; a complete report in which every gap and share reads suppressed, and says why."
    rep, cats = PE.report(PE.pay_table(tables_from(rows)), k, n_boot=0)
    doc = json.loads(json.dumps(rep))
    assert scan_for_small(doc, k) == [] and scan_for_small(cats, k) == []
    S = PE.suppressed(k)
    for key in ("mean_gap_pct", "median_gap_pct", "basic_mean_gap_pct", "basic_median_gap_pct", "variable_mean_gap_pct",
                "variable_median_gap_pct", "unexplained_gap_pct", "n_female", "n_male"):
        assert doc[key] == S, key
    assert list(doc["variable_pay_share"].values()) == [S, S] and doc["unexplained_gap_ci95"] == [S, S]
    assert [b["band"] for b in doc["quartile_bands"]] == [1, 2, 3, 4] and all(b["suppressed"] for b in doc["quartile_bands"])
    assert ("only women" if rows[0][1] == "female" else "only men") in doc["note"]


@pytest.mark.parametrize("rows", [[X(1)], [X(1), X(2), X(3)]])
def test_no_women_and_no_men_one_line(rows):
    "No one coded female or male is a coding problem (gender_values), not a company: refused in one line."
    with pytest.raises(HRDataError) as e: PE.pay_table(tables_from(rows))
    assert "neither women nor men" in one_line(e) and "gender_values" in one_line(e)


def test_variable_pay_share_of_three_recipients_suppressed():
    rows = [*(W(i, var=2 if i < 3 else 0) for i in range(10)), *(M(i, var=2 if i < 6 else 0) for i in range(12))]
    ind = PE.indicators(PE.pay_table(tables_from(rows)), k=5)
    assert ind["variable_pay_share"]["female"] == "suppressed (n < 5)"              # 3 women receive variable pay
    assert ind["variable_pay_share"]["male"] == 50.0                                 # 6 of 12 men (and 6 without): shown
    ind = PE.indicators(PE.pay_table(tables_from(rows[:-2])), k=5)
    assert ind["variable_pay_share"]["male"] == "suppressed (n < 5)"                # 6 of 10: the 4 without would be a figure of 4 men


# ---------------------------------------------------------------- fairness: groups with fewer than k leavers
def _audit(sizes, exits, k=5):
    g = np.concatenate([[name] * n for name, n in sizes.items()])
    y = np.concatenate([np.arange(n) < exits[name] for name, n in sizes.items()]).astype(int)
    p = np.clip(0.1 + 0.3 * y + np.random.default_rng(0).normal(0, 0.1, len(y)), 0.01, 0.99)
    a = audit(y, p, pl.DataFrame({"prot_group": g}), k=k, n_boot=20, min_n=30)
    return {r["group"]: r for r in a["attributes"]["prot_group"]["groups"]}


@pytest.mark.parametrize("exits,hidden", [
    ({"a": 40, "b": 3, "c": 30}, {"b", "c"}),       # 3 leavers in b: hidden, and c too (else the total gives b back)
    ({"a": 40, "b": 30, "c": 20}, set()),            # every group has >= k leavers and stayers
    ({"a": 40, "b": 0, "c": 30}, set()),             # no leaver in b: TPR undefined, nothing to hide
    ({"a": 40, "b": 1, "c": 2}, {"b", "c"}),         # two small groups that hold 3 leavers together: the next goes too...
    ({"a": 40, "b": 98, "c": 30}, {"b", "c"}),       # 2 stayers in b: its false-positive rate describes 2 people
])
def test_fairness_outcomes_of_few_leavers(exits, hidden):
    rows = _audit({"a": 200, "b": 100, "c": 100}, exits)
    got = {g for g, r in rows.items() if r.get("outcomes_suppressed") or r.get("counts_suppressed")}
    assert hidden <= got and (got <= hidden or exits == {"a": 40, "b": 1, "c": 2})
    for g in got:
        r, few = rows[g], 0 < exits[g] < 5 or 0 < 100 - exits[g] < 5
        assert (r["n_pos"], r["observed_rate"], r["calibration_gap"]) == (None,) * 3      # nothing gives the exit count back
        if few: assert r["outcomes_suppressed"] and (r["tpr"], r["fpr"], r["auc"]) == (None,) * 3   # rates about 1..4 people: hidden
        else: assert r["counts_suppressed"] and r["auc"] is not None                  # a large complementary group keeps its AUC and rates
        assert r["n_people"] >= 5 and r["selection_rate"] is not None                # figures of the whole group stay
    assert scan_for_small(rows, 5) == []


def test_fairness_single_non_binary_person():
    rows = _audit({"female": 60, "male": 60, "non_binary": 1}, {"female": 10, "male": 12, "non_binary": 1})
    assert rows["non_binary"] == {"group": "non_binary", "suppressed": True}
    assert sum(r["suppressed"] for r in rows.values()) >= 2                         # with a complementary group


# ---------------------------------------------------------------- monitoring fewer than k people
@pytest.fixture(scope="module")
def row_world():
    from hr_ml.attrition import AttritionModel
    from hr_ml.monitor import read_rows, reference_profile
    from hr_ml.tabular import demo_export, prepare_table
    m = {"id": "EmployeeNumber", "target": "Attrition", "positive": "Yes", "protected": ["Age", "Gender", "MaritalStatus"],
         "drop": ["DailyRate", "HourlyRate", "MonthlyRate"]}
    d = Path(tempfile.mkdtemp())
    demo_export(n=400, seed=2).write_csv(d / "export.csv")
    rows = read_rows(d / "export.csv", m)
    prep = prepare_table(rows.df, m, source=rows.source, n_splits=3)
    model = AttritionModel(kind="logistic", random_state=0).fit(prep.X, prep.y, groups=prep.groups)
    model.recipe_ = prep.recipe
    prof = reference_profile(prep.X, model.predict_risk(prep.X), model.feature_names_, meta={"horizon_months": 12, "cuts": [0.15, 0.35]})
    return model, prof, rows


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_monitor_fewer_than_k(row_world, n, tmp_path):
    from hr_ml.monitor import RowExport, run_monitor, write_outputs
    model, prof, rows = row_world
    res = run_monitor(model, prof, RowExport(rows.df.head(n), {}, "few.csv"), n_boot=10, k=5)
    doc = json.loads(write_outputs(res, tmp_path).read_text())
    if n < 5:
        assert doc["n"] == "fewer than 5" and doc["score"]["mean"] is None and doc["drift"] == []
        assert doc["checks"]["drift"] == "n/a"
    else:
        assert doc["n"] == 5 and doc["score"]["mean"] is not None
    assert scan_for_small(doc, 5) == []
    assert scan_for_small(pl.read_parquet(tmp_path / "drift.parquet"), 5) == []


# ---------------------------------------------------------------- jobs and commands: k refused in one line, exit 2
@pytest.mark.parametrize("args,words", [
    (["report", "pay-equity", "-p", "k=abc"], ("k", "abc")),
    (["report", "pay-equity", "-p", "k=0"], ("k", "0")),
    (["train", "attrition", "-p", "k_anon=1"], ("k_anon", "1")),
    (["monitor", "--model", "nowhere", "-p", "k_anon=-3"], ()),                     # the model may be checked first: one line either way
])
def test_job_k_refused(args, words, tmp_path):
    (tmp_path / "hris").mkdir()
    for t, df in tables_from(COMPANIES["2 women, 2 men"]).items(): df.write_csv(tmp_path / "hris" / f"{t}.csv")
    r = hr_ml(*args, *(["--data", tmp_path / "hris"] if args[0] == "report" else []), "--no-progress", "--out", tmp_path / "runs", cwd=tmp_path)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    err = [l for l in (r.stdout + r.stderr).splitlines() if l.startswith("error:")]
    assert len(err) == 1 and "Traceback" not in r.stderr and "TypeError" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert all(w in err[0] for w in words), err[0]


def test_score_k_anon_refused(tmp_path):
    r = hr_ml("score", "--data", tmp_path, "--out", tmp_path / "s.parquet", "--k-anon", "0")
    assert r.returncode == 2 and "--k-anon = 0" in r.stderr + r.stdout and "Traceback" not in r.stderr


# ---------------------------------------------------------------- property: no output file of a run shows fewer than k people
class _Tables(HTMLParser):
    "The tables of an HTML report as lists of {header: cell} rows (the header: the last row of th cells before the data rows)."
    def __init__(self):
        super().__init__(); self.tables, self._cell, self._row, self._td, self._head = [], None, None, False, []
    def handle_starttag(self, tag, attrs):
        if tag == "table": self.tables.append([]); self._head = []
        elif tag == "tr": self._row, self._td = [], False
        elif tag in ("td", "th"): self._cell = ""; self._td |= tag == "td"
    def handle_data(self, data):
        if self._cell is not None: self._cell += data
    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None: self._row.append(self._cell.strip()); self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            if not self._td: self._head = self._row
            elif len(self._row) == len(self._head): self.tables[-1].append(dict(zip(self._head, self._row)))
            self._row = None


def _number(s):
    s = str(s).replace(",", "").strip()
    return int(s) if s.isdigit() else s


def html_tables(path: Path) -> list:
    p = _Tables(); p.feed(path.read_text(errors="replace"))
    return [[{h: _number(v) for h, v in row.items()} for row in t] for t in p.tables]


PER_EMPLOYEE = {"drivers.parquet", "scores.parquet"}                  # one row per person by design, not aggregates
NOT_OUTPUT = {"model.json", "manifest.json", "params.yaml"}


def scan_run(folder: Path, k: int) -> list:
    found = []
    for f in sorted(folder.rglob("*")):
        if f.name in PER_EMPLOYEE | NOT_OUTPUT: continue
        if f.suffix == ".json": hits = scan_for_small(json.loads(f.read_text()), k)
        elif f.suffix == ".parquet": hits = scan_for_small(pl.read_parquet(f), k)
        elif f.suffix == ".html": hits = scan_for_small(html_tables(f), k, COUNT_KEYS + ("rows", "CV people", "back-test people"))
        else: continue
        found += [f"{f.name}: {h}" for h in hits]
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "A tiny training run, then pay-equity reports (a 4-person HRIS, a small synthetic one) and monitors (3 people, the full population)."
    from hr_ml.io import write_hris
    from hr_ml.synth import generate
    d = tmp_path_factory.mktemp("runs")
    r = hr_ml("train", "attrition", "--employees", "300", "--tenants", "3", "-p", "n_boot=20", "-p", "n_splits=3", "-p", "n_repeats=1", "-p", "model_kind=xgboost",
              "-p", "model_params={n_estimators: 40, max_depth: 3}", "--no-track", "--no-progress", "--out", d / "train")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (run,) = (d / "train" / "attrition").iterdir()
    tables, _ = generate(n_employees=300, n_tenants=3, seed=0)
    keep = tables["employees"].filter(pl.col("termination_date").is_null()).select("tenant_id", "employee_id").head(3)
    write_hris({t: df.join(keep, on=["tenant_id", "employee_id"], how="semi") if "employee_id" in df.columns else df for t, df in tables.items()}, d / "three")
    (d / "four").mkdir()
    for t, df in tables_from(COMPANIES["2 women, 2 men"]).items(): df.write_csv(d / "four" / f"{t}.csv")
    jobs = {"pay_four": ["report", "pay-equity", "--data", d / "four", "--no-progress", "--out", d / "pay_four"],
            "pay_synth": ["report", "pay-equity", "-p", "employees=300", "-p", "tenants=3", "-p", "n_boot=20", "--no-progress", "--out", d / "pay_synth"],
            "monitor_three": ["monitor", "--model", run, "--data", d / "three", "-p", "n_boot=10", "--no-progress", "--out", d / "monitor_three"],
            "monitor_all": ["monitor", "--model", run, "-p", "employees=300", "-p", "tenants=3", "-p", "n_boot=10", "--no-progress", "--out", d / "monitor_all"]}
    res = {name: hr_ml(*a) for name, a in jobs.items()}             # one after another: the in-process runner is not thread-safe
    for name, x in res.items(): assert x.returncode in (0, 1), (name, x.stdout[-3000:], x.stderr[-3000:])   # 1: a monitor alert
    return {"train": run, **{n: next((d / n).rglob("manifest.json")).parent for n in jobs}}


@pytest.mark.parametrize("name", ["train", "pay_four", "pay_synth", "monitor_three", "monitor_all"])
def test_no_output_shows_fewer_than_k(runs, name):
    folder = runs[name]
    kinds = {f.suffix for f in folder.iterdir()}
    assert {".json", ".html"} <= kinds                                               # the scan reads real files
    assert scan_run(folder, 5) == []


def test_scan_reads_html_tables_of_the_report(runs):
    tables = html_tables(runs["pay_synth"] / "report.html")
    assert any("Quartile pay band" in row for t in tables for row in t)              # the parser sees the report's tables


def test_tiny_company_report_complete_and_suppressed(runs):
    doc = json.loads((runs["pay_four"] / "indicators.json").read_text())
    assert all(isinstance(doc[key], str) for key in ("n_female", "n_male", "mean_gap_pct", "median_gap_pct", "unexplained_gap_pct"))
    assert (runs["pay_four"] / "report.html").exists() and (runs["pay_four"] / "categories.parquet").exists()


def test_three_people_monitored_without_their_figures(runs):
    doc = json.loads((runs["monitor_three"] / "monitor.json").read_text())
    assert doc["n"] == "fewer than 5" and doc["score"]["mean"] is None and doc["drift"] == []
    html = (runs["monitor_three"] / "report.html").read_text()
    assert "fewer than 5 people" in html.lower()


# ---------------------------------------------------------------- training on fewer than k exits: refused, nothing about them shown
@pytest.mark.parametrize("exits,k", [(4, 5), (5, 6), (2, 3)])
def test_training_on_fewer_than_k_exits_refused(exits, k):
    "A model trained on 4 leavers would publish metrics, bins and gates about 4 people: refused in one line (the count not shown)."
    from hr_ml.monitor import read_rows
    from hr_ml.pipeline import choose_and_fit
    from hr_ml.tabular import demo_export, prepare_table
    m = {"id": "EmployeeNumber", "target": "Attrition", "positive": "Yes", "protected": ["Age", "Gender", "MaritalStatus"],
         "drop": ["DailyRate", "HourlyRate", "MonthlyRate"]}
    d = Path(tempfile.mkdtemp())
    df = demo_export(n=300, seed=4, duplicates=0)
    df = df.with_columns(Attrition=pl.when(pl.int_range(pl.len()) < exits).then(pl.lit("Yes")).otherwise(pl.lit("No")))
    df.write_csv(d / "export.csv")
    rows = read_rows(d / "export.csv", m)
    prep = prepare_table(rows.df, m, source=rows.source, n_splits=2)
    with pytest.raises(HRDataError) as e: choose_and_fit(prep, n_splits=2, n_repeats=1, k=k)
    msg = one_line(e)
    assert f"fewer than {k} exits" in msg and f" {exits} exits" not in msg
