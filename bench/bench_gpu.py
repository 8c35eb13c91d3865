"""Benchmark 7: SHAP on a GPU: tree_shap(device="cuda") (xgboost's GPUTreeShap) vs the CPU path, side by side.

    python bench/bench_gpu.py                    # full run where xgboost sees a CUDA device (< 4 minutes on 16 cores + H100)
    python bench/bench_gpu.py --quick            # 300,000 rows, 2 repeats (about a minute)
    python bench/bench_gpu.py --rows 500000      # rows for the 100x d3 and 300x d4 models (1000x d6 gets a third)
    python bench/bench_gpu.py --smoke --out /tmp/x

Same synthetic task and models as bench_treeshap.py (40 features, 5% missing; 100x d3, 300x d4, 1000x d6). Contenders,
interleaved, median of the repeats: the GPU call as a user makes it (DMatrix, copy to the device, GPUTreeShap, copy back;
after one warm-up call), tree_shap on the CPU with all cores and with 2 threads, and xgboost's pred_contribs on the CPU with
all cores. The GPU explains every row; each CPU contender explains as many rows as fit in about --target-s seconds (found
from a short calibration), reported as rows/s and extrapolated to the time for 1.5 M employees.

Without a CUDA device it prints one line and exits 0, writing nothing (so run_all.py can include it anywhere).
Writes gpu.json and gpu.md to --out (default bench/results). Imports only numpy, numba, xgboost and hr_ml.treeshap.
"""
import argparse, json, os, platform, statistics, subprocess, sys, time
from pathlib import Path

import numba
import numpy as np
import xgboost as xgb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_treeshap import _cpu, _data  # the same synthetic task as benchmark 1

from hr_ml.schema import HRDataError
from hr_ml.treeshap import _gpu_model, check_device, tree_shap

GOAL_DIFF = 1e-4     # max |cuda - cpu|: GPUTreeShap adds up in float32
PEOPLE = 1_500_000   # "time to explain the whole platform"
FULL = [(100, 3, 1.0), (300, 4, 1.0), (1000, 6, 1 / 3)]   # (trees, depth, share of --rows the GPU explains)
SMOKE = [(10, 3, 1.0), (20, 4, 1.0), (30, 6, 1.0)]


def _gpu_info():
    "Name, memory and driver of GPU 0 (nvidia-smi, else cupy)."
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode == 0 and r.stdout.strip():
            name, mem, drv = [x.strip() for x in r.stdout.strip().splitlines()[0].split(",")][:3]
            return dict(name=name, memory=mem, driver=drv)
    except (OSError, subprocess.SubprocessError, ValueError): pass
    try:
        import cupy
        p = cupy.cuda.runtime.getDeviceProperties(0)
        return dict(name=p["name"].decode(), memory=f"{p['totalGlobalMem'] / 2**30:.0f} GiB", driver=str(cupy.cuda.runtime.driverGetVersion()))
    except Exception: return dict(name="unknown")


def _cores():
    "CPUs this process may use: its affinity, capped by a cgroup CPU quota (containers), and what each says."
    aff = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = None
    try:
        q, per = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if q != "max": quota = max(1, int(int(q) / int(per)))
    except (OSError, ValueError): pass
    return min(aff, quota or aff), dict(cpu_count=os.cpu_count(), affinity=aff, cgroup_quota=quota,
                                        numba_threads=numba.config.NUMBA_NUM_THREADS)


def _rate(f, X, cap, min_s=0.25):
    "Rows/s of `f` on growing slices of `X` until one call takes `min_s` (or `cap` rows)."
    n = min(256, cap)
    while True:
        t0 = time.perf_counter(); f(X[:n]); dt = time.perf_counter() - t0
        if dt >= min_s or n >= cap: return n / max(dt, 1e-9)
        n = min(cap, n * 4)


