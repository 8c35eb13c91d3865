"""Benchmark `hr_ml.synth`: generate + write a synthetic HRIS and record wall time and peak memory.

    python bench/bench_synth.py [--employees 1500000] [--tenants 15000] [--seed 0] [--data-out DIR] [--out RESULTS]
    python bench/bench_synth.py --smoke --out /tmp/b     # 2,000 employees, seconds

Writes synth.json and synth.md to --out (default bench/results; goals: <= 120 s and <= 8 GB for 1.5 M employees).
"""
import argparse, json, os, platform, resource, shutil, sys, tempfile, time
from pathlib import Path

GOAL_SECONDS, GOAL_RSS_GB = 120.0, 8.0
HERE = Path(__file__).resolve().parent

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--employees", type=int, default=None, help="default 1,500,000 (smoke 2,000)")
    ap.add_argument("--tenants", type=int, default=None, help="default 15,000 (smoke 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: seconds")
    ap.add_argument("--data-out", dest="data_out", type=Path, default=None, help="folder for the synthetic HRIS (default: a temporary folder, removed)")
    ap.add_argument("--out", "--results", dest="results", type=Path, default=HERE / "results", help="folder for synth.json and synth.md")
    a = ap.parse_args()
    a.employees = a.employees or (2_000 if a.smoke else 1_500_000)
    a.tenants = a.tenants or (10 if a.smoke else 15_000)

    import numpy as np, polars as pl
    from hr_ml import __version__
    from hr_ml.synth import generate, write_synth
    tmp = None
    out = a.data_out or Path(tmp := tempfile.mkdtemp(prefix="bench_synth_")) / "synth"
    t0 = time.perf_counter()
    tables, truth = generate(n_employees=a.employees, n_tenants=a.tenants, seed=a.seed, progress=sys.stderr.isatty())
    t1 = time.perf_counter()
    write_synth(tables, truth, out)
    t2 = time.perf_counter()
    size_mb = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20            # Linux: kilobytes
    if tmp: shutil.rmtree(tmp, ignore_errors=True)

    seconds = t2 - t0
    res = {
        "benchmark": "synth", "smoke": a.smoke, "employees": a.employees, "tenants": a.tenants, "seed": a.seed,
        "rows": {k: v.height for k, v in tables.items()},
        "seconds": {"generate": round(t1 - t0, 2), "write": round(t2 - t1, 2), "total": round(seconds, 2)},
        "peak_rss_gb": round(rss_gb, 3), "output_mb": round(size_mb, 1),
        "oracle_auc": truth["oracle"]["auc"],
        "oracle": {k: truth["oracle"].get(k) for k in ("auc", "auc_frozen_hazard", "n", "n_scored", "sampled", "replays")},
        "goals": {"seconds": GOAL_SECONDS, "peak_rss_gb": GOAL_RSS_GB},
        "pass": {"seconds": seconds <= GOAL_SECONDS, "peak_rss_gb": rss_gb <= GOAL_RSS_GB},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "polars": pl.__version__, "numpy": np.__version__, "hr_ml": __version__,
                    "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
    }
    a.results.mkdir(parents=True, exist_ok=True)
    (a.results / "synth.json").write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    ok = lambda b: "pass" if b else "FAIL"
    md = ["# synth benchmark", "",
          "`python bench/bench_synth.py --employees N --tenants T`: `generate` + `write_synth` in one process.", "",
          "| employees | tenants | generate s | write s | total s (goal 120) | peak RSS GB (goal 8) | rows (all tables) | cpus | load avg |",
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
          f"| {a.employees:,} | {a.tenants:,} | {t1 - t0:.1f} | {t2 - t1:.1f} | {seconds:.1f} ({ok(res['pass']['seconds'])}) "
          f"| {rss_gb:.2f} ({ok(res['pass']['peak_rss_gb'])}) | {sum(res['rows'].values()):,} | {os.cpu_count()} "
          f"| {res['machine']['load_avg_1m_at_end']} |", "",
          "Rows per table: " + ", ".join(f"{k} {v:,}" for k, v in res["rows"].items()) + ".", "",
          f"The time includes the true oracle: the label window replayed {res['oracle']['replays']} times from the as-of state"
          + (f" for a sample of whole tenants ({res['oracle']['n_scored']:,} of {res['oracle']['n']:,} employees at the as-of date)"
             if res['oracle']['sampled'] else f" for all {res['oracle']['n']:,} employees at the as-of date")
          + f"; oracle AUC {res['oracle']['auc']:.3f} (frozen hazard: {res['oracle']['auc_frozen_hazard']:.3f}).", ""]
    (a.results / "synth.md").write_text("\n".join(md))
    print(json.dumps(res, indent=2, sort_keys=True))
    return 0 if all(res["pass"].values()) or a.smoke else 1

if __name__ == "__main__": sys.exit(main())
