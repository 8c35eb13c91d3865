"""Platform monitoring at platform size (issue 18): time and memory of telling customer mix from drift for 1.5 M employees
and 15,000 companies, and the status on no drift and on a new customer mix.

    python bench/monitor_platform.py [--employees 1500000] [--tenants 15000] [--out DIR] [--smoke]

A 30-tree model is trained on a 20,000-employee world of the same generator (the features are the same at any size). The
platform is `hr_ml.synth.generate(employees, tenants)` (timed apart); everyone employed at 2025-12-31 is split at random into
the reference (`reference_profile(..., tenants=...)`, timed) and the new data, judged as `run_monitor` judges it
(`mix_drift`, `feature_drift(..., mix=)`, `risk_shift(..., tenants=)`, SHAP values and `shap_shift`, `monitor_status`, each
timed; the profile keeps mean SHAP values, as the training job's does). Then the same with a
customer mix: the reference holds the first 60% of companies, the new data the last 60%.
Peak memory is the process's maximum resident set (ru_maxrss). Goal: the whole check (profile excluded, it is written once
at training) within 10 minutes and 8 GB on 2 cores, and ok on both.

Writes monitor_platform.json and monitor_platform.md into --out (default bench/results). `--smoke`: 3,000 employees, no goals.
"""
import argparse, json, os, platform, resource, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def rss_gb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def check(model, prof, B, times, tag):
    from hr_ml import features as F, monitor as M
    X = B.select(F.FEATURES)
    t = time.perf_counter(); risk = model.predict_risk(X); times[f"{tag}.score_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter(); mix = M.mix_drift(prof, X, risk, B["tenant_id"]); times[f"{tag}.mix_drift_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter(); d = M.feature_drift(prof, X, risk, mix=mix); times[f"{tag}.feature_drift_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter(); sh = M.risk_shift(prof, model, X, risk, tenants=B["tenant_id"]); times[f"{tag}.risk_shift_s"] = round(time.perf_counter() - t, 1)
    from hr_ml.explain import contributions
    t = time.perf_counter(); sh = sh.join(M.shap_shift(prof, contributions(model, X)[0], B["tenant_id"]), on="feature"); times[f"{tag}.shap_shift_s"] = round(time.perf_counter() - t, 1)
    st = M.monitor_status(d, shift=sh, mix=mix)
    times[f"{tag}.total_s"] = round(sum(v for k, v in times.items() if k.startswith(tag + ".") and k != f"{tag}.total_s"), 1)
    print(f"{tag}: {st['status']} in {times[f'{tag}.total_s']} s; " + " | ".join(r for r in st["reasons"] if not r.startswith("info: customer")), flush=True)
    return st, mix


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--employees", type=int, default=1_500_000)
    ap.add_argument("--tenants", type=int, default=15_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args(argv)
    if a.smoke: a.employees, a.tenants = 3000, 30
    import numpy as np, polars as pl
    from hr_ml import features as F, monitor as M
    from hr_ml.synth import generate
    from monitor_scenarios import world, END
    _, model = world(a.seed, 3000 if a.smoke else 20000, 20 if a.smoke else 100)
    t = time.perf_counter(); tables, _ = generate(a.employees, a.tenants, seed=a.seed + 1); gen_s = time.perf_counter() - t
    t = time.perf_counter(); cur = F.build_features(tables, END); feat_s = time.perf_counter() - t
    del tables
    print(f"platform: {a.employees:,} employees, {a.tenants:,} companies generated in {gen_s:.0f} s; {cur.height:,} employed at {END} ({feat_s:.0f} s)", flush=True)
    h = pl.Series(np.random.default_rng(a.seed).permutation(cur.height) < cur.height // 2)
    A, B = cur.filter(h), cur.filter(~h)
    times = {}
    t = time.perf_counter()
    from hr_ml.explain import contributions
    prof = M.reference_profile(A.select(F.FEATURES), model.predict_risk(A.select(F.FEATURES)), model.feature_names_, as_of=END, tenants=A["tenant_id"],
                               shap=contributions(model, A.select(F.FEATURES))[0])
    times["profile_s"] = round(time.perf_counter() - t, 1)
    times["profile_mb"] = round(len(json.dumps(prof)) / 1e6, 1)
    st0, mix0 = check(model, prof, B, times, "no_drift")
    tids = sorted(cur["tenant_id"].unique().to_list()); cut = int(round(0.6 * len(tids)))
    A2, B2 = A.filter(pl.col("tenant_id").is_in(tids[:cut])), B.filter(pl.col("tenant_id").is_in(tids[-cut:]))
    prof2 = M.reference_profile(A2.select(F.FEATURES), model.predict_risk(A2.select(F.FEATURES)), model.feature_names_, as_of=END, tenants=A2["tenant_id"],
                                shap=contributions(model, A2.select(F.FEATURES))[0])
    st1, mix1 = check(model, prof2, B2, times, "mix_only")
    res = {"smoke": a.smoke, "config": {"employees": a.employees, "tenants": a.tenants, "seed": a.seed, "employed": cur.height, "new_rows": B.height},
           "machine": {"cores": os.cpu_count(), "python": platform.python_version()}, "generate_s": round(gen_s, 1), "features_s": round(feat_s, 1),
           "times": times, "peak_rss_gb": round(rss_gb(), 2),
           "status": {"no_drift": st0["status"], "mix_only": st1["status"]},
           "mix_only": {k: mix1["summary"][k] for k in ("matched", "joined", "left", "share_matched", "points_mix", "points_within", "test")},
           "companies_in_both": mix0["summary"]["matched"],
           "goals": {"check_s": 600, "peak_rss_gb": 8, "status": "ok on both"}}
    ok = {"check_s": times["no_drift.total_s"] <= 600, "peak_rss_gb": res["peak_rss_gb"] <= 8, "status": st0["status"] == "ok" and st1["status"] == "ok"}
    res["passed"] = {k: None for k in ok} if a.smoke else ok
    res["pass"] = None if a.smoke else all(ok.values())
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "monitor_platform.json").write_text(json.dumps(res, indent=2) + "\n")
    md = ["# Platform monitoring at platform size (issue 18)", "",
          f"`python bench/monitor_platform.py{' --smoke' if a.smoke else ''}`: {a.employees:,} employees and {a.tenants:,} companies generated in {gen_s:.0f} s "
          f"({cur.height:,} employed at {END}, features {feat_s:.0f} s); half as the reference, half as the new data ({B.height:,} rows); "
          f"{res['machine']['cores']} cores, Python {res['machine']['python']}.", "",
          "| step | no drift | customer mix only |", "|---|---:|---:|"]
    for s in ("score_s", "mix_drift_s", "feature_drift_s", "risk_shift_s", "shap_shift_s", "total_s"):
        md.append(f"| {s[:-2].replace('_', ' ')} (s) | {times['no_drift.' + s]} | {times['mix_only.' + s]} |")
    md += [f"| status | {st0['status']} | {st1['status']} |", "",
           f"Reference profile with {mix0['summary']['matched']:,} companies in both: {times['profile_s']} s, {times['profile_mb']} MB of JSON. "
           f"Peak memory {res['peak_rss_gb']} GB (goal ≤ 8). Mix only: {res['mix_only']['matched']:,} companies in both, {res['mix_only']['joined']:,} joined, "
           f"{res['mix_only']['left']:,} left; test {res['mix_only']['test']}. Pass: {res['pass']}."]
    (a.out / "monitor_platform.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0 if a.smoke or res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
