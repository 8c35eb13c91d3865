"""Retention experiments (issue 16, section 6): do the design's promises and the analysis's CIs hold on the synthetic world?

    python bench/experiment_checks.py [--seeds 20] [--employees 40000] [--tenants 200] [--null-employees 20000] [--out DIR] [--smoke]

Every world is `hr_ml.synth.generate(..., intervention=...)`: a randomised employee-level intervention from 2024-07-01, 12-month
horizon (complete by the end date 2025-12-31), assignment stratified by tenant x true-risk bucket; the outcome is a voluntary
exit within the horizon (`hr_ml.effects.outcomes`), the truth is `truth["intervention"]` (exact, from the simulated hazards).

(a) coverage: the 95% CI of the ITT effect (`hr_ml.effects.itt`, OLS with HC1 SE) covers the planted ITT effect in >= 18 of 20
    seeds (a pay review: planted where pay is below peers, in the medium and high buckets); CUPED (`hr_ml.effects.cuped`,
    regression adjustment on the pre-period risk) gives a narrower CI in every seed and covers as well.
(b) power: what `hr_ml.experiment.power_proportions` promises (the planted effect and control exit rate, the arms' sizes) vs the
    share of simulated experiments that find the effect (p < 0.05). The simulated experiments are disjoint groups of whole tenants
    of each planted world (randomisation is stratified within tenants, so every group is itself a stratified experiment), split
    2, 4 and 8 ways: designs of about 10,000, 5,000 and 2,500 people. Goal: pooled |promised - simulated| <= 5 points.
(d) heterogeneity: in each planted world, `hr_ml.effects.by_group` by risk bucket (Bonferroni CIs): the low bucket (no planted
    effect) has a CI that contains 0 and the medium and high buckets (planted) have CIs below 0, in >= 18 of 20 seeds.
(c) null: a placebo intervention (kind='null'): the ITT test rejects at p < 0.05 in <= 3 of 20 worlds (the binomial 95% bound
    for a 5% rate), and over 5 disjoint tenant groups per world (100 tests) the false-positive rate's 95% CI contains 5%.

Writes experiment_checks.json and experiment_checks.md into --out (default bench/results). `--smoke`: 2 tiny seeds, no goals.
"""
import argparse, json, os, platform, sys, time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
START, HORIZON, ALPHA = date(2024, 7, 1), 12, 0.05
SPLITS = (2, 4, 8)


def world(seed:int, employees:int, tenants:int, kind:str="pay_review"):
    "A synthetic HRIS with a planted intervention: (outcomes frame, truth['intervention'])."
    from hr_ml.synth import generate
    from hr_ml.effects import check_assignments, outcomes
    tables, truth = generate(employees, tenants, seed=seed, intervention=dict(start=START, kind=kind, horizon_months=HORIZON))
    o = outcomes(check_assignments(tables["interventions"]), tables, horizon_months=HORIZON)
    return o, truth["intervention"]


def tenant_groups(o, k:int):
    "Tenants split into `k` groups of about equal size (largest tenant first, into the smallest group)."
    import numpy as np
    sizes = o.group_by("tenant_id").len().sort(["len", "tenant_id"], descending=[True, False])
    load, groups = np.zeros(k), [[] for _ in range(k)]
    for t, n in sizes.iter_rows():
        g = int(np.argmin(load)); groups[g].append(t); load[g] += n
    return groups


def sub_experiments(o, ti:dict, splits=SPLITS):
    "Each split of the world into tenant groups: the promised power for each group's arms and whether its ITT test rejects."
    import polars as pl
    from hr_ml.effects import itt
    from hr_ml.experiment import power_proportions
    p0, eff = ti["effects"]["voluntary"]["control_risk"]["ate"], ti["ate"]
    rows = []
    for k in splits:
        for g in tenant_groups(o, k):
            s = o.filter(pl.col("tenant_id").is_in(g))
            r = itt(s)
            nt, nc = r["n_treatment"], r["n_control"]
            promised = power_proportions(p0, eff, nt, alpha=ALPHA, ratio=nc / nt) if eff != 0 else ALPHA
            rows.append(dict(split=k, n=nt + nc, promised=round(promised, 4), rejected=bool(r["p_value"] < ALPHA),
                             effect=round(r["effect"], 5), p_value=round(r["p_value"], 5)))
    return rows


