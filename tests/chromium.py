"""The browser that the browser tests drive: Debian's chromium, brought by the test run itself.

A browser test (a test whose fixtures start Playwright; tests/conftest.py finds them) needs a Chromium binary:
`$GEOVQ_CHROMIUM` when that is set, otherwise Debian's `/usr/bin/chromium`. When `/usr/bin/chromium` is missing, the first
browser test of the run installs Debian's package `chromium` with apt-get, as root or through passwordless sudo, and runs
`apt-get update` first when the package lists do not offer it (a fresh machine has none). Where that cannot be done, every
browser test fails with one line that says what to install. Playwright's own browser download (`playwright install`) is
never used: Playwright drives the system's Chromium.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

DEFAULT = '/usr/bin/chromium'
ENV = 'GEOVQ_CHROMIUM'
PACKAGE = 'chromium'
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync']
HOW = f"install Debian's chromium as root (`apt-get update && apt-get install -y {PACKAGE}`) or set {ENV} to a Chromium binary"


class Missing(RuntimeError):
    "There is no Chromium and it could not be installed; the message is one line that says what to do."


def _runnable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def apt_prefix(environ: Mapping[str, str], is_root: bool | None = None) -> list[str] | None:
    """How apt-get runs as root here: `[]` as root, `['sudo', '-n']` with passwordless sudo, None when it cannot (or when
    there is no apt-get: not Debian)."""
    path = environ.get('PATH', os.defpath)
    if not shutil.which('apt-get', path=path): return None
    if is_root is None: is_root = os.geteuid() == 0
    if is_root: return []
    sudo = shutil.which('sudo', path=path)
    if sudo and subprocess.run([sudo, '-n', 'true'], capture_output=True, env=dict(environ)).returncode == 0:
        return [sudo, '-n']
    return None


def _apt(prefix: list[str], args: list[str], environ: Mapping[str, str], log: Path) -> subprocess.CompletedProcess:
    "Run `apt-get ARGS` (non-interactive, waiting for another apt's lock) and append its output to `log`."
    cmd = prefix + ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', '-q', '-o', 'DPkg::Lock::Timeout=300'] + args
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(environ))
    with open(log, 'a') as fh: fh.write(f"$ {' '.join(cmd)}\n{res.stdout}{res.stderr}(exit {res.returncode})\n\n")
    return res


def _last_line(res: subprocess.CompletedProcess) -> str:
    "apt-get's last complaint (its errors go to stderr), else its last line of output."
    for text in (res.stderr, res.stdout):
        lines = [l.strip() for l in text.splitlines() if l.strip()]
        if lines: return lines[-1]
    return f'exit {res.returncode}'


def ensure(environ: Mapping[str, str] | None = None, log: Path | None = None,
           say: Callable[[str], None] = print, default: str = DEFAULT, is_root: bool | None = None) -> str:
    """The path of the Chromium the browser tests use, installing Debian's chromium first when it is missing.
    Raises `Missing` (a one-line message saying what to install) when there is none and it cannot be installed.
    `default` and `is_root` are there for the tests of this function."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(ENV)
    if chosen:
        if _runnable(chosen): return chosen
        raise Missing(f"{ENV}={chosen} is not an executable file: point it at a Chromium binary, or unset it to use "
                      f"Debian's {default}")
    if _runnable(default): return default
    prefix = apt_prefix(environ, is_root)
    if prefix is None:
        raise Missing(f"the browser tests need Chromium at {default}, which is missing, and apt-get cannot be run as root "
                      f"here: {HOW}")
    log = Path(log) if log else Path(os.environ.get('TMPDIR', '/tmp')) / 'geovq-chromium-install.log'
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text('')
    say(f"{default} is missing: installing Debian's {PACKAGE} for the browser tests "
        f"(`{' '.join(prefix + ['apt-get', 'install', '-y', PACKAGE])}`, a minute or two; log: {log})")
    res = _apt(prefix, ['install', '-y', PACKAGE], environ, log)
    if res.returncode != 0:   # a fresh machine has no package lists (or stale ones): update them, then try again
        say('apt-get could not install it from the current package lists; running apt-get update first')
        upd = _apt(prefix, ['update'], environ, log)
        res = _apt(prefix, ['install', '-y', PACKAGE], environ, log) if upd.returncode == 0 else upd
    if res.returncode != 0:
        raise Missing(f"installing Debian's {PACKAGE} failed ({_last_line(res)}; full log: {log}): {HOW}")
    if not _runnable(default):
        raise Missing(f"apt-get installed {PACKAGE} but {default} is still missing (log: {log}): {HOW}")
    say(f'installed {default}')
    return default
