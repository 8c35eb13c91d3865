"""Benchmark 4: the attrition training job end to end, and papermill's start-up overhead.

    python bench/bench_train.py                 # 100,000 synthetic employees, 600 tenants (minutes)
    python bench/bench_train.py --smoke --out /tmp/b   # tiny job, well under a minute

1. `hr-ml train attrition --employees N --tenants T --out TMP` as a subprocess: synthetic HRIS, features, CV model
   choice, fit, calibration, SHAP drivers, fairness, report (executed.ipynb + report.html) -- wall time and peak RSS.
   Goal: <= 3 minutes at 100,000 employees.
2. Papermill start-up overhead: a trivial job notebook run through `hr_ml.runs.run_job` (kernel start, parameters,
   params.yaml, manifest, report.html) against executing the same code in this process; median of --repeats, interleaved.
   Goal: overhead <= 3 s.
Writes train.json and train.md to --out (default bench/results).
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOAL_TRAIN_S, GOAL_OVERHEAD_S = 180.0, 3.0
SMOKE_JOB = ["-p", "n_splits=2", "-p", "model_kind=xgboost", "-p", "model_params={n_estimators: 20, max_depth: 3}", "-p", "n_boot=10"]

# the trivial job: a parameters cell, then the work (the same code runs in-process for the baseline)
PARAMS_SRC = "n = 100_000\nrun_dir = '.'"
WORK_SRC = ("import json, pathlib\n"
            "total = sum(i * i for i in range(n))\n"
            "pathlib.Path(run_dir, 'metrics.json').write_text(json.dumps({'total': total}))")


def _hr_ml():
    "The `hr-ml` command of this environment (or `python -m hr_ml.cli`)."
    exe = Path(sys.executable).parent / "hr-ml"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "hr_ml.cli"]


def train_job(employees, tenants, extra, out):
    "Run the training job as a subprocess; wall seconds, peak RSS of the job's processes, and what the run recorded."
    cmd = _hr_ml() + ["train", "attrition", "--employees", str(employees), "--tenants", str(tenants), "--out", str(out), "--no-progress", *extra]
    cpu = lambda u: u.ru_utime + u.ru_stime
    c0, t0 = cpu(resource.getrusage(resource.RUSAGE_CHILDREN)), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    secs, cpu_s = time.perf_counter() - t0, cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - c0
    if r.returncode != 0:
        raise SystemExit(f"training job failed (exit {r.returncode}): {r.stderr.strip()[-2000:]}")
    run = next((out / "attrition").iterdir())
    man = json.loads((run / "manifest.json").read_text())
    met = json.loads((run / "metrics.json").read_text())
    cv = met["cv"][met["chosen_model"]]["summary"]
    cells = []  # where the job's time goes: papermill records each cell's duration
    for i, c in enumerate(json.loads((run / "executed.ipynb").read_text())["cells"]):
        d = (c.get("metadata", {}).get("papermill") or {}).get("duration")
        src = [l for l in "".join(c.get("source", "")).splitlines() if l.strip() and not l.startswith(("t = time.perf_counter()", "#"))]
        if c.get("cell_type") == "code" and d is not None and src: cells.append(dict(cell=i, seconds=round(d, 2), first_line=src[0][:90]))
    shown = ["hr-ml"] + ["TMP" if c == str(out) else c for c in cmd[len(_hr_ml()):]]
    return dict(command=" ".join(shown), seconds=secs, cpu_seconds=cpu_s,
                job_seconds=man.get("timings", {}).get("job_seconds"), timings_job=man.get("timings_job"),
                peak_rss_gb_children=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20,
                chosen_model=met["chosen_model"], cv_roc_auc=cv.get("roc_auc"), rows=met.get("n_rows") or met.get("rows"),
                files=sorted(p.name for p in run.iterdir()), stdout_tail=r.stdout.strip().splitlines()[-4:],
                slowest_cells=sorted(cells, key=lambda c: -c["seconds"])[:8])


def _trivial_notebook(path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "python3", "language": "python", "name": "python3"}
    nb.cells = [nbformat.v4.new_code_cell(PARAMS_SRC, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(WORK_SRC)]
    nbformat.write(nb, path)
    return path


def overhead(repeats, tmp, smoke=False):
    "Median seconds of the trivial job through run_job (with and without report.html) and in-process; the differences."
    from hr_ml.runs import run_job
    nb = _trivial_notebook(tmp / "trivial_job.ipynb")
    def inproc():
        d = tmp / "inproc"; d.mkdir(exist_ok=True)
        g = {}
        exec(PARAMS_SRC, g); g["run_dir"] = str(d); exec(WORK_SRC, g)
    if not smoke: run_job(str(nb), {}, tmp / "runs", kind="trivial", progress=False)  # warm: kernelspec, imports, disk cache
    t = dict(run_job=[], run_job_no_html=[], in_process=[])
    for _ in range(repeats):
        t0 = time.perf_counter(); run_job(str(nb), {}, tmp / "runs", kind="trivial", progress=False); t["run_job"].append(time.perf_counter() - t0)
        t0 = time.perf_counter(); inproc(); t["in_process"].append(time.perf_counter() - t0)
        if smoke: continue  # one kernel start is enough to keep the benchmark from rotting
        t0 = time.perf_counter(); run_job(str(nb), {}, tmp / "runs", kind="trivial", progress=False, html=False); t["run_job_no_html"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) if v else None for k, v in t.items()}
    return dict(repeats=repeats, seconds=t, median_s=med, overhead_s=med["run_job"] - med["in_process"],
                overhead_no_html_s=med["run_job_no_html"] - med["in_process"] if med["run_job_no_html"] is not None else None)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny job: well under a minute")
    p.add_argument("--out", type=Path, default=HERE / "results", help="folder for train.json and train.md")
    p.add_argument("--employees", type=int, default=None, help="default 100,000 (smoke 1,000)")
    p.add_argument("--tenants", type=int, default=None, help="default 600 (smoke 5)")
    p.add_argument("--repeats", type=int, default=None, help="papermill overhead repeats (default 5, smoke 1)")
    a = p.parse_args(argv)
    n = a.employees or (1_000 if a.smoke else 100_000)
    tenants = a.tenants or (5 if a.smoke else 600)
    repeats = a.repeats or (1 if a.smoke else 5)
    import papermill, polars as pl, xgboost as xgb
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        tmp = Path(tmp)
        print(f"training job on {n:,} synthetic employees, {tenants} tenants ...", flush=True)
        job = train_job(n, tenants, SMOKE_JOB if a.smoke else [], tmp / "runs")
        print(f"  {job['seconds']:.1f} s wall (job notebook {job['job_seconds']} s), peak RSS {job['peak_rss_gb_children']:.2f} GB, "
              f"chosen {job['chosen_model']}, CV ROC-AUC {job['cv_roc_auc']}", flush=True)
        ov = overhead(repeats, tmp, a.smoke)
        print(f"papermill overhead: run_job {ov['median_s']['run_job']:.2f} s vs in-process {ov['median_s']['in_process']:.3f} s "
              f"-> {ov['overhead_s']:.2f} s", flush=True)
    passed = dict(train_seconds=job["seconds"] <= GOAL_TRAIN_S, papermill_overhead_s=ov["overhead_s"] <= GOAL_OVERHEAD_S)
    res = dict(benchmark="train", smoke=a.smoke, employees=n, tenants=tenants, job=job, papermill=ov,
               measured=dict(train_seconds=job["seconds"], papermill_overhead_s=ov["overhead_s"]),
               goals=dict(train_seconds=GOAL_TRAIN_S, papermill_overhead_s=GOAL_OVERHEAD_S), passed=passed,
               **{"pass": all(passed.values())},
               machine=dict(cpu_count=os.cpu_count(), platform=platform.platform(), load_avg_1m_at_start=round(load0, 2),
                            load_avg_1m_at_end=round(os.getloadavg()[0], 2), bytecode=_bytecode()),
               versions=dict(python=platform.python_version(), papermill=papermill.__version__, polars=pl.__version__,
                             xgboost=xgb.__version__))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "train.json").write_text(json.dumps(res, indent=2) + "\n")
    (a.out / "train.md").write_text(_markdown(res))
    print(f"wrote {a.out}/train.json and train.md")
    return 0 if (res["pass"] or a.smoke) else 1


def _bytecode():
    "Whether imports can use cached bytecode: with PYTHONDONTWRITEBYTECODE set and no .pyc in site-packages every process compiles its imports anew (seconds)."
    import xgboost
    site = Path(xgboost.__file__).parent
    return dict(PYTHONDONTWRITEBYTECODE=bool(os.environ.get("PYTHONDONTWRITEBYTECODE")),
                site_packages_has_pyc=any(site.glob("__pycache__/*.pyc")))


def _markdown(r):
    j, o = r["job"], r["papermill"]
    ok = lambda b: "pass" if b else "FAIL"
    m = o["median_s"]
    nh = lambda v: "not run" if v is None else f"{v:.2f} s"
    return f"""# Benchmark: training job and papermill overhead{' (smoke)' if r['smoke'] else ''}