def planted_check(seed:int, employees:int, tenants:int, splits=SPLITS)->dict:
    "Checks (a), (b) and (d) on one planted world."
    from hr_ml.effects import itt, cuped, by_group
    t = time.perf_counter()
    o, ti = world(seed, employees, tenants, "pay_review")
    r, c = itt(o), cuped(o, covariates=("risk",))
    truth = ti["ate"]
    g = by_group(o, "bucket", alpha=ALPHA)
    tb = ti["effects"]["voluntary"]["itt"]["bucket"]
    bucket = {row["group"]: dict(effect=round(row["effect"], 5), ci=[round(row["ci_low"], 5), round(row["ci_high"], 5)], planted=tb[row["group"]],
                                 covers=bool(row["ci_low"] <= tb[row["group"]] <= row["ci_high"]))
              for row in g["groups"].iter_rows(named=True) if row["effect"] is not None}
    apart = ("low" in bucket and bucket["low"]["ci"][0] <= 0 <= bucket["low"]["ci"][1]
             and all(b in bucket and bucket[b]["ci"][1] < 0 for b in ("medium", "high")))
    return dict(seed=seed, n=r["n_treatment"] + r["n_control"], planted=truth, control_rate=ti["effects"]["voluntary"]["control_risk"]["ate"],
                itt=dict(effect=round(r["effect"], 5), ci=[round(r["ci_low"], 5), round(r["ci_high"], 5)], covers=bool(r["ci_low"] <= truth <= r["ci_high"])),
                cuped=dict(effect=round(c["effect"], 5), ci=[round(c["ci_low"], 5), round(c["ci_high"], 5)], covers=bool(c["ci_low"] <= truth <= c["ci_high"]),
                           variance_reduction=round(c["variance_reduction"], 4)),
                cuped_narrower=bool(c["ci_high"] - c["ci_low"] < r["ci_high"] - r["ci_low"]),
                buckets=bucket, told_apart=bool(apart), heterogeneity_p=None if g["heterogeneity"] is None else g["heterogeneity"]["p_value"],
                subs=sub_experiments(o, ti, splits), seconds=round(time.perf_counter() - t, 1))


def null_check(seed:int, employees:int, tenants:int, k:int=5)->dict:
    "Check (c) on one placebo world: the whole experiment and `k` disjoint tenant groups."
    import polars as pl
    from hr_ml.effects import itt
    t = time.perf_counter()
    o, ti = world(seed, employees, tenants, "null")
    assert ti["ate"] == 0
    r = itt(o)
    subs = [bool(itt(o.filter(pl.col("tenant_id").is_in(g)))["p_value"] < ALPHA) for g in tenant_groups(o, k)]
    return dict(seed=seed, n=r["n_treatment"] + r["n_control"], effect=round(r["effect"], 5), p_value=round(r["p_value"], 5),
                rejected=bool(r["p_value"] < ALPHA), subs_rejected=subs, seconds=round(time.perf_counter() - t, 1))


