"""Benchmark 6: the scoring API under load -- single-employee requests at a steady rate, and one 10,000-employee batch.

    python bench/bench_api.py                      # 60 s at 100 requests/s + 5 batches of 10,000 (about 3-4 minutes)
    python bench/bench_api.py --smoke --out /tmp/b # tiny, under a minute (most of it python start-up)

What runs:
  model   an xgboost AttritionModel the size of the production one (--trees 300, --depth 4, the 19 FEATURES), fitted on a
          synthetic HRIS and saved as a run folder; one API key for one tenant;
  server  `hr_ml.serve.serve` in its own process (uvicorn, 127.0.0.1, a free port), exactly as `hr-ml serve` runs it;
          start-up time (python imports included) until its ready line;
  load    OPEN-LOOP: request i is due at t0 + i / rate whether or not earlier ones have come back; --connections workers,
          each on its own keep-alive connection (raw asyncio streams, so the load generator itself stays cheap), send
          them in order, each one employee (POST /v1/tenants/T/attrition/scores, drawn from 1,000
          distinct employees). Latency runs from the scheduled send time to the full response, so a stalled server shows
          up as latency (no coordinated omission). Errors: any status other than 200, or a transport error/timeout.
  batch   one request of --batch employees (10,000), sent --repeats times one after another; wall time per request,
          JSON encoding of the body done beforehand (not timed), response read and parsed (timed).
Writes api.json and api.md to --out (default bench/results). Goals: p99 <= 30 ms and 0 errors at 100 requests/s; batch <= 2 s.
"""
import argparse, asyncio, json, os, platform, re, select, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOALS = dict(p99_ms=30.0, errors=0, batch_seconds=2.0)
FULL = dict(rate=100, seconds=60, batch=10_000, repeats=5, trees=300, depth=4, train_employees=8_000, train_tenants=40, connections=16)
SMOKE = dict(rate=20, seconds=3, batch=200, repeats=2, trees=20, depth=3, train_employees=1_500, train_tenants=6, connections=8)


def _threads():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def prepare(a, d: Path):
    "Fit and save the model, create a key, and write the employees the requests are made of; returns (run folder, state, tenant, secret, rows)."
    from datetime import date
    import polars as pl
    from hr_ml.synth import generate
    from hr_ml.features import build_features, data_range, FEATURES
    from hr_ml.attrition import AttritionModel
    from hr_ml.serve import create_key
    t0 = time.perf_counter()
    tables, _ = generate(n_employees=a.train_employees, n_tenants=a.train_tenants, seed=a.seed)
    end = data_range(tables)[1]
    train = build_features(tables, date(end.year - 1, end.month, min(end.day, 28)))
    m = AttritionModel(n_estimators=a.trees, max_depth=a.depth, early_stopping_rounds=None, n_jobs=_threads())
    m.fit(train.select(FEATURES), train["label"])
    run = m.save(d / "runs" / "attrition" / f"bench-{a.trees}x{a.depth}")
    snap = build_features(tables, end)
    tenant = snap["tenant_id"][0]
    state = d / "state"
    key_id, secret = create_key(tenant, state, label="bench")
    rows = snap.select(FEATURES).to_dicts()
    return run, state, tenant, secret, rows, dict(prepare_s=time.perf_counter() - t0, train_rows=train.height,
                                                  trees=m.booster_.num_boosted_rounds(), depth=a.depth, features=len(m.feature_names_))


def start_server(run: Path, state: Path, batch: int, cwd: Path):
    "Start `serve` in a subprocess; returns (process, base url, seconds until its ready line, the line)."
    code = (f"from hr_ml.serve import serve; serve({str(run)!r}, port=0, state={str(state)!r}, "
            f"max_batch={max(batch, 10_000)}, max_body_bytes={64 * 2**20})")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    out = []
    while time.perf_counter() - t0 < 600:
        if proc.poll() is not None: raise SystemExit("server exited:\n" + "".join(out) + proc.stdout.read())
        if select.select([proc.stdout], [], [], 1.0)[0]:
            line = proc.stdout.readline(); out.append(line)
            m = re.search(r"ready on (http://[\d.]+:\d+)", line)
            if m: return proc, m.group(1), time.perf_counter() - t0, line.strip()
    proc.kill()
    raise SystemExit("no ready line from the server within 600 s:\n" + "".join(out))