## Training job end to end

`{j['command']}` as a subprocess: synthetic HRIS of {r['employees']:,} employees, point-in-time features over quarterly
snapshots, cross-validated model choice ({j['chosen_model']} chosen, CV ROC-AUC {j['cv_roc_auc']}), fit and calibration, SHAP drivers,
fairness, the executed notebook and its HTML report, all in one run folder.
Global SHAP importance, the beeswarm and the planted-truth checks use a fixed-seed sample of the training rows (the job's `shap_rows`);
every current employee's drivers are exact.

| employees | wall seconds (goal {r['goals']['train_seconds']:.0f}) | of which the job notebook | CPU seconds | peak RSS GB |
|---:|---:|---:|---:|---:|
| {r['employees']:,} | {j['seconds']:.1f} ({ok(r['passed']['train_seconds'])}) | {j['job_seconds']} | {_f(j.get('cpu_seconds'))} | {j['peak_rss_gb_children']:.2f} |

Wall time includes starting python and the kernel and writing `report.html`; peak RSS is the largest of the job's processes.
CPU seconds are user + system time of all the job's processes: on a shared machine wall time grows with the load, while CPU time
(at most 2 × wall on 2 cores) stays close to what the job itself needs.
Steps as the job timed them (`timings_job` in the run's manifest): """ + ", ".join(f"{k} {v:.1f} s" for k, v in (j.get("timings_job") or {}).items()) + f""".
Slowest cells of the job notebook (papermill's per-cell durations):

| seconds | cell | first line (timer lines skipped) |
|---:|---:|---|
""" + "\n".join(f"| {c['seconds']:.1f} | {c.get('cell', '')} | `{c['first_line'].replace('|', '/')}` |" for c in j["slowest_cells"]) + f"""

## Papermill start-up overhead

A trivial job notebook (a parameters cell and `sum(i*i for i in range(100_000))` written to `metrics.json`) through
`hr_ml.runs.run_job` vs the same code executed in this process; median of {o['repeats']} interleaved repeats (after one warm-up run, except in smoke mode).

| run_job (with report.html) | run_job (no report.html) | in-process | overhead (goal {r['goals']['papermill_overhead_s']:.0f} s) | overhead without report.html |
|---:|---:|---:|---:|---:|
| {m['run_job']:.2f} s | {nh(m['run_job_no_html'])} | {m['in_process']:.3f} s | {o['overhead_s']:.2f} s ({ok(r['passed']['papermill_overhead_s'])}) | {nh(o['overhead_no_html_s'])} |

The overhead is kernel start-up, papermill's notebook handling, params.yaml, the manifest (git commit, hashes) and the HTML export.

Machine: {r['machine']['cpu_count']} CPUs shared with other work (1-minute load average {r['machine']['load_avg_1m_at_start']} at start,
{r['machine']['load_avg_1m_at_end']} at end; {_bc(r['machine'].get('bytecode'))}); python {r['versions']['python']}, papermill {r['versions']['papermill']},
polars {r['versions']['polars']}, xgboost {r['versions']['xgboost']}.
"""


def _f(v): return "n/a" if v is None else f"{v:.1f}"


def _bc(b):
    if not b: return "bytecode cache not recorded"
    if b["site_packages_has_pyc"]: return "site-packages has cached bytecode"
    return "no cached bytecode in site-packages" + (" and PYTHONDONTWRITEBYTECODE set: every process compiles its imports" if b["PYTHONDONTWRITEBYTECODE"] else "")


if __name__ == "__main__":
    sys.exit(main())
