"""Shared test plumbing: a real `hr-ml serve` in its own process."""
import os, re, subprocess, sys, time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # before xgboost loads OpenMP (as the job notebooks do): idle threads sleep,
                                                     # instead of spinning against the other xdist worker on 2 cores
import pytest


def start_server(cmd: list, timeout: float = 300, **popen_kw):
    "Start a server command (e.g. `hr-ml serve ... --port 0`); return (process, URL) once it prints where it listens."
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen_kw)
    url, seen, t0 = None, [], time.time()
    while time.time() - t0 < timeout and url is None:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None: break
        seen.append(line)
        m = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if m: url = m.group(1)
    if url is None:
        proc.kill()
        raise AssertionError("the server did not start:\n" + "".join(seen) + (proc.stdout.read() or ""))
    return proc, url


def stop_server(proc):
    "Stop a server started by `start_server`."
    proc.terminate()
    try: proc.wait(20)
    except subprocess.TimeoutExpired: proc.kill()


def hr_ml_serve(*args, **popen_kw):
    "`hr-ml serve ARGS --port 0` with this interpreter, and its URL."
    return start_server([sys.executable, "-m", "hr_ml.cli", "serve", *map(str, args), "--port", "0"], **popen_kw)


# ---------------------------------------------------------------- the `hr-ml` command in this process
class Ran:
    "What a finished command left, shaped like `subprocess.CompletedProcess` (returncode, stdout, stderr)."
    def __init__(self, returncode: int, stdout: str, stderr: str, args=()):
        self.returncode, self.stdout, self.stderr, self.args = returncode, stdout, stderr, list(args)
    def __repr__(self): return f"Ran(exit {self.returncode}, stdout={self.stdout[-500:]!r}, stderr={self.stderr[-500:]!r})"


def hr_ml_inprocess(*args, cwd=None, env=None, show_warnings=False) -> Ran:
    """`hr-ml ARGS` through typer's test runner, in this process: the same app, options and error handling as the command,
    without an interpreter start-up (several seconds with xgboost, shap and mlflow). Use it where the seam under test is not
    the process; each command keeps at least one real-process test (the journey, the servers). `show_warnings`: add the
    warnings the process would print to stderr, for tests that assert a clean one-line stderr."""
    import os
    from contextlib import chdir, nullcontext
    from typer.testing import CliRunner
    from hr_ml.cli import app
    extra = {k: v for k, v in (env or {}).items() if os.environ.get(k) != v}
    gone = [k for k in os.environ if env is not None and k not in env]
    runner = CliRunner(env={**extra, **{k: None for k in gone}})
    import warnings
    with warnings.catch_warnings(record=True) as ws, (chdir(cwd) if cwd is not None else nullcontext()):
        if show_warnings:   # what a plain `python` prints: default filters, less the categories it hides
            warnings.simplefilter("default")
            for c in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning): warnings.simplefilter("ignore", c)
        r = runner.invoke(app, [str(a) for a in args], catch_exceptions=True)
    err = r.stderr + ("".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in ws) if show_warnings else "")
    if r.exception is not None and not isinstance(r.exception, SystemExit):   # what the process would print: a traceback
        import traceback
        err += "Traceback (most recent call last):\n" + "".join(traceback.format_exception(r.exception))
    return Ran(r.exit_code, r.stdout, err, args)


# ---------------------------------------------------------------- pytest-xdist: whole modules per worker, long ones first
# `make test` runs pytest with `-n 2 --dist loadfile`: a module's tests stay on one worker, so its module-scoped fixtures
# (trained runs, servers, the bench smoke) are built once. (`--dist loadgroup` with xdist_group marks would split the
# journey's four runs, but xdist 3.8 cannot rename node ids under pytest 9, so its groups are silently ignored and every
# module fixture was built on both workers.) Modules are handed out in the order below, longest first (measured with
# --durations), the rest after in collection order.
LONG_FIRST = ["test_journey", "test_bench_smoke", "test_reports", "test_train_job", "test_governance", "test_suppression",
              "test_pay_equity", "test_narrate", "test_erasure", "test_registry", "test_privacy", "test_monitor"]


def pytest_collection_modifyitems(config, items):
    rank = {m: i for i, m in enumerate(LONG_FIRST)}
    items.sort(key=lambda it: rank.get(it.module.__name__.rsplit(".", 1)[-1], len(rank)))   # stable: collection order within