def run(smoke=False, out="bench/results", rows=1_500_000, repeats=3, target_s=3.0, n_train=20_000):
    sizes = SMOKE if smoke else FULL
    if smoke: rows, repeats, target_s, n_train = 20_000, 2, 0.2, 2_000
    load0 = os.getloadavg()[0]
    Xtr, ytr = _data(n_train, seed=0)
    dtr = xgb.DMatrix(Xtr, label=ytr)
    Xall, _ = _data(rows, seed=1)
    cpu = _cpu()[0]
    cores, cpus = _cores()
    bi = xgb.build_info()
    res = dict(benchmark="gpu", smoke=smoke, goal_max_abs_diff=GOAL_DIFF, rows=rows, repeats=repeats, target_s=target_s,
               n_train=n_train, people=PEOPLE,
               machine=dict(cpu=cpu, cores=cores, cpus=cpus, gpu=_gpu_info(), platform=platform.platform()),
               versions=dict(python=platform.python_version(), xgboost=xgb.__version__, numba=numba.__version__,
                             numpy=np.__version__, xgboost_cuda=".".join(map(str, bi.get("CUDA_VERSION") or []))),
               load_avg_1m=[round(load0, 2)], models=[])
    for n_trees, depth, share in sizes:
        bst = xgb.train({"objective": "binary:logistic", "max_depth": depth, "eta": 0.1, "nthread": cores, "seed": 0}, dtr, n_trees)
        bst.set_param({"nthread": cores})
        n_gpu = max(1_000, int(rows * share))
        X = Xall[:n_gpu]
        # warm-ups: numba and the compiled tables; the GPU copy of the booster and the CUDA context
        tree_shap(bst, X[:64])
        t0 = time.perf_counter(); tree_shap(bst, X, device="cuda"); warm_s = time.perf_counter() - t0
        gbst = _gpu_model(bst)[0]  # the GPU copy tree_shap uses, to time xgboost's part alone
        dm_all = xgb.DMatrix(X, nthread=cores)
        fns = {"cuda": lambda A: tree_shap(bst, A, device="cuda"),
               "cuda_dmatrix_prebuilt": lambda A: gbst.predict(dm_all if len(A) == len(X) else xgb.DMatrix(A), pred_contribs=True),
               "cpu_all": lambda A: tree_shap(bst, A, n_threads=cores),
               "cpu_2": lambda A: tree_shap(bst, A, n_threads=2),
               "xgb_cpu": lambda A: bst.predict(xgb.DMatrix(A, nthread=cores), pred_contribs=True)}
        n = {"cuda": n_gpu, "cuda_dmatrix_prebuilt": n_gpu}
        for k in ("cpu_all", "cpu_2", "xgb_cpu"):  # as many rows as fit in about target_s
            n[k] = int(min(n_gpu, max(500, _rate(fns[k], X, n_gpu) * target_s)))
        ts = {k: [] for k in fns}
        keep = {}
        for _ in range(repeats):  # interleaved, so all see the same machine load
            for k, f in fns.items():
                t0 = time.perf_counter(); keep[k] = f(X[:n[k]]); ts[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in ts.items()}
        rate = {k: n[k] / med[k] for k in fns}
        m = min(n["cpu_all"], n["cuda"])
        diff = float(np.abs(keep["cuda"][:m].astype(np.float64) - keep["cpu_all"][:m]).max())
        diff_xgb = float(np.abs(keep["cuda"][:n["xgb_cpu"]].astype(np.float64) - keep["xgb_cpu"]).max())
        row = dict(name=f"{n_trees}x d{depth}", n_trees=n_trees, max_depth=depth, n_features=X.shape[1], rows=n,
                   rows_per_s=rate, seconds=ts, median_s=med, warmup_cuda_s=warm_s,
                   seconds_for_people={k: PEOPLE / rate[k] for k in fns},
                   speedup=dict(cuda_vs_cpu_all=rate["cuda"] / rate["cpu_all"], cuda_vs_cpu_2=rate["cuda"] / rate["cpu_2"],
                                cuda_vs_xgb_cpu=rate["cuda"] / rate["xgb_cpu"], cpu_all_vs_xgb_cpu=rate["cpu_all"] / rate["xgb_cpu"]),
                   max_abs_diff=diff, max_abs_diff_vs_xgb_cpu=diff_xgb, passed=bool(diff <= GOAL_DIFF))
        res["models"].append(row)
        print(f"{row['name']:>9}: cuda {rate['cuda']:12,.0f} rows/s ({n_gpu:,} rows) | cpu {cores} cores {rate['cpu_all']:10,.0f} | "
              f"cpu 2 thr {rate['cpu_2']:9,.0f} | xgb cpu {rate['xgb_cpu']:8,.0f} | cuda/cpu {row['speedup']['cuda_vs_cpu_all']:5.1f}x | "
              f"max|diff| {diff:.1e} | 1.5 M: {PEOPLE / rate['cuda']:.1f} s vs {PEOPLE / rate['cpu_all']:.0f} s", flush=True)
        del keep, dm_all, gbst
    res["load_avg_1m"].append(round(os.getloadavg()[0], 2))
    res["passed"] = all(m["passed"] for m in res["models"])
    _write(res, Path(out))
    return res