def summarise(planted:list, null:list)->dict:
    "Counts, rates and goals over the seeds."
    import numpy as np
    from scipy.stats import binomtest
    S, N = len(planted), len(null)
    subs = [s for p in planted for s in p["subs"]]
    per_split = {}
    for k in sorted({s["split"] for s in subs}):
        ss = [s for s in subs if s["split"] == k]
        sim = float(np.mean([s["rejected"] for s in ss]))
        per_split[str(k)] = dict(experiments=len(ss), mean_n=round(float(np.mean([s["n"] for s in ss]))), promised=round(float(np.mean([s["promised"] for s in ss])), 4),
                                 simulated=round(sim, 4), simulated_se=round(float(np.sqrt(sim * (1 - sim) / len(ss))), 4))
    promised, simulated = float(np.mean([s["promised"] for s in subs])), float(np.mean([s["rejected"] for s in subs]))
    fp_sub = [x for n in null for x in n["subs_rejected"]]
    ci = binomtest(sum(fp_sub), len(fp_sub)).proportion_ci(0.95) if fp_sub else None
    width = lambda p, k: p[k]["ci"][1] - p[k]["ci"][0]
    m = dict(itt_covers=sum(p["itt"]["covers"] for p in planted), cuped_covers=sum(p["cuped"]["covers"] for p in planted),
             cuped_narrower=sum(p["cuped_narrower"] for p in planted),
             mean_ci_width_itt=round(float(np.mean([width(p, "itt") for p in planted])), 5),
             mean_ci_width_cuped=round(float(np.mean([width(p, "cuped") for p in planted])), 5),
             mean_variance_reduction=round(float(np.mean([p["cuped"]["variance_reduction"] for p in planted])), 4),
             mean_planted_ate=round(float(np.mean([p["planted"] for p in planted])), 5),
             mean_estimate=round(float(np.mean([p["itt"]["effect"] for p in planted])), 5),
             power_promised=round(promised, 4), power_simulated=round(simulated, 4), power_gap_points=round(100 * (simulated - promised), 2),
             power_experiments=len(subs),
             null_rejected=sum(n["rejected"] for n in null), null_sub_rejected=sum(fp_sub), null_sub_tests=len(fp_sub),
             null_sub_rate=round(sum(fp_sub) / len(fp_sub), 4) if fp_sub else None,
             null_sub_rate_ci95=[round(ci.low, 4), round(ci.high, 4)] if ci else None,
             buckets_told_apart=sum(p["told_apart"] for p in planted),
             bucket_ci_covers={b: sum(p["buckets"].get(b, {}).get("covers", False) for p in planted) for b in ("low", "medium", "high")},
             heterogeneity_p_below_alpha=sum((p["heterogeneity_p"] or 1) < ALPHA for p in planted))
    need = lambda g: int(np.ceil(g / 20 * S))
    goals = dict(itt_covers=f">= {need(18)} of {S}", cuped_narrower=f"{S} of {S}", power_gap_points="gap within ±5 points",
                 null_rejected=f"<= {max(1, int(np.ceil(3 / 20 * N)))} of {N}", null_sub_rate="95% CI contains 0.05",
                 buckets_told_apart=f">= {need(18)} of {S}")
    passed = dict(itt_covers=m["itt_covers"] >= need(18), cuped_narrower=m["cuped_narrower"] == S, power_gap_points=abs(m["power_gap_points"]) <= 5,
                  null_rejected=m["null_rejected"] <= max(1, int(np.ceil(3 / 20 * N))),
                  null_sub_rate=bool(ci and ci.low <= ALPHA <= ci.high), buckets_told_apart=m["buckets_told_apart"] >= need(18))
    return dict(measured=m, goals=goals, passed=passed, power_by_split=per_split)


