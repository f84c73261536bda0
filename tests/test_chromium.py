"""The test command brings its browser (tests/chromium.py): found, installed with a (fake) apt-get, or refused in one line.

apt-get and sudo are played by small scripts on a PATH of their own, and the Chromium binary is a file in a temporary
folder, so these tests install nothing and need no browser."""
import os
import re
import subprocess
import sys
import time

import pytest

import chromium
from conftest import REPO

# A fake apt-get: logs its arguments; `update` makes the package lists, `install` fails without them (as on a fresh
# machine) and otherwise "installs" the browser at $FAKE_TARGET. $FAKE_FAIL makes every call fail.
FAKE_APT = """#!/bin/sh
echo "apt-get $*" >> "$FAKE_LOG"
if [ -n "$FAKE_FAIL" ]; then echo "E: Could not get lock /var/lib/dpkg/lock-frontend" >&2; exit 100; fi
case " $* " in
  *" update "*) touch "$FAKE_LISTS"; echo "Reading package lists..."; exit 0;;
  *" install "*) if [ -f "$FAKE_LISTS" ]; then printf '#!/bin/sh\\n' > "$FAKE_TARGET"; chmod +x "$FAKE_TARGET"; exit 0;
                 else echo "E: Unable to locate package chromium" >&2; exit 100; fi;;
esac
exit 1
"""
FAKE_SUDO = """#!/bin/sh
echo "sudo $*" >> "$FAKE_LOG"
[ "$1" = "-n" ] && shift
exec "$@"
"""


@pytest.fixture
def fake(tmp_path):
    "An environment whose PATH finds a fake apt-get first, and the path where the browser would be installed."
    bin_ = tmp_path / 'bin'; bin_.mkdir()
    (bin_ / 'apt-get').write_text(FAKE_APT); (bin_ / 'apt-get').chmod(0o755)
    env = {'PATH': f'{bin_}{os.pathsep}/usr/bin{os.pathsep}/bin', 'FAKE_LOG': str(tmp_path / 'calls'),
           'FAKE_LISTS': str(tmp_path / 'lists'), 'FAKE_TARGET': str(tmp_path / 'chromium')}
    return env, tmp_path


def _calls(tmp_path) -> list[str]:
    f = tmp_path / 'calls'
    return f.read_text().splitlines() if f.exists() else []


def test_present_browser_is_used_as_it_is(fake):
    env, tmp = fake
    (tmp / 'chromium').write_text('#!/bin/sh\n'); (tmp / 'chromium').chmod(0o755)
    assert chromium.ensure(env, log=tmp / 'log', default=str(tmp / 'chromium'), is_root=True) == str(tmp / 'chromium')
    assert _calls(tmp) == []


def test_missing_browser_is_installed_updating_the_lists_first_when_needed(fake):
    env, tmp = fake
    said = []
    path = chromium.ensure(env, log=tmp / 'log', say=said.append, default=str(tmp / 'chromium'), is_root=True)
    assert path == str(tmp / 'chromium') and os.access(path, os.X_OK)
    opts = '-q -o DPkg::Lock::Timeout=300'
    assert _calls(tmp) == [f'apt-get {opts} install -y chromium', f'apt-get {opts} update', f'apt-get {opts} install -y chromium']
    assert 'installing Debian' in said[0] and said[-1] == f'installed {path}'
    assert 'Unable to locate package chromium' in (tmp / 'log').read_text()


def test_installed_without_update_when_the_lists_know_the_package(fake):
    env, tmp = fake
    (tmp / 'lists').touch()
    chromium.ensure(env, log=tmp / 'log', say=lambda s: None, default=str(tmp / 'chromium'), is_root=True)
    assert [c.split()[-1] for c in _calls(tmp)] == ['chromium']


def test_passwordless_sudo_runs_apt_get_when_not_root(fake):
    env, tmp = fake
    (tmp / 'bin' / 'sudo').write_text(FAKE_SUDO); (tmp / 'bin' / 'sudo').chmod(0o755)
    assert chromium.apt_prefix(env, is_root=False) == [str(tmp / 'bin' / 'sudo'), '-n']
    (tmp / 'calls').unlink()
    chromium.ensure(env, log=tmp / 'log', say=lambda s: None, default=str(tmp / 'chromium'), is_root=False)
    assert _calls(tmp)[0] == 'sudo -n true' and _calls(tmp)[1].startswith('sudo -n env DEBIAN_FRONTEND=noninteractive apt-get')
    assert os.access(tmp / 'chromium', os.X_OK)


