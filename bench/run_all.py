"""Run every benchmark (each in its own process) and write a combined table, SUMMARY.md, from their JSON results.

    python bench/run_all.py                          # full size (tens of minutes on 2 cores); results in bench/results
    python bench/run_all.py --smoke --out /tmp/b     # tiny versions of all, to check that nothing has rotted
    python bench/run_all.py --only score train       # some of them; SUMMARY.md still lists the others' latest results
    python bench/run_all.py --summary-only           # just rebuild SUMMARY.md from the JSON files in --out

Every script takes `--smoke` and `--out DIR` and writes NAME.json (+ NAME.md) there. A script that exits non-zero but
wrote fresh JSON missed a goal; one that wrote nothing failed (run_all then exits 1).
"""
import argparse, datetime as dt, json, math, os, platform, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# (name, script, json file, what it measures); optional scripts are skipped when absent
BENCHMARKS = [
    ("treeshap", "bench_treeshap.py", "treeshap.json", "1. SHAP throughput: tree_shap vs xgboost pred_contribs"),
    ("score", "bench_score.py", "score.json", "2. Score + explain the whole platform"),
    ("features", "bench_features.py", "features.json", "3. Point-in-time features: polars vs pandas"),
    ("train", "bench_train.py", "train.json", "4. Training job end to end; papermill overhead"),
    ("synth", "bench_synth.py", "synth.json", "5. Synthetic HRIS generation"),
    ("pay_gap_coverage", "bench_pay_gap_coverage.py", "pay_gap_coverage.json", "Pay-gap CI coverage"),
    ("experiment_checks", "experiment_checks.py", "experiment_checks.json", "Retention experiments: CI coverage, CUPED, power, null, heterogeneity"),
    ("pay_platform", "pay_platform.py", "pay_platform.json", "Per-employer pay-equity reports for the platform (1.5 M employees, 15,000 tenants)"),
    ("monitor_scenarios", "monitor_scenarios.py", "monitor_scenarios.json", "Platform monitoring: mix versus drift, planted scenarios, false alarms over 20 seeds"),
    ("monitor_platform", "monitor_platform.py", "monitor_platform.json", "Platform monitoring at 1.5 M employees / 15,000 companies: time and memory"),
    ("api", "bench_api.py", "api.json", "6. Scoring API: single-employee latency at 100 req/s, 10,000-employee batch"),
    ("gpu", "bench_gpu.py", "gpu.json", "7. SHAP on a GPU: tree_shap(device='cuda') vs the CPU path (only where xgboost sees a GPU)"),
]
# benchmarks that exit 0 without writing anything when the machine cannot run them (no GPU): "skipped", not "failed"
OPTIONAL = {"gpu"}


def _finite(v): return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
def _yn(b): return "—" if b is None else ("yes" if b else "**no**")