def markdown(res:dict)->str:
    m, g, p, c = res["measured"], res["goals"], res["passed"], res["config"]
    yn = lambda b: "—" if b is None else ("yes" if b else "**no**")
    pp = lambda v: f"{100 * v:+.2f}"
    L = ["# Retention-experiment checks", "",
         f"`python bench/experiment_checks.py{' --smoke' if res['smoke'] else ''}`: {c['seeds']} synthetic HRIS of {c['employees']:,} employees "
         f"({c['tenants']} tenants; about {res['mean_assigned']:,} employed at the start and randomised 50/50 within tenant x risk bucket) "
         f"with a planted pay review from {c['start']}, and {c['null_seeds']} of {c['null_employees']:,} employees with a placebo. "
         f"Outcome: voluntary exit within {c['horizon_months']} months; truth: `truth['intervention']` (exact, from the simulated hazards).", "",
         "| check | measured | goal | pass |", "|---|---|---|:-:|",
         f"| (a) 95% CI of the ITT effect covers the planted effect | {m['itt_covers']} of {c['seeds']} (CUPED: {m['cuped_covers']}) | {g['itt_covers']} | {yn(p['itt_covers'])} |",
         f"| (a) CUPED CI narrower than the plain one | {m['cuped_narrower']} of {c['seeds']}; mean width {100 * m['mean_ci_width_cuped']:.2f} vs {100 * m['mean_ci_width_itt']:.2f} points, variance -{100 * m['mean_variance_reduction']:.0f}% | {g['cuped_narrower']} | {yn(p['cuped_narrower'])} |",
         f"| (b) power promised vs simulated ({m['power_experiments']} tenant-group experiments) | {100 * m['power_promised']:.1f}% vs {100 * m['power_simulated']:.1f}% (gap {m['power_gap_points']:+.1f} points) | {g['power_gap_points']} | {yn(p['power_gap_points'])} |",
         f"| (c) null: false positives, whole worlds | {m['null_rejected']} of {c['null_seeds']} | {g['null_rejected']} | {yn(p['null_rejected'])} |",
         f"| (c) null: false-positive rate, tenant groups | {m['null_sub_rejected']} of {m['null_sub_tests']} = {100 * (m['null_sub_rate'] or 0):.1f}% (95% CI {100 * m['null_sub_rate_ci95'][0]:.1f}-{100 * m['null_sub_rate_ci95'][1]:.1f}%) | {g['null_sub_rate']} | {yn(p['null_sub_rate'])} |",
         f"| (d) buckets told apart: low CI contains 0, medium and high CIs below 0 (Bonferroni) | {m['buckets_told_apart']} of {c['seeds']} (Wald test of equal effects p < 0.05: {m['heterogeneity_p_below_alpha']}) | {g['buckets_told_apart']} | {yn(p['buckets_told_apart'])} |",
         "", f"Mean planted ITT effect {pp(m['mean_planted_ate'])} points, mean estimate {pp(m['mean_estimate'])}; per-bucket Bonferroni CIs cover the "
         f"planted bucket effect in {m['bucket_ci_covers']['low']} / {m['bucket_ci_covers']['medium']} / {m['bucket_ci_covers']['high']} of {c['seeds']} seeds (low / medium / high).", "",
         "Power by design size (tenant groups of each planted world):", "",
         "| split | experiments | mean people | promised | simulated (± SE) |", "|---:|---:|---:|---:|---:|"]
    for k, v in res["power_by_split"].items():
        L.append(f"| {k} | {v['experiments']} | {v['mean_n']:,} | {100 * v['promised']:.1f}% | {100 * v['simulated']:.1f}% ± {100 * v['simulated_se']:.1f} |")
    L += ["", "Per seed (planted): ITT estimate [95% CI], planted, CUPED [95% CI], buckets told apart:", "",
          "| seed | people | estimate | 95% CI | planted | covers | CUPED CI | narrower | apart |", "|---:|---:|---:|---|---:|:-:|---|:-:|:-:|"]
    for r in res["planted"]:
        L.append(f"| {r['seed']} | {r['n']:,} | {pp(r['itt']['effect'])} | [{pp(r['itt']['ci'][0])}, {pp(r['itt']['ci'][1])}] | {pp(r['planted'])} | "
                 f"{yn(r['itt']['covers'])} | [{pp(r['cuped']['ci'][0])}, {pp(r['cuped']['ci'][1])}] | {yn(r['cuped_narrower'])} | {yn(r['told_apart'])} |")
    mc = res["machine"]
    L += ["", f"{res['seconds']:.0f} s in all on {mc['cpu_count']} CPUs (load {mc['load_avg_1m_at_end']} at the end); hr_ml {mc['hr_ml']}, "
          f"statsmodels {mc['statsmodels']}, polars {mc['polars']}.", ""]
    return "\n".join(L)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--employees", type=int, default=40000, help="employees per planted world, leavers included (about half are employed at the start)")
    ap.add_argument("--tenants", type=int, default=200)
    ap.add_argument("--null-seeds", type=int, default=20)
    ap.add_argument("--null-employees", type=int, default=20000)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--smoke", action="store_true", help="2 small seeds of each: checks that it runs")
    ap.add_argument("--summary-only", action="store_true", help="run nothing: recompute the summary and the markdown from the per-seed rows of OUT/experiment_checks.json")
    a = ap.parse_args(argv)
    if a.summary_only:
        res = json.loads((a.out / "experiment_checks.json").read_text())
        res.update(summarise(res["planted"], res["null"]))
        if res["smoke"]: res["passed"] = {k: None for k in res["passed"]}
        res["pass"] = None if res["smoke"] else all(res["passed"].values())
        (a.out / "experiment_checks.json").write_text(json.dumps(res, indent=2) + "\n")
        (a.out / "experiment_checks.md").write_text(markdown(res))
        return 0 if res["smoke"] or res["pass"] else 1
    if a.smoke: a.seeds, a.employees, a.tenants, a.null_seeds, a.null_employees = 2, 3000, 20, 2, 3000
    import numpy as np, polars as pl, statsmodels
    from hr_ml import __version__
    t0, planted, null = time.perf_counter(), [], []
    for s in range(a.seeds):
        r = planted_check(s, a.employees, a.tenants, SPLITS if not a.smoke else (2,))
        planted.append(r)
        print(f"planted seed {s:2d}: n {r['n']:,}  ITT {100 * r['itt']['effect']:+.2f} [{100 * r['itt']['ci'][0]:+.2f}, {100 * r['itt']['ci'][1]:+.2f}] "
              f"planted {100 * r['planted']:+.2f} {'covers' if r['itt']['covers'] else 'MISSES'}  CUPED [{100 * r['cuped']['ci'][0]:+.2f}, {100 * r['cuped']['ci'][1]:+.2f}]  "
              f"apart {r['told_apart']}  power subs {sum(x['rejected'] for x in r['subs'])}/{len(r['subs'])}  ({r['seconds']:.0f}s)", flush=True)
    for s in range(a.null_seeds):
        r = null_check(1000 + s, a.null_employees, max(5, a.null_employees // 200), 5)
        null.append(r)
        print(f"null seed {1000 + s}: n {r['n']:,}  ITT {100 * r['effect']:+.2f} p={r['p_value']:.3f}  subs rejected {sum(r['subs_rejected'])}/5  ({r['seconds']:.0f}s)", flush=True)
    res = dict(benchmark="experiment_checks", smoke=a.smoke,
               config=dict(seeds=a.seeds, employees=a.employees, tenants=a.tenants, null_seeds=a.null_seeds, null_employees=a.null_employees,
                           start=START.isoformat(), horizon_months=HORIZON, kind="pay_review", unit="employee", share=0.5, alpha=ALPHA,
                           splits=list(SPLITS if not a.smoke else (2,)),
                           estimators="hr_ml.effects.itt (OLS, HC1), cuped (regression adjustment on risk), by_group (Bonferroni CIs); "
                                      "power: hr_ml.experiment.power_proportions (statsmodels NormalIndPower, Cohen's h)"),
               **summarise(planted, null), mean_assigned=int(np.mean([p["n"] for p in planted])))
    if a.smoke: res["passed"] = {k: None for k in res["passed"]}
    res.update(planted=planted, null=null, seconds=round(time.perf_counter() - t0, 1),
               machine={"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(), "polars": pl.__version__,
                        "numpy": np.__version__, "statsmodels": statsmodels.__version__, "hr_ml": __version__, "load_avg_1m_at_end": round(os.getloadavg()[0], 2)})
    res["pass"] = None if a.smoke else all(res["passed"].values())
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "experiment_checks.json").write_text(json.dumps(res, indent=2) + "\n")
    (a.out / "experiment_checks.md").write_text(markdown(res))
    print(f"wrote {a.out / 'experiment_checks.json'}: " + ", ".join(f"{k} {'n/a' if v is None else 'ok' if v else 'MISSED'}" for k, v in res["passed"].items()), flush=True)
    return 0 if a.smoke or res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
