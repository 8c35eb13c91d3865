"""The three reports are made for people: every chart embedded in executed.ipynb and report.html, a summary first,
formatted tables and prose, and none of the debug output a notebook shows by default (frame reprs, long floats,
Python lists and dicts, paths, timings, tracebacks). Each job runs once, tiny, through the CLI as a user runs it."""
import html, json, re, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest

from hr_ml.tabular import demo_export

sys.path.insert(0, str(Path(__file__).parent))
from conftest import hr_ml_inprocess

TRAIN = ["-p", "n_splits=3", "-p", "n_boot=20", "--no-track"]
SYNTH = ["--employees", "1500", "--tenants", "8", "-p", "model_kind=xgboost", "-p", "model_params={n_estimators: 60, max_depth: 3}"]
EXPORT_MAPPING = """id: EmployeeNumber
target: Attrition
positive: "Yes"
protected: [Age, Gender, MaritalStatus]
drop: [DailyRate, HourlyRate, MonthlyRate]
"""
PAY_MAPPING = """pay_equity:
  id: Id
  gender: Sex
  gender_values: {F: female, M: male, D: non_binary}
  base_pay: Salary
  hours: Hours
  categories: [Family, Grade]
"""


def hr_ml(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "hr_ml.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=900)


def only_run(out: Path, kind: str) -> Path:
    runs = sorted((out / kind).iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def pay_export(d: Path):
    rows = [dict(Id=f"E{i:03d}", Sex="F" if i % 2 else "M", Family=("ops", "eng")[i % 3 == 0], Grade=str(1 + i % 2), Hours=40,
                 Salary=40000 + 300 * (i % 17) + (0 if i % 2 else 2500) + (5000 if i % 3 == 0 else 0)) for i in range(120)]
    rows.append(dict(Id="E999", Sex="D", Family="ops", Grade="1", Hours=40, Salary=45000))   # one person of another gender: a suppressed count
    pl.DataFrame(rows).write_csv(d / "pay.csv")
    (d / "pay.yaml").write_text(PAY_MAPPING)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "Every report, made once: training on the synthetic HRIS and on a one-row export, pay equity on both shapes, monitoring."
    d = tmp_path_factory.mktemp("reports")
    demo_export(n=400).write_csv(d / "export.csv")
    (d / "mapping.yaml").write_text(EXPORT_MAPPING)
    pay_export(d)
    first = {"train_synth": ["train", "attrition", *SYNTH, *TRAIN, "--out", d / "synth"],
             "train_export": ["train", "attrition", "--data", d / "export.csv", "--mapping", d / "mapping.yaml", "-p", "n_repeats=1", *TRAIN,
                              "--out", d / "export"],
             "pay_synth": ["report", "pay-equity", "-p", "employees=1500", "-p", "tenants=8", "-p", "n_boot=20", "--no-progress", "--out", d / "pay"],
             "pay_export": ["report", "pay-equity", "--data", d / "pay.csv", "--mapping", d / "pay.yaml", "-p", "n_boot=20", "--no-progress",
                            "--out", d / "pay_export"]}
    # Two chains side by side: here, in this process (typer's runner: the same app, its stdout and stderr), the synthetic
    # training and then the monitor of its model; beside it, in one thread, the other three as real processes one after the
    # other (the runner swaps sys.stdout, so only one command runs in this process at a time; a real process is unaffected).
    with ThreadPoolExecutor(1) as ex:
        # cwd given: a job run here moves this process into its run folder while it runs (papermill), a child must not inherit that
        rest = ex.submit(lambda: {k: hr_ml(*first[k], cwd=d) for k in ("train_export", "pay_synth", "pay_export")})
        res = {"train_synth": hr_ml_inprocess(*first["train_synth"])}
        assert res["train_synth"].returncode == 0, ("train_synth", res["train_synth"].stdout[-3000:], res["train_synth"].stderr[-3000:])
        train = only_run(d / "synth", "attrition")
        res["monitor"] = hr_ml_inprocess("monitor", "--model", train, "-p", "employees=1500", "-p", "tenants=8", "-p", "shift=pay_freeze",
                                         "-p", "n_boot=20", "--no-progress", "--out", d / "mon")
        res.update(rest.result())
    for k, r in res.items():
        if k != "monitor": assert r.returncode == 0, (k, r.stdout[-3000:], r.stderr[-3000:])
    assert res["monitor"].returncode in (0, 1), (res["monitor"].stdout[-3000:], res["monitor"].stderr[-3000:])  # 1: status alert
    folders = {"train_synth": train, "train_export": only_run(d / "export", "attrition"), "pay_synth": only_run(d / "pay", "pay_equity"),
               "pay_export": only_run(d / "pay_export", "pay_equity"), "monitor": only_run(d / "mon", "monitor")}
    return d, res, folders


# ---------------------------------------------------------------- what a reader sees
FORBIDDEN = ["shape: (", "│", "┌", "╞", "…", "Traceback", "/tmp/", "timings", "dtype", "<Figure", "<IPython", "Executing", "PosixPath",
             "object at 0x", "{'", "['", "\\n"]
FORBIDDEN_RE = {"six-decimal float": r"\d\.\d{5,}", "quoted string": r"(?<![\w])'[^'\n]{1,80}'(?![\w])", "Python None/NaN": r"\b(None|nan|NaN)\b", "polars dtype": r"\b(f64|i64|str|bool)\b\s*$"}


def report_text(html_doc: str) -> str:
    "The text a reader of report.html sees: no scripts, styles or image data, tags stripped."
    body = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html_doc)
    body = re.sub(r'(?i)src="data:image/[^"]+"', " ", body)
    return html.unescape(re.sub(r"(?s)<[^>]+>", " ", body))


def notebook_text(nb: dict) -> str:
    "The outputs a reader of executed.ipynb sees (not stderr: warnings stay there for the developer)."
    out = []
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            if o["output_type"] == "stream" and o.get("name") == "stdout": out.append("".join(o["text"]))
            elif o["output_type"] == "error": out.append("Traceback " + o.get("ename", ""))
            elif o["output_type"] in ("display_data", "execute_result"):
                data = o["data"]
                rich = [k for k in ("text/html", "text/markdown") if k in data]
                if rich: out.append(report_text("".join(data[rich[0]])))
                elif "image/png" not in data: out.append("".join(data.get("text/plain", "")))
    return "\n".join(out)


def problems(text: str, tmp: Path) -> list:
    bad = [s for s in FORBIDDEN + [str(tmp)] if s in text]
    bad += [f"{k}: {m.group(0)!r}" for k, rx in FORBIDDEN_RE.items() for m in [re.search(rx, text, re.M)] if m]
    return bad


def context(text: str, bad: list) -> str:
    s = bad[0].split(": ")[-1].strip("'") if bad else ""
    i = text.find(s)
    return text[max(0, i - 200): i + 200] if i >= 0 else ""


def images(folder: Path) -> tuple[int, int, int]:
    "Images embedded in report.html, image outputs in executed.ipynb, PNG files in the run folder."
    nb = json.loads((folder / "executed.ipynb").read_text())
    n_nb = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    return (folder / "report.html").read_text().count('src="data:image/png;base64,'), n_nb, len(list(folder.glob("*.png")))


MIN_IMAGES = {"train_synth": 7, "train_export": 6, "pay_synth": 2, "pay_export": 2, "monitor": 2}


@pytest.mark.parametrize("name", list(MIN_IMAGES))
def test_every_chart_embedded(runs, name):
    _, _, f = runs
    n_html, n_nb, n_png = images(f[name])
    assert n_html >= max(MIN_IMAGES[name], n_png) and n_nb >= max(MIN_IMAGES[name], n_png), (n_html, n_nb, n_png)


@pytest.mark.parametrize("name", list(MIN_IMAGES))
def test_no_code_or_debug_output(runs, name):
    d, _, f = runs
    doc = (f[name] / "report.html").read_text()
    assert not re.search(r'class="[^"]*\b(jp-InputArea-editor|jp-InputPrompt|jp-OutputPrompt|highlight)\b', doc)  # no code, no prompts
    for what, text in (("report.html", report_text(doc)), ("executed.ipynb", notebook_text(json.loads((f[name] / "executed.ipynb").read_text())))):
        bad = problems(text, d)
        assert not bad, (what, bad, context(text, bad))


@pytest.mark.parametrize("name", list(MIN_IMAGES))
def test_summary_first(runs, name):
    _, _, f = runs
    heads = [re.sub(r"(?s)<[^>]+>|¶", "", h).strip() for h in re.findall(r"(?s)<h2[^>]*>(.*?)</h2>", (f[name] / "report.html").read_text())]
    assert heads and heads[0] == "Summary", heads
    text = report_text((f[name] / "report.html").read_text())
    first = text[text.find("Summary"):]
    assert "What to do next." in first[:3000], first[:3000]
    nb = json.loads((f[name] / "executed.ipynb").read_text())
    shown = [o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] != "stream"]
    assert shown and "".join(shown[0]["data"].get("text/markdown", "")).startswith("## Summary"), shown[:1]   # the first thing the notebook shows