def rows_for(name, r):
    "Summary rows (benchmark, measured, goal, pass) for one benchmark's JSON result."
    if name == "treeshap":
        return [(f"SHAP {m['name']}, {r['threads']} threads", f"{m['speedup']:.1f}x ({m['tree_shap_rows_per_s']:,.0f} vs {m['pred_contribs_rows_per_s']:,.0f} rows/s)",
                 f">= {r['goal_speedup']:.0f}x", m["passed"]) for m in r["models"]]
    if name == "score":
        s, q = r["score"], r["ratio"]
        return [(f"Score + explain {s['rows']:,} rows: time", f"{s['seconds']:.1f} s", f"<= {r['goals']['seconds']:.0f} s", r["passed"]["seconds"]),
                (f"Score + explain {s['rows']:,} rows: peak RSS", f"{s['peak_rss_gb']:.2f} GB", f"<= {r['goals']['peak_rss_gb']:.0f} GB", r["passed"]["peak_rss_gb"]),
                (f"drivers() vs predict + pred_contribs ({q['rows']:,} rows)", f"{q['speedup_drivers_vs_pred_contribs']:.1f}x", "(side by side)", None)]
    if name == "features":
        g = r["goal"]
        return [(f"Features for {r['employees']:,} employees: speed-up vs pandas", f"{r['speedup']:.1f}x", f">= {g['speedup_at_least']:.0f}x", r["speedup"] >= g["speedup_at_least"]),
                (f"Features for {r['employees']:,} employees: polars time", f"{r['polars']['seconds']:.1f} s", f"<= {g['polars_seconds_at_most']:.0f} s", r["polars"]["seconds"] <= g["polars_seconds_at_most"]),
                ("Features: outputs agree with pandas", str(r["agree"]), "True", bool(r["agree"]))]
    if name == "train":
        return [(f"Training job, {r['employees']:,} employees", f"{r['measured']['train_seconds']:.0f} s", f"<= {r['goals']['train_seconds']:.0f} s", r["passed"]["train_seconds"]),
                ("Papermill start-up overhead", f"{r['measured']['papermill_overhead_s']:.2f} s", f"<= {r['goals']['papermill_overhead_s']:.0f} s", r["passed"]["papermill_overhead_s"])]
    if name == "synth":
        return [(f"Synthetic HRIS, {r['employees']:,} employees: time", f"{r['seconds']['total']:.0f} s", f"<= {r['goals']['seconds']:.0f} s", r["pass"]["seconds"]),
                (f"Synthetic HRIS, {r['employees']:,} employees: peak RSS", f"{r['peak_rss_gb']:.2f} GB", f"<= {r['goals']['peak_rss_gb']:.0f} GB", r["pass"]["peak_rss_gb"])]
    if name == "gpu":
        return [(f"GPU SHAP {m['name']}: cuda vs CPU ({r['machine']['cores']} cores), {r['machine']['gpu'].get('name', '?')}",
                 f"{m['speedup']['cuda_vs_cpu_all']:.1f}x ({m['rows_per_s']['cuda']:,.0f} vs {m['rows_per_s']['cpu_all']:,.0f} rows/s); "
                 f"1.5 M rows {m['seconds_for_people']['cuda']:.1f} s vs {m['seconds_for_people']['cpu_all']:.0f} s; max diff {m['max_abs_diff']:.0e}",
                 f"diff <= {r['goal_max_abs_diff']:g}", m["passed"]) for m in r["models"]]
    if name == "pay_gap_coverage" and isinstance(r.get("coverage"), dict) and "of" in r["coverage"]:
        c = r["coverage"]
        return [(f"Pay gap: 95% CI covers the planted {r.get('planted_gap_pct', '')}% gap",
                 f"{c.get('ols_planted')} of {c['of']} seeds", str(r.get("goal", "")).split(" (")[0], r.get("pass"))]
    if name == "pay_platform":
        c = r["config"]
        return [(f"Pay-equity reports, {c['employees']:,} employees / {c['tenants']:,} employers: time", f"{r['report_s']:.0f} s ({r['per_tenant_ms']:.0f} ms per employer)", "<= 1200 s", r.get("pass")),
                (f"Pay-equity reports, {c['employees']:,} employees / {c['tenants']:,} employers: peak memory", f"{r['peak_rss_gb_sampled']:.2f} GB", "<= 8 GB", r.get("pass"))]
    if name == "monitor_platform":
        c, t = r["config"], r["times"]
        return [(f"Monitoring {c['employees']:,} employees / {c['tenants']:,} companies (half vs half): time", f"{t['no_drift.total_s']:.0f} s (mix split {t['no_drift.mix_drift_s']:.0f} s, risk shift {t['no_drift.risk_shift_s']:.0f} s)", "<= 600 s", None if r["passed"]["check_s"] is None else r["passed"]["check_s"]),
                (f"Monitoring {c['employees']:,} employees: peak memory; status no drift / mix only", f"{r['peak_rss_gb']:.2f} GB; {r['status']['no_drift']} / {r['status']['mix_only']}", "<= 8 GB; ok / ok", None if r["passed"]["peak_rss_gb"] is None else r["passed"]["peak_rss_gb"] and r["passed"]["status"])]
    if name == "monitor_scenarios":
        m, g, ok, c = r["measured"], r["goals"], r["passed"], r["config"]
        S = c["seeds"]
        return [(f"Monitoring: no drift, {c['employees']:,} employees / {c['tenants']} companies", f"{m['no_drift_warn']} warn, {m['no_drift_alert']} alert of {S}", g["no_drift"], ok["no_drift"]),
                ("Monitoring: customer mix only", f"{m['mix_only_warn']} warn, {m['mix_only_alert']} alert of {S} (pooled: {m['mix_only_pooled_not_ok']} not ok)", g["mix_only"], ok["mix_only"])] + [
                (f"Monitoring: {k} as expected", f"{m[k + '_as_expected']} of {S}", g[k], ok[k]) for k in ("pay_freeze", "overtime", "new_department", "new_location", "ratings_down", "tenure_x1.2",
                                                                                               "exits_as_predicted", "exits_x1.5") if k in g]
    if name == "experiment_checks":
        m, g, ok, c = r["measured"], r["goals"], r["passed"], r["config"]
        return [(f"Experiments: ITT 95% CI covers the planted effect ({c['employees']:,}-employee worlds)", f"{m['itt_covers']} of {c['seeds']} seeds", g["itt_covers"], ok["itt_covers"]),
                ("Experiments: CUPED CI narrower", f"{m['cuped_narrower']} of {c['seeds']}", g["cuped_narrower"], ok["cuped_narrower"]),
                ("Experiments: promised vs simulated power", f"{100 * m['power_promised']:.1f}% vs {100 * m['power_simulated']:.1f}%", g["power_gap_points"], ok["power_gap_points"]),
                ("Experiments: null intervention, false positives", f"{m['null_rejected']} of {c['null_seeds']}; {m['null_sub_rejected']} of {m['null_sub_tests']}", f"{g['null_rejected']}; {g['null_sub_rate']}", None if ok["null_rejected"] is None else ok["null_rejected"] and ok["null_sub_rate"]),
                ("Experiments: buckets with and without a planted effect told apart", f"{m['buckets_told_apart']} of {c['seeds']}", g["buckets_told_apart"], ok["buckets_told_apart"])]
    # any other benchmark: its `measured`, `goals` and `passed`/`pass` entries, if it has them
    meas, goals = r.get("measured") or {}, r.get("goals") or r.get("goal") or {}
    ok = r.get("passed", r.get("pass"))
    if isinstance(meas, dict) and meas:
        return [(f"{name}: {k}", f"{v:.3g}" if _finite(v) else str(v), str(goals.get(k, "")) if isinstance(goals, dict) else "",
                 ok.get(k) if isinstance(ok, dict) else ok) for k, v in meas.items()]
    return [(name, "see " + name + ".md", "", ok if isinstance(ok, bool) else None)]


