"The packaging promises: one source of metadata, a conda file that agrees with it, a library that is nbdev's export."
import configparser
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml


def _norm(req: str) -> str:
    return re.sub(r'\s+', '', req).lower().replace('_', '-')


def test_environment_yml_matches_pyproject(repo):
    project = tomllib.loads((repo / 'pyproject.toml').read_text())['project']
    wanted = {_norm(r) for r in project['dependencies'] + project['optional-dependencies']['test']}
    env = yaml.safe_load((repo / 'environment.yml').read_text())
    pip = next(d['pip'] for d in env['dependencies'] if isinstance(d, dict) and 'pip' in d)
    listed = {_norm(r) for r in pip if not r.startswith('-e')}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject.toml: {wanted - listed}"
    assert '-e .' in pip, 'environment.yml must install the package itself from the checkout'


def test_version_written_once(repo):
    cfg = configparser.ConfigParser(); cfg.read(repo / 'settings.ini')
    version = cfg['DEFAULT']['version']
    init = (repo / 'geovq_tutorial' / '__init__.py').read_text()
    assert f'__version__ = "{version}"' in init
    project = tomllib.loads((repo / 'pyproject.toml').read_text())['project']
    assert 'version' in project.get('dynamic', []) and 'version' not in project
    for key in ('description', 'author', 'requirements', 'license'):
        assert key not in cfg['DEFAULT'], f"settings.ini repeats package metadata {key!r}; it belongs in pyproject.toml"


def test_library_is_the_export_of_the_notebooks(repo, tmp_path):
    "Running nbdev_export on a copy of the notebooks reproduces the committed library exactly."
    for name in ('nbs', 'geovq_tutorial'):
        shutil.copytree(repo / name, tmp_path / name, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints', 'runs'))
    shutil.copy(repo / 'settings.ini', tmp_path / 'settings.ini')
    shutil.copy(repo / 'pyproject.toml', tmp_path / 'pyproject.toml')
    exporter = Path(sys.executable).parent / 'nbdev_export'
    subprocess.run([str(exporter)], cwd=tmp_path, check=True, capture_output=True)
    for py in sorted((repo / 'geovq_tutorial').glob('*.py')):
        assert (tmp_path / 'geovq_tutorial' / py.name).read_text() == py.read_text(), f"{py.name} differs from nbdev_export's output"
    made = {p.name for p in (tmp_path / 'geovq_tutorial').glob('*.py')}
    assert made == {p.name for p in (repo / 'geovq_tutorial').glob('*.py')}


def test_readme_has_the_two_commands(repo):
    text = (repo / 'README.md').read_text()
    for marker in ('<!-- ci:run-command -->', '<!-- ci:test-command -->'):
        assert marker in text
    ci = (repo / '.ci' / 'run').read_text()
    assert 'ci:test-command' in ci, '.ci/run must run the README test command'