def _write(res, outp):
    outp.mkdir(parents=True, exist_ok=True)
    (outp / "gpu.json").write_text(json.dumps(res, indent=2))
    mc, v, g = res["machine"], res["versions"], res["machine"]["gpu"]
    t = lambda s: f"{s:,.1f} s" if s < 100 else f"{s / 60:,.1f} min"
    x = lambda r: f"{r:.1f}x" if r < 100 else f"{r:,.0f}x"
    lines = [f"# SHAP on a GPU: `tree_shap(device=\"cuda\")` vs the CPU path{' (smoke)' if res['smoke'] else ''}", "",
             f"{g.get('name')} ({g.get('memory', '?')}, driver {g.get('driver', '?')}); {mc['cpu']}, {mc['cores']} cores; "
             f"python {v['python']}, xgboost {v['xgboost']} (CUDA {v['xgboost_cuda']}), numba {v['numba']}, numpy {v['numpy']}; "
             f"load average {res['load_avg_1m'][0]} at start, {res['load_avg_1m'][-1]} at end.", "",
             f"Median of {res['repeats']} interleaved repeats. **cuda**: the user-facing call on all rows (DMatrix, copy to the GPU, "
             f"GPUTreeShap, copy back), after one warm-up; *DMatrix prebuilt*: xgboost's part alone (its `predict` on a DMatrix made "
             f"beforehand: copy to the GPU, GPUTreeShap, copy back). **cpu**: `tree_shap` with all {mc['cores']} cores, and with 2 threads; "
             f"**xgb cpu**: xgboost's `pred_contribs` with all cores (DMatrix included). CPU contenders explain the first rows that "
             f"fit in about {res['target_s']:g} s. The time for {res['people']:,} employees is {res['people']:,} ÷ rows/s (extrapolated "
             f"where fewer rows were explained).", "",
             "| model | rows (cuda / cpu / 2 thr / xgb) | cuda rows/s | cuda rows/s, DMatrix prebuilt | cpu rows/s | cpu 2 thr rows/s | xgb cpu rows/s | "
             "cuda ÷ cpu | cuda ÷ 2 thr | cuda ÷ xgb cpu | 1.5 M: cuda | 1.5 M: cpu | 1.5 M: 2 thr | 1.5 M: xgb cpu | "
             "max \\|cuda − cpu\\| | pass (≤ 1e-4) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|"]
    for m in res["models"]:
        n, r, s, p = m["rows"], m["rows_per_s"], m["speedup"], m["seconds_for_people"]
        lines.append(f"| {m['name']} | {n['cuda']:,} / {n['cpu_all']:,} / {n['cpu_2']:,} / {n['xgb_cpu']:,} | {r['cuda']:,.0f} | {r['cuda_dmatrix_prebuilt']:,.0f} | "
                     f"{r['cpu_all']:,.0f} | {r['cpu_2']:,.0f} | {r['xgb_cpu']:,.0f} | {x(s['cuda_vs_cpu_all'])} | "
                     f"{x(s['cuda_vs_cpu_2'])} | {x(s['cuda_vs_xgb_cpu'])} | {t(p['cuda'])} | {t(p['cpu_all'])} | "
                     f"{t(p['cpu_2'])} | {t(p['xgb_cpu'])} | {m['max_abs_diff']:.1e} | {'yes' if m['passed'] else 'no'} |")
    lines += ["", "The first GPU call of each model (CUDA start-up, copying the booster to the device) took "
              + ", ".join(f"{m['name']} {m['warmup_cuda_s']:.1f} s" for m in res["models"]) + "."]
    (outp / "gpu.md").write_text("\n".join(lines) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny models and rows: seconds")
    p.add_argument("--quick", action="store_true", help="300,000 rows, 2 repeats, 1.5 s per CPU contender")
    p.add_argument("--rows", type=int, default=None, help="rows the GPU explains for 100x d3 and 300x d4 (1000x d6: a third); default 1,500,000")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--target-s", type=float, default=None, help="seconds each CPU contender's timed call should take (default 3)")
    p.add_argument("--out", default="bench/results", help="folder for gpu.json and gpu.md")
    a = p.parse_args(argv)
    try: check_device("cuda")
    except HRDataError as e:
        print(f"bench_gpu: skipped, nothing written: {e}", flush=True)
        return 0
    rows = a.rows or (300_000 if a.quick else 1_500_000)
    res = run(smoke=a.smoke, out=a.out, rows=rows, repeats=a.repeats or (2 if a.quick else 3),
              target_s=a.target_s or (1.5 if a.quick else 3.0))
    return 0 if (res["passed"] or a.smoke) else 1


if __name__ == "__main__":
    sys.exit(main())