def summary(out: Path, status: dict, smoke: bool) -> str:
    "SUMMARY.md: one table over every benchmark whose JSON is in `out`."
    lines = [f"# hr_ml benchmarks{' (smoke: tiny sizes, numbers mean nothing)' if smoke else ''}", "",
             f"Written {dt.datetime.now().isoformat(timespec='seconds')} by `bench/run_all.py`; each row comes from `NAME.json` "
             "(details in `NAME.md`). Machine: " + f"{os.cpu_count()} CPUs, {platform.platform()}, python {platform.python_version()}.", "",
             "| benchmark | measured | goal | pass | result from |", "|---|---:|---:|:-:|---|"]
    for name, script, js, title in BENCHMARKS:
        p = out / js
        if not p.exists():
            if status.get(name, "").startswith("skipped"): lines.append(f"| {title} | {status[name]} | | — | |")
            elif name in status: lines.append(f"| {title} | failed: {status[name]} | | **no** | |")
            continue
        try:
            r = json.loads(p.read_text())
            rows = rows_for(name, r)
        except (ValueError, KeyError, TypeError) as e:
            lines.append(f"| {title} | unreadable {js}: {type(e).__name__} {e} | | **no** | |"); continue
        when = dt.datetime.fromtimestamp(p.stat().st_mtime).isoformat(timespec="minutes")
        note = f" ({status[name]})" if status.get(name, "ok") != "ok" else ""
        for b, m, g, ok in rows:
            lines.append(f"| {b} | {m} | {g} | {_yn(ok)} | {js}, {when}{note} |")
    lines += ["", "Ratios are measured side by side in one run (interleaved repeats, medians); absolute seconds depend on the machine and "
              "its load (see each NAME.md for the load average). How to run and read them: `bench/README.md`.", ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny versions (seconds each)")
    p.add_argument("--out", type=Path, default=HERE / "results", help="folder for every NAME.json, NAME.md and SUMMARY.md")
    p.add_argument("--only", nargs="+", choices=[b[0] for b in BENCHMARKS], help="run only these")
    p.add_argument("--summary-only", action="store_true", help="run nothing; rebuild SUMMARY.md from the JSON files")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    status = {}
    for name, script, js, title in ([] if a.summary_only else BENCHMARKS):
        if a.only and name not in a.only: continue
        path = HERE / script
        if not path.exists(): print(f"[{name}] {script} not found: skipped", flush=True); continue
        cmd = [sys.executable, str(path), "--out", str(a.out)] + (["--smoke"] if a.smoke else [])
        print(f"[{name}] {' '.join(cmd[1:])}", flush=True)
        t0 = time.time()
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        fresh = (a.out / js).exists() and (a.out / js).stat().st_mtime >= t0 - 1
        status[name] = "ok" if rc == 0 else (f"goal missed, exit {rc}" if fresh else f"exit {rc}, no {js} written")
        if rc == 0 and not fresh and name in OPTIONAL: status[name] = "skipped: no CUDA device"
        print(f"[{name}] {status[name]} in {time.time() - t0:.0f} s", flush=True)
    (a.out / "SUMMARY.md").write_text(summary(a.out, status, a.smoke))
    print(f"wrote {a.out / 'SUMMARY.md'}")
    failed = [n for n, s in status.items() if "no " in s and "written" in s]
    if failed: print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
