"""A run dies cleanly: whatever ends the parent of `run_jobs` (SIGKILL, SIGTERM, Ctrl-C, a closed pipe), its worker processes
end within seconds and the output pipe closes; a killed worker is reported in one line. Linux: workers are found in /proc."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

LIMIT_S = 10       # how long a worker may outlive its parent (the bound; measured: about 1 s)

# Two jobs that would run for a minute, in two spawned workers. `print` of 1 MB blocks on a pipe nobody reads.
SCRIPT = """
import sys, time
from geovq_tutorial.pipeline import Job, run_jobs
jobs = [Job('first', time.sleep, (60,)), Job('second', {second}, ({arg},))]
run_jobs(jobs, workers=2)
"""


def children(pid: int) -> list[int]:
    "The processes whose parent is `pid` and that are multiprocessing workers (not its resource tracker)."
    out = []
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try:
            ppid = int((d / 'stat').read_text().rsplit(')', 1)[1].split()[1])
            cmd = (d / 'cmdline').read_bytes()
        except (OSError, IndexError, ValueError): continue
        if ppid == pid and b'spawn_main' in cmd: out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    try: state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except OSError: return False
    return state != 'Z'


def wait_until(cond, timeout: float, what: str):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout: raise AssertionError(f'{what}: not within {timeout} s')
        time.sleep(0.1)
    return time.monotonic() - t0


def foreground():
    "In the child, before exec: Ctrl-C handled, as in a terminal's foreground (a background job, CI's too, inherits it ignored)."
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def started(second='time.sleep', arg='60'):
    "The parent process and its two workers, once both workers have imported torch (they are running their jobs)."
    proc = subprocess.Popen([sys.executable, '-c', SCRIPT.format(second=second, arg=arg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, 'PYTHONUNBUFFERED': '1'}, preexec_fn=foreground)
    loaded = lambda w: 'libtorch' in Path(f'/proc/{w}/maps').read_text() if alive(w) else False
    wait_until(lambda: len(children(proc.pid)) == 2 and all(map(loaded, children(proc.pid))), 120, 'two workers with torch')
    return proc, children(proc.pid)


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_no_worker_outlives_its_parent(sig):
    proc, workers = started()
    proc.send_signal(sig)
    seconds = wait_until(lambda: not any(map(alive, workers)), LIMIT_S, f'workers ended after {sig.name} to the parent')
    proc.stdout.read()                         # returns: nothing holds the pipe open any more (a `| tee` would return)
    proc.wait(LIMIT_S)
    err = proc.stderr.read().decode()
    if sig != signal.SIGKILL:                  # Ctrl-C and SIGTERM: the parent says what it stops
        assert 'interrupted: stopping first, second now; the completed stages are kept' in err, err[-2000:]
    print(f'{sig.name}: workers ended {seconds:.1f} s after the parent was signalled')


def test_a_killed_worker_is_reported_in_one_line_and_ends_the_run():
    proc, workers = started()
    os.kill(workers[0], signal.SIGKILL)
    proc.wait(LIMIT_S)
    err = proc.stderr.read().decode()
    assert 'WorkerDied: a worker process ended while running' in err and 'run the same command again' in err, err[-2000:]
    assert not any(map(alive, workers))


def test_a_closed_pipe_ends_the_run():
    "A job that writes to a pipe nobody reads any more fails (BrokenPipeError), and the failure ends the other worker."
    proc, workers = started(second='print', arg="'x' * 2**20")
    proc.stdout.close()                        # the reader goes away (`geovq run | head`, a killed `tee`)
    proc.wait(LIMIT_S)
    assert 'BrokenPipeError' in proc.stderr.read().decode()
    wait_until(lambda: not any(map(alive, workers)), LIMIT_S, 'workers ended after the pipe closed')


def test_a_run_killed_midway_resumes_to_the_same_result(tiny_run, tmp_path):
    """Issue 31, point 1: SIGKILL a tiny `geovq run` midway, once it has stored a prior; its workers end, and the same
    command run again finishes without making that prior (nor the VAE) again, with the same numbers as the uninterrupted run
    (the session's tiny run, made by the same command): `docs/execute.py`'s fingerprint of metrics.json, which leaves out wall
    times and the folder. The run starts from a copy of the tiny run without its priors, fine-tunes and evaluation, so
    that the test pays for those stages only."""
    import shutil
    from conftest import TINY_RUN
    from helpers import load_script
    execute = load_script('docs/execute.py', 'docs_execute')
    run = tmp_path / 'digits'
    shutil.copytree(tiny_run, run)
    for later in ('prior', 'finetune'): shutil.rmtree(run / later)
    for later in ('evaluation.json', 'evaluation.safetensors', 'metrics.json', 'report.html'): (run / later).unlink()
    cmd = [str(Path(sys.executable).parent / 'geovq'), 'run', '--run-dir', str(run), *TINY_RUN]
    env, umask = {**os.environ, 'GEOVQ_PROGRESS': '0'}, lambda: os.umask(0o022)      # as the session's tiny run is made
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, preexec_fn=umask)
    stored = lambda p: not p.name.endswith('.partial.safetensors')           # a trainer's checkpoint is not a stored prior
    first_prior = lambda: next((p for p in sorted((run / 'prior').glob('*.safetensors')) if stored(p)), None) \
        if (run / 'prior').exists() else None
    wait_until(lambda: first_prior() is not None or proc.poll() is not None, 120, 'a prior stored')
    workers = children(proc.pid)
    proc.kill(); proc.wait(LIMIT_S)
    wait_until(lambda: not any(map(alive, workers)), LIMIT_S, 'the workers ended after SIGKILL to the parent')
    assert not (run / 'metrics.json').exists(), 'the run finished before it was killed: nothing was interrupted'
    prior = first_prior()
    made = {p: p.stat().st_mtime_ns for p in (prior, run / 'vae.safetensors')}
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=umask)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in made} == made, 'the resumed run made a stored prior or the VAE again'
    assert execute.run_fingerprint(run / 'metrics.json') == execute.run_fingerprint(tiny_run / 'metrics.json')
