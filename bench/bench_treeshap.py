"""Benchmark 1: SHAP throughput of hr_ml.treeshap.tree_shap vs xgboost's pred_contribs, side by side.

    python bench/bench_treeshap.py            # full run (a few minutes on 2 cores)
    python bench/bench_treeshap.py --smoke --out /tmp/x   # tiny run, seconds

Writes treeshap.json and treeshap.md to --out (default bench/results).
"""
import argparse, json, os, platform, statistics, sys, time
from pathlib import Path

import numba
import numpy as np
import xgboost as xgb

from hr_ml.treeshap import TreeShapModel, tree_shap

GOAL = 5.0
# (trees, depth, rows explained per repeat); the deepest model is ~60x slower per row, so it gets fewer rows
FULL = [(100, 3, 20_000), (300, 4, 20_000), (1000, 6, 4_000)]
SMOKE = [(10, 3, 500), (20, 4, 500), (30, 6, 200)]


def _cpu():
    "CPU model name and usable cores."
    name = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"): name = line.split(":", 1)[1].strip(); break
    except OSError: pass
    return name, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _data(n, n_feat=40, seed=0):
    "Synthetic binary task with 40 features, interactions and 5% missing values."
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_feat)).astype(np.float32)
    beta = rng.normal(size=n_feat) * 0.4
    z = X @ beta + np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + rng.normal(size=n)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X, (z > 0).astype(int)


def _median_time(f, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def run(smoke=False, out="bench/results", threads=2, repeats=3, n_train=20_000):
    sizes = SMOKE if smoke else FULL
    n_train = 2_000 if smoke else n_train
    Xtr, ytr = _data(n_train, seed=0)
    Xte, _ = _data(max(r for *_, r in sizes), seed=1)
    dtr = xgb.DMatrix(Xtr, label=ytr)
    cpu, cores = _cpu()
    res = dict(benchmark="treeshap", smoke=smoke, goal_speedup=GOAL, threads=threads, repeats=repeats, n_train=n_train,
               machine=dict(cpu=cpu, cores=cores, platform=platform.platform()),
               versions=dict(python=platform.python_version(), xgboost=xgb.__version__, numba=numba.__version__,
                             numpy=np.__version__),
               models=[])
    for n_trees, depth, rows in sizes:
        bst = xgb.train({"objective": "binary:logistic", "max_depth": depth, "eta": 0.1, "nthread": threads, "seed": 0},
                        dtr, n_trees)
        bst.set_param({"nthread": threads})
        X = Xte[:rows]
        dm = xgb.DMatrix(X, nthread=threads)
        t0 = time.perf_counter(); tsm = TreeShapModel.from_booster(bst); compile_s = time.perf_counter() - t0
        tree_shap(bst, X[:64], n_threads=threads)  # warm: numba (cached) and the per-booster model cache
        ref, ours = {}, {}
        t_x, t_o = [], []
        for _ in range(repeats):  # interleaved, so both see the same machine load
            t0 = time.perf_counter(); ref["v"] = bst.predict(dm, pred_contribs=True); t_x.append(time.perf_counter() - t0)
            t0 = time.perf_counter(); ours["v"] = tree_shap(bst, X, n_threads=threads); t_o.append(time.perf_counter() - t0)
        tx, to = statistics.median(t_x), statistics.median(t_o)
        diff = float(np.abs(ours["v"].astype(np.float64) - ref["v"]).max())
        speed = tx / to
        res["models"].append(dict(name=f"{n_trees}x d{depth}", n_trees=n_trees, max_depth=depth, n_features=X.shape[1],
                                  rows=rows, pred_contribs_rows_per_s=rows / tx, tree_shap_rows_per_s=rows / to,
                                  pred_contribs_s=t_x, tree_shap_s=t_o, speedup=speed, max_abs_diff=diff,
                                  compile_s=compile_s, table_mb=tsm.nbytes / 2**20,
                                  passed=bool(speed >= GOAL and diff <= 1e-5)))
        print(f"{n_trees:5d} trees depth {depth}: pred_contribs {rows / tx:10,.0f} rows/s | tree_shap {rows / to:10,.0f} rows/s"
              f" | {speed:5.1f}x | max|diff| {diff:.1e} | compile {compile_s:.2f}s, {tsm.nbytes / 2**20:.0f} MB", flush=True)
    res["passed"] = all(m["passed"] for m in res["models"])
    outp = Path(out); outp.mkdir(parents=True, exist_ok=True)
    (outp / "treeshap.json").write_text(json.dumps(res, indent=2))
    lines = [f"# TreeSHAP throughput: `tree_shap` vs xgboost `pred_contribs`{' (smoke)' if smoke else ''}", "",
             f"{cpu}, {cores} cores, {threads} threads for both, median of {repeats} interleaved repeats; "
             f"python {res['versions']['python']}, xgboost {xgb.__version__}, numba {numba.__version__}, numpy {np.__version__}.",
             "", "| model | rows | pred_contribs rows/s | tree_shap rows/s | speedup | goal | max abs diff | compile s | tables MB | pass |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|:-:|"]
    for m in res["models"]:
        lines.append(f"| {m['name']} | {m['rows']:,} | {m['pred_contribs_rows_per_s']:,.0f} | {m['tree_shap_rows_per_s']:,.0f} | "
                     f"{m['speedup']:.1f}x | {GOAL:.0f}x | {m['max_abs_diff']:.1e} | {m['compile_s']:.2f} | {m['table_mb']:.1f} | "
                     f"{'yes' if m['passed'] else 'no'} |")
    (outp / "treeshap.md").write_text("\n".join(lines) + "\n")
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny models and rows: runs in seconds")
    p.add_argument("--out", default="bench/results", help="folder for treeshap.json and treeshap.md")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    res = run(smoke=a.smoke, out=a.out, threads=a.threads, repeats=a.repeats)
    return 0 if (res["passed"] or a.smoke) else 1


if __name__ == "__main__":
    sys.exit(main())