async def _exchange(reader, writer, request: bytes, timeout: float):
    "Send one HTTP/1.1 request on a keep-alive connection; return (status, body)."
    writer.write(request)
    await writer.drain()
    async def read():
        status = int((await reader.readline()).split()[1])
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode("latin-1").partition(":")
            if k.lower() == "content-length": length = int(v)
            if k.lower() == "connection" and v.strip().lower() == "close": close = True
        return status, await reader.readexactly(length), close
    return await asyncio.wait_for(read(), timeout)


async def load(url: str, path: str, secret: str, bodies: list, rate: float, seconds: float, connections: int):
    """Open-loop load: request i is due at t0 + i/rate and queued then, whatever happened to earlier ones; `connections`
    workers, each on its own keep-alive connection (raw asyncio streams: the client spends little CPU per request), take
    requests from the queue. Returns latencies from the due time, service times from the actual send, errors, wall time."""
    host, port = url.split("//")[1].split(":")
    port = int(port)
    n = int(rate * seconds)
    reqs = [f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]
    lat, svc, errors = [None] * n, [None] * n, []
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    async def worker(w):
        conn = None
        while (item := await queue.get()) is not None:
            i, due = item   # i < 0: a warm-up request (not recorded)
            sent = loop.time()
            try:
                if conn is None: conn = await asyncio.open_connection(host, port)
                status, body, close = await _exchange(*conn, reqs[abs(i) % len(reqs)], 10.0)
                if status != 200: errors.append(f"status {status}: {body[:120]!r}")
                if close: conn[1].close(); conn = None
            except Exception as e:  # noqa: BLE001 -- every failure counts as an error
                errors.append(f"{type(e).__name__}: {e}"[:160])
                if conn is not None: conn[1].close()
                conn = None
            end = loop.time()
            if i >= 0: lat[i], svc[i] = end - due, end - sent
        if conn is not None: conn[1].close()

    workers = [asyncio.create_task(worker(w)) for w in range(connections)]
    for i in range(1, 2 * connections + 1): queue.put_nowait((-i, loop.time()))   # warm-up: open every connection
    while not queue.empty(): await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    errors.clear()
    t0 = loop.time() + 0.05
    for i in range(n):
        due = t0 + i / rate
        if due > loop.time(): await asyncio.sleep(due - loop.time())
        queue.put_nowait((i, due))
    for _ in workers: queue.put_nowait(None)
    await asyncio.gather(*workers)
    return lat, svc, errors, loop.time() - t0


def _cpu_s(pid: int) -> float:
    "CPU seconds (user + system) a process has used so far."
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q / 100 * len(xs) + 0.5)) - 1))]