def test_sudo_that_asks_for_a_password_is_not_used(fake):
    env, tmp = fake
    (tmp / 'bin' / 'sudo').write_text('#!/bin/sh\necho "sudo: a password is required" >&2; exit 1\n')
    (tmp / 'bin' / 'sudo').chmod(0o755)
    assert chromium.apt_prefix(env, is_root=False) is None


def _refusal(env, tmp, is_root=True) -> str:
    with pytest.raises(chromium.Missing) as e:
        chromium.ensure(env, log=tmp / 'log', say=lambda s: None, default=str(tmp / 'chromium'), is_root=is_root)
    msg = str(e.value)
    assert '\n' not in msg, 'the message must be one line'
    return msg


def test_refused_in_one_line_without_root_or_sudo(fake):
    env, tmp = fake
    msg = _refusal(env, tmp, is_root=False)
    assert 'apt-get cannot be run as root' in msg and 'apt-get install -y chromium' in msg and 'GEOVQ_CHROMIUM' in msg
    assert _calls(tmp) == []


def test_refused_in_one_line_without_apt_get(fake):
    env, tmp = fake
    env['PATH'] = str(tmp / 'nowhere')
    msg = _refusal(env, tmp)
    assert f'Chromium at {tmp / "chromium"}' in msg and 'apt-get install -y chromium' in msg


def test_refused_in_one_line_when_apt_get_fails(fake):
    env, tmp = fake
    env['FAKE_FAIL'] = '1'
    msg = _refusal(env, tmp)
    assert 'installing Debian\'s chromium failed (E: Could not get lock' in msg and str(tmp / 'log') in msg
    assert 'apt-get install -y chromium' in msg


def test_a_chosen_browser_that_is_missing_is_not_replaced(fake):
    env, tmp = fake
    env['GEOVQ_CHROMIUM'] = str(tmp / 'my-chrome')
    msg = _refusal(env, tmp)
    assert msg.startswith(f'GEOVQ_CHROMIUM={tmp / "my-chrome"} is not an executable file') and _calls(tmp) == []


def test_browser_tests_ask_for_chromium_first_and_fail_in_one_line(tmp_path):
    """conftest gives `chromium` to exactly the tests that start Playwright, before their other fixtures (so a missing
    browser is reported before the docs site is built), and its refusal is the test's one-line error."""
    env = {**os.environ, 'GEOVQ_CHROMIUM': str(tmp_path / 'no-chromium'), 'PYTHONPATH': str(REPO), 'COLUMNS': '1000'}
    cmd = [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-n', '0', '-q', '-rE', '--setup-plan',
           'tests/test_docs_site.py', 'tests/test_explore_browser.py']
    plan = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True).stdout
    used = dict(re.findall(r'^\s*tests/\S+::(\w+)\S* \(fixtures used: ([^)]*)\)', plan, re.M))
    uses = {name for name, fixtures in used.items() if 'chromium' in fixtures.split(', ')}
    assert {'test_every_page_loads_without_errors', 'test_search_finds_geodesic', 'test_notebook_runs_without_errors',
            'test_slider_changes_plot'} <= uses, plan[-3000:]
    assert not uses & {'test_build_is_complete_quick_and_clean', 'test_readme_is_generated_from_index_notebook',
                       'test_api_reference_covers_every_export'}, plan[-3000:]
    t0 = time.time()
    run = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-n', '0', '-q', '-rE',
                          'tests/test_docs_site.py::test_search_finds_geodesic'], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert time.time() - t0 < 30, 'the missing browser should be reported before the docs site is built'
    errors = [l for l in run.stdout.splitlines() if l.startswith('ERROR ')]
    assert run.returncode == 1 and len(errors) == 1, run.stdout[-3000:]
    assert errors[0].endswith(f'Failed: GEOVQ_CHROMIUM={tmp_path / "no-chromium"} is not an executable file: point it '
                              "at a Chromium binary, or unset it to use Debian's /usr/bin/chromium"), errors[0]
