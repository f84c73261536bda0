"""Shared test settings: quiet progress bars, the repository root for tests that look at files, and the browser.

The browser tests bring their browser: a test whose fixtures (or itself) start Playwright gets the session fixture
`chromium` first, which finds Debian's /usr/bin/chromium (or $GEOVQ_CHROMIUM) and installs the Debian package when it is
missing (see tests/chromium.py). When it cannot, those tests fail with one line saying what to install; no test is skipped."""
import os
import re
import sys
from pathlib import Path

import pytest

import chromium as _chromium

os.environ.setdefault('GEOVQ_PROGRESS', '0')
REPO = Path(__file__).resolve().parents[1]

if os.environ.get('PYTEST_XDIST_WORKER_COUNT'):     # under pytest-xdist the workers share the cores: no more threads than a share,
    SHARE = max(1, (os.cpu_count() or 1) // int(os.environ['PYTEST_XDIST_WORKER_COUNT']))
    for _var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'NUMBA_NUM_THREADS'):     # here and in every process a test starts (geovq,
        os.environ.setdefault(_var, str(SHARE))                                   # notebook kernels): two 2-thread processes on two
    import torch                                                                  # cores ran torch at a fraction of 1 thread's speed
    torch.set_num_threads(SHARE)


# What a saved notebook output or a built docs page must not show: torch's stray FutureWarning (or any FutureWarning), and
# a developer's absolute path (a home folder, the build machine's work folder), which a warning or a traceback prints.
LEAKS = re.compile(r'FutureWarning|(?<![\w.~-])/(?:work|root|home|Users)/')


def leaks(text: str, width: int = 60) -> list[str]:
    "Each place in `text` that shows a FutureWarning or a developer's path, with some context."
    return [text[max(0, m.start() - width):m.end() + width].replace('\n', ' ') for m in LEAKS.finditer(text)]


@pytest.fixture(scope='session')
def repo() -> Path:
    return REPO


def _say(config):
    "Print a line to the terminal even while pytest captures output (an install takes a while: say what is going on)."
    capman = config.pluginmanager.getplugin('capturemanager')
    def say(line: str):
        with capman.global_and_fixture_disabled(): print(f'\n[chromium] {line}', file=sys.stderr, flush=True)
    return say


def shared_folder(tmp_path_factory) -> Path:
    "A folder every pytest-xdist worker of this run sees (the parent of the workers' base folders; the base folder without xdist)."
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base


@pytest.fixture(scope='session')
def chromium(request, tmp_path_factory) -> str:
    "The path of the Chromium binary the browser tests launch; installs Debian's chromium when it is missing (one worker at a time)."
    from filelock import FileLock
    with FileLock(str(shared_folder(tmp_path_factory) / 'chromium.lock')):
        try:
            return _chromium.ensure(log=REPO / 'test-artifacts' / 'chromium-install.log', say=_say(request.config))
        except _chromium.Missing as e:
            pytest.fail(str(e), pytrace=False)


def _starts_playwright(func) -> bool:
    code = getattr(func, '__code__', None)
    return code is not None and 'sync_playwright' in code.co_names


# The longest modules first, so that pytest-xdist hands them out before the short ones (loadscope keeps a module together);
# the docs site second, as it needs no run: one worker builds it while the other makes the tiny run (whose single jobs leave
# a core free) instead of waiting for that run.
FIRST = ['test_notebooks.py', 'test_docs_site.py', 'test_explore_browser.py', 'test_natural_images.py', 'test_stages.py']


def pytest_collection_modifyitems(config, items):
    """A test that starts Playwright, itself or through a fixture, gets the `chromium` fixture before any other. The longest
    modules run first (`FIRST`), each module's tests in their own order."""
    rank = lambda item: FIRST.index(item.path.name) if item.path.name in FIRST else len(FIRST)
    items.sort(key=rank)                        # a stable sort: the order inside a module is kept
    for item in items:
        defs = getattr(getattr(item, '_fixtureinfo', None), 'name2fixturedefs', {})
        funcs = [getattr(item, 'function', None)] + [d[-1].func for d in defs.values() if d]
        if 'chromium' not in item.fixturenames and any(_starts_playwright(f) for f in funcs):
            item.fixturenames.insert(0, 'chromium')


# One tiny complete run per pytest run (issue 28): `geovq run` at the default shapes (latent D = 8, K = 64, the default widths,
# so that every chapter's checks hold) with a few epochs, 2 metric contexts and one evaluation seed. The notebooks and the
# explore chapter in the browser read it (through tests/notebook_runner.py) instead of training at the default size.
TINY_RUN = ['--epochs', '3', '--metric-contexts', '2', '--rbf-centres', '20', '--geodesic-subsample', '500',
            '--prior-epochs', '2', '--n-samples', '64', '--finetune-epochs', '1', '--vqvae-epochs', '2', '--eval-seeds', '0',
            '--classifier-epochs', '2', '--feature-ae-epochs', '2', '--max-reference', '400', '--no-progress']


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory) -> Path:
    "The folder of the session's tiny run, made once for all workers (read it, or copy it before writing into it)."
    import subprocess
    from filelock import FileLock
    shared = shared_folder(tmp_path_factory)
    run = shared / 'tiny' / 'digits'
    with FileLock(str(shared / 'tiny.lock')):              # the first worker makes it; the others wait, then read it
        if not (run / 'metrics.json').exists():
            geovq = Path(sys.executable).parent / 'geovq'
            env = {**os.environ, 'GEOVQ_PROGRESS': '0', 'PYTHONPATH': str(REPO)}
            res = subprocess.run([str(geovq), 'run', '--run-dir', str(run), *TINY_RUN], capture_output=True, text=True,
                                 env=env, preexec_fn=lambda: os.umask(0o022))  # whatever the caller's umask: test_stages checks modes
            assert res.returncode == 0, f"the tiny run failed:\n{res.stderr[-5000:]}"
    return run


@pytest.fixture(scope='session')
def chapters_run(tiny_run, tmp_path_factory) -> Path:
    """A copy of the tiny run that the chapters read and add to (the notebooks, the explore chapter in JupyterLab), in one folder
    per worker (the notebook tests run on one worker, in reading order)."""
    import shutil
    run = tmp_path_factory.mktemp('chapters') / 'digits'
    shutil.copytree(tiny_run, run)
    return run