def test_train_summary_words(runs):
    _, _, f = runs
    text = report_text((f["train_synth"] / "report.html").read_text())
    summary = text[text.find("Summary"):text.find("Data", text.find("Summary"))]
    for w in ("How good.", "ROC-AUC", "Who is at risk.", "What drives it.", "Gates.", "What to do next."): assert w in summary, (w, summary)
    assert "TreeSHAP" in text and "Planted truth" in text and "back-test" in text.lower()


def test_export_report_reads_well(runs):
    "The one-row export: the SHAP method named, no planted-truth section, drivers in words (dates as durations, money with its period)."
    _, _, f = runs
    text = report_text((f["train_export"] / "report.html").read_text())
    m = json.loads((f["train_export"] / "metrics.json").read_text())
    assert ("TreeSHAP" if m["chosen_model"] == "xgboost" else "exact linear SHAP") in text
    assert "Planted truth" not in text and "no back-test" in text
    dr = pl.read_parquet(f["train_export"] / "drivers.parquet")
    texts = [(r[f"driver_{j}"], r[f"driver_{j}_text"]) for r in dr.iter_rows(named=True) for j in (1, 2, 3)]
    for feat, t in texts:
        if feat == "HireDate": assert re.match(r"Hired \d+ (day|month|year)s? ago (raises|lowers) risk$", t), t
        if feat == "MonthlyIncome": assert re.match(r"Monthly income [\d,]+ a month (raises|lowers) risk$", t), t
        if feat == "OverTime": assert re.match(r"Over time: (yes|no) (raises|lowers) risk$", t), t
        assert not re.search(r"^[A-Z][a-z]+[a-z]{6,}: \d", t), t                           # no 'Monthlyincome: 2991'


def test_pay_equity_flags_with_ci(runs):
    _, _, f = runs
    rep = json.loads((f["pay_synth"] / "indicators.json").read_text())
    text = report_text((f["pay_synth"] / "report.html").read_text())
    assert "Headline gaps." in text and "Art. 10 flags." in text
    for c in rep["art10_flagged"]: assert c in text


def test_terminal_notes_and_steps(runs):
    "hr-ml train prints the data-preparation notes the README promises, and its progress as named steps."
    _, res, f = runs
    out = res["train_export"].stdout
    m = json.loads((f["train_export"] / "metrics.json").read_text())
    assert m["notes"] and all(f"note: {n}" in out for n in m["notes"])
    assert "probable target leak" in out and "constant columns" in out and "exact copies" in out
    err = res["train_synth"].stderr
    assert "[1/" in err and "Cross-validating both models" in err and "cell/s" not in err
