"""The run folder's reliability (issue 9, point 1), each case on a copy of the session's tiny run (conftest.py): a refused run changes nothing,
`report` works on a copied or read-only folder and shows what the evaluation was made with, a damaged sidecar is remade or
refused with advice that works, and artifacts get the umask's mode. (Ctrl-C and resume: the chapters' tests.)"""
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from geovq_tutorial.core import STAGES, StageError, load_json
from geovq_tutorial.pipeline import run_pipeline, load_run

GEOVQ = str(Path(sys.executable).parent / 'geovq')

def geovq(*args, **kw):
    env = {**os.environ, 'GEOVQ_PROGRESS': '0', 'PYTHONPATH': str(Path(__file__).resolve().parents[1])}
    return subprocess.run([GEOVQ, *map(str, args)], capture_output=True, text=True, env=env, **kw)


def snapshot(folder: Path) -> dict:
    "Every file and folder under `folder`: its content hash (files) and modification time."
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None)
            for p in sorted(folder.rglob('*'))}


@contextmanager
def read_only(folder: Path):
    """Make `folder` unwritable for this test's subprocesses; yields the `preexec_fn` they must run with. As a normal user:
    write permission removed. As root (which ignores permissions): a read-only bind mount, or, where mounting is not allowed,
    the subprocesses run as the unprivileged user 'nobody'."""
    folder = Path(folder)
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob('*')]}
    mounted = os.geteuid() == 0 and subprocess.run(['mount', '--bind', folder, folder], capture_output=True).returncode == 0
    if mounted and subprocess.run(['mount', '-o', 'remount,bind,ro', folder, folder], capture_output=True).returncode != 0:
        subprocess.run(['umount', folder]); mounted = False
    for p, m in modes.items(): mounted or p.chmod(m & ~0o222)
    try: yield None if mounted or os.geteuid() != 0 else (lambda: (os.setgid(65534), os.setuid(65534)))
    finally:
        if mounted: subprocess.run(['umount', folder], check=True)
        for p, m in modes.items(): p.chmod(m)


@pytest.fixture
def copy_of(tiny_run):
    "A fresh copy of the tiny run (its config.json still names the original folder), in a folder every user can read."
    base = Path(tempfile.mkdtemp(prefix='geovq-stages-')); base.chmod(0o755)
    shutil.copytree(tiny_run, base / 'copy')
    yield base / 'copy'
    shutil.rmtree(base, ignore_errors=True)


def test_artifacts_have_the_umask_mode(tiny_run):
    files = [p for p in tiny_run.rglob('*') if p.is_file()]
    assert files and {oct(p.stat().st_mode & 0o777) for p in files} == {'0o644'}, 'umask 022 gives 0644'
    assert {oct(p.stat().st_mode & 0o777) for p in tiny_run.rglob('*') if p.is_dir()} <= {'0o755'}


def test_refused_run_changes_nothing(copy_of):
    cfg = load_run(copy_of)
    before = snapshot(copy_of)
    with pytest.raises(StageError) as e: run_pipeline(cfg.replace(hidden=16, prior_dim=16), verbose=False)
    msg = str(e.value)
    assert 'nothing was changed' in msg and 'hidden: stored 32, now 16' in msg and 'prior_dim: stored 32, now 16' in msg
    assert '`geovq run --force vae prior`' in msg or '`geovq run --force' in msg
    assert snapshot(copy_of) == before, 'a refused run leaves the folder as it was (config.json included)'
    res = geovq('run', '--config', copy_of / 'config.json', '--run-dir', copy_of, '--hidden', '16')
    assert res.returncode == 2 and 'Traceback' not in res.stderr and 'hidden: stored 32, now 16' in res.stderr
    assert snapshot(copy_of) == before


def test_report_on_a_copied_folder_with_an_edited_config(tiny_run, copy_of):
    cfg = json.loads((copy_of / 'config.json').read_text())
    assert cfg['run_dir'] == str(tiny_run), 'the copy names the original folder'
    cfg['codebook_k'] = 32                      # edited after the evaluation (made with 64)
    (copy_of / 'config.json').write_text(json.dumps(cfg))
    original = snapshot(tiny_run)
    res = geovq('report', '--run-dir', copy_of)
    assert res.returncode == 0, res.stderr
    assert f"Report: {(copy_of / 'report.html').absolute()}" in res.stdout and 'K = 64' in res.stdout
    metrics = load_json(copy_of / 'metrics.json')
    assert metrics['K'] == 64 and metrics['settings']['codebook_k'] == 64, 'the K the evaluation was made with'
    assert 'K = 64' in (copy_of / 'report.html').read_text()
    assert snapshot(tiny_run) == original, 'the folder config.json names is not touched'


def test_missing_sidecar_is_refused_with_advice_that_works(copy_of):
    sidecar = STAGES['evaluation'].sidecar(load_run(copy_of))
    sidecar.unlink()
    res = geovq('report', '--run-dir', copy_of)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and 'Traceback' not in res.stderr, res.stderr
    advice = re.search(r'Complete it with `(geovq [^`]+)`', res.stderr)
    assert advice, res.stderr
    done = geovq(*shlex.split(advice.group(1))[1:])         # follow the advice as printed
    assert done.returncode == 0, done.stderr
    assert sidecar.exists() and geovq('report', '--run-dir', copy_of).returncode == 0


def test_corrupt_sidecar_is_remade(copy_of):
    cfg = load_run(copy_of)
    prior = next(p for p in STAGES['prior'].stage_files(copy_of) if p.suffix == '.json')
    prior.write_text('{"history": [1, 2')              # truncated
    vae = STAGES['vae'].path(cfg).stat().st_mtime_ns
    run_pipeline(cfg, verbose=False)
    assert isinstance(load_json(prior), dict), 'the prior was made again, with a readable sidecar'
    assert STAGES['vae'].path(cfg).stat().st_mtime_ns == vae, 'what the prior is made from is kept'


LOAD = """import sys
from geovq_tutorial.core import STAGES
from geovq_tutorial.pipeline import load_run, collect_metrics
from geovq_tutorial.evaluate import load_evaluation_samples
cfg = load_run(sys.argv[1])
assert STAGES['vae'].find(cfg) is not None and STAGES['classifier'].find(cfg) is not None
print('K', collect_metrics(cfg)['K'], 'samples', len(load_evaluation_samples(cfg.run_dir)))
"""


def test_read_only_run_folder_is_loaded_and_reported(copy_of):
    before = snapshot(copy_of)
    env = {**os.environ, 'GEOVQ_PROGRESS': '0', 'PYTHONPATH': str(Path(__file__).resolve().parents[1]),
           'MPLCONFIGDIR': tempfile.mkdtemp(), 'HOME': tempfile.gettempdir()}
    Path(env['MPLCONFIGDIR']).chmod(0o777)
    with read_only(copy_of) as preexec:
        run = lambda *a: subprocess.run([*map(str, a)], capture_output=True, text=True, env=env, preexec_fn=preexec)
        loaded = run(sys.executable, '-c', LOAD, copy_of)
        assert loaded.returncode == 0 and 'K 64' in loaded.stdout, loaded.stderr
        report = run(GEOVQ, 'report', '--run-dir', copy_of)
        assert report.returncode == 0, report.stderr
        assert 'The report was not saved' in report.stdout and 'Report: not saved' in report.stdout and 'kmeans' in report.stdout
        refused = run(GEOVQ, 'run', '--run-dir', copy_of)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert 'read-only' in refused.stderr or 'not writable' in refused.stderr
    assert snapshot(copy_of) == before, 'nothing was written (no lock file either)'
