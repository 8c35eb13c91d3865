"""Shared test plumbing: a real `hr-ml serve` in its own process."""
import re, subprocess, sys, time


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