def batch_requests(url: str, path: str, secret: str, rows: list, n: int, repeats: int):
    "One request of `n` employees, `repeats` times; returns timings and sizes."
    import httpx
    body = json.dumps({"employees": [{"employee_id": f"B{i:06d}", "features": rows[i % len(rows)]} for i in range(n)]},
                      separators=(",", ":")).encode()
    secs, out = [], None
    with httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}) as c:
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = c.post(path, content=body)
            res = r.json()
            secs.append(time.perf_counter() - t0)
            if r.status_code != 200 or res.get("n") != n: raise SystemExit(f"batch request failed: {r.status_code} {r.text[:300]}")
            out = r
    return dict(employees=n, repeats=repeats, seconds=secs, median_s=statistics.median(secs), min_s=min(secs), max_s=max(secs),
                body_mb=len(body) / 2**20, response_mb=len(out.content) / 2**20)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes: runs in well under a minute")
    p.add_argument("--out", type=Path, default=HERE / "results", help="folder for api.json and api.md")
    p.add_argument("--seed", type=int, default=0)
    for k, v in FULL.items(): p.add_argument(f"--{k.replace('_', '-')}", type=int, default=None, help=f"default {v:,} (smoke: {SMOKE[k]:,})")
    a = p.parse_args(argv)
    for k, v in (SMOKE if a.smoke else FULL).items():
        if getattr(a, k) is None: setattr(a, k, v)

    import fastapi, httpx, numba, numpy as np, polars as pl, pydantic, uvicorn, xgboost as xgb
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
        d = Path(tmp)
        print(f"model: fitting {a.trees} trees of depth {a.depth} on a {a.train_employees:,}-employee synthetic HRIS ...", flush=True)
        run, state, tenant, secret, rows, model = prepare(a, d)
        print(f"model: {model['trees']} trees, {model['features']} features, {model['train_rows']:,} rows; server starting ...", flush=True)
        proc, url, startup_s, ready_line = start_server(run, state, a.batch, d)
        try:
            print(f"server: ready in {startup_s:.1f} s (python imports included): {ready_line}", flush=True)
            path = f"/v1/tenants/{tenant}/attrition/scores"
            bodies = [json.dumps({"employees": [{"employee_id": f"E{i:06d}", "features": rows[i % len(rows)]}]}, separators=(",", ":")).encode()
                      for i in range(min(1000, max(len(rows), 1)))]
            load_before, cpu0, me0 = os.getloadavg(), _cpu_s(proc.pid), time.process_time()
            lat, svc, errors, wall = asyncio.run(load(url, path, secret, bodies, a.rate, a.seconds, a.connections))
            load_after, cpu1, me1 = os.getloadavg(), _cpu_s(proc.pid), time.process_time()
            ok = [x for x in lat if x is not None]
            ms = lambda x: round(1000 * x, 2)
            ld = dict(rate=a.rate, seconds=a.seconds, requests=len(lat), errors=len(errors), error_samples=sorted(set(errors))[:5],
                      achieved_rps=len(lat) / wall, p50_ms=ms(_pct(ok, 50)), p90_ms=ms(_pct(ok, 90)), p99_ms=ms(_pct(ok, 99)),
                      max_ms=ms(max(ok)), mean_ms=ms(statistics.fmean(ok)), service_p50_ms=ms(_pct(svc, 50)), service_p99_ms=ms(_pct(svc, 99)),
                      over_30ms=sum(x > 0.030 for x in ok), connections=a.connections,
                      server_cpu_ms_per_request=1000 * (cpu1 - cpu0) / len(lat), client_cpu_ms_per_request=1000 * (me1 - me0) / len(lat),
                      server_cpu_share_of_one_core=(cpu1 - cpu0) / wall,
                      load_avg_1m_before=round(load_before[0], 2), load_avg_1m_after=round(load_after[0], 2))
            print(f"load: {ld['requests']:,} requests at {a.rate}/s over {a.seconds} s: p50 {ld['p50_ms']} ms, p99 {ld['p99_ms']} ms, "
                  f"max {ld['max_ms']} ms, errors {ld['errors']} (load average {ld['load_avg_1m_before']} -> {ld['load_avg_1m_after']})", flush=True)
            bt = batch_requests(url, path, secret, rows, a.batch, a.repeats)
            bt["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
            print(f"batch: {bt['employees']:,} employees ({bt['body_mb']:.1f} MB of JSON): median {bt['median_s']:.2f} s "
                  f"(min {bt['min_s']:.2f}, max {bt['max_s']:.2f}) over {bt['repeats']} requests", flush=True)
            metrics = httpx.get(url + "/metrics", timeout=10).text
            audit_lines = sum(1 for f in (state / "audit").glob("*.jsonl") for _ in f.open())
        finally:
            proc.terminate()
            try: proc.wait(30)
            except subprocess.TimeoutExpired: proc.kill()
    scored = sum(float(m.group(1)) for m in re.finditer(r'^hr_ml_employees_scored_total\{route="scores"\} (\S+)$', metrics, re.M))
    measured = dict(p99_ms=ld["p99_ms"], errors=ld["errors"], batch_seconds=bt["median_s"], p50_ms=ld["p50_ms"])
    passed = dict(p99_ms=ld["p99_ms"] <= GOALS["p99_ms"], errors=ld["errors"] <= GOALS["errors"], batch_seconds=bt["median_s"] <= GOALS["batch_seconds"])
    res = dict(benchmark="api", smoke=a.smoke, seed=a.seed, model=model, server=dict(startup_s=startup_s, ready_line=ready_line,
               employees_scored_metric=scored, audit_lines=audit_lines), load=ld, batch=bt, goals=GOALS, measured=measured,
               passed=passed, **{"pass": all(passed.values())},
               machine=dict(cpu_count=os.cpu_count(), threads=_threads(), platform=platform.platform(),
                            load_avg_1m_at_start=round(load0[0], 2), load_avg_5m_at_start=round(load0[1], 2),
                            load_avg_1m_at_end=round(os.getloadavg()[0], 2)),
               versions=dict(python=platform.python_version(), fastapi=fastapi.__version__, uvicorn=uvicorn.__version__,
                             pydantic=pydantic.VERSION, httpx=httpx.__version__, xgboost=xgb.__version__, numba=numba.__version__,
                             numpy=np.__version__, polars=pl.__version__))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "api.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    (a.out / "api.md").write_text(_markdown(res))
    print(f"wrote {a.out}/api.json and api.md")
    return 0 if (res["pass"] or a.smoke) else 1


def _markdown(r):
    ld, bt, m, g = r["load"], r["batch"], r["model"], r["goals"]
    ok = lambda b: "pass" if b else "FAIL"
    errs = "".join(f"\n- `{e}`" for e in ld["error_samples"])
    return f"""# Benchmark: the scoring API{' (smoke: tiny sizes, numbers mean nothing)' if r['smoke'] else ''}

`hr_ml.serve.serve` in its own process (uvicorn, one worker, 127.0.0.1), model: xgboost AttritionModel with {m['trees']} trees of
depth {m['depth']} on {m['features']} features (fitted on {m['train_rows']:,} synthetic snapshot rows), one tenant's API key, audit log on.
Server start-up until its ready line: {r['server']['startup_s']:.1f} s (python imports included).

## Single-employee scoring at a steady rate (open loop)

{ld['requests']:,} requests of one employee each, scheduled at {ld['rate']} per second for {ld['seconds']} s (achieved
{ld['achieved_rps']:.1f}/s), {ld['connections']} keep-alive connections (asyncio streams) on the same machine. Latency is measured
from each request's *scheduled* send time to its full response, so queueing behind a slow request counts.

| p50 ms | p90 ms | p99 ms (goal {g['p99_ms']:.0f}) | max ms | requests over 30 ms | errors (goal {g['errors']}) |
|---:|---:|---:|---:|---:|---:|
| {ld['p50_ms']} | {ld['p90_ms']} | {ld['p99_ms']} ({ok(r['passed']['p99_ms'])}) | {ld['max_ms']} | {ld['over_30ms']} | {ld['errors']} ({ok(r['passed']['errors'])}) |

Service time alone (from the actual send): p50 {ld['service_p50_ms']} ms, p99 {ld['service_p99_ms']} ms.
CPU per request: server {ld['server_cpu_ms_per_request']:.2f} ms (the server process used {100 * ld['server_cpu_share_of_one_core']:.0f}% of one
core during the run), load generator {ld['client_cpu_ms_per_request']:.2f} ms. With a core to itself, the server would be busy
{ld['server_cpu_ms_per_request'] * ld['rate'] / 10:.0f}% of the time at this rate; the latencies above are what it got on a machine shared with other work.
1-minute load average {ld['load_avg_1m_before']} before and {ld['load_avg_1m_after']} after the run.{errs}

## One batch of {bt['employees']:,} employees

{bt['repeats']} requests one after another, each {bt['body_mb']:.1f} MB of JSON in and {bt['response_mb']:.1f} MB out (risk, bucket,
top-3 drivers with sentences), timed from send to parsed response:

| median s (goal {g['batch_seconds']:.0f}) | min s | max s |
|---:|---:|---:|
| {bt['median_s']:.2f} ({ok(r['passed']['batch_seconds'])}) | {bt['min_s']:.2f} | {bt['max_s']:.2f} |

The server wrote {r['server']['audit_lines']:,} audit lines; its metrics count {r['server']['employees_scored_metric']:,.0f} employees scored.

Machine: {r['machine']['cpu_count']} CPUs shared with other work (1-minute load average {r['machine']['load_avg_1m_at_start']} at start,
{r['machine']['load_avg_1m_at_end']} at end); load generator and server share the machine. python {r['versions']['python']},
fastapi {r['versions']['fastapi']}, uvicorn {r['versions']['uvicorn']} (h11, asyncio), pydantic {r['versions']['pydantic']},
xgboost {r['versions']['xgboost']}, numba {r['versions']['numba']}, polars {r['versions']['polars']}.
"""


if __name__ == "__main__":
    sys.exit(main())
