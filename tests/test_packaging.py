"The packaging promises: one source of metadata, a conda file that agrees with it, a library that is nbdev's export."
import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import leaks


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


def _code_cells(nb_path: Path):
    nb = json.loads(nb_path.read_text())
    return [(i, ''.join(c['source'])) for i, c in enumerate(nb['cells']) if c['cell_type'] == 'code']


EXPORT_CALL = re.compile(r'\bnbdev_export\s*\(|^\s*[!%]+.*\bnbdev_export\b', re.M)


def test_no_notebook_exports_the_library(repo):
    "Running a chapter top to bottom must not rewrite the package: no code cell calls nbdev_export (the developer does)."
    found = [f'{p.name} cell {i}: {src.strip()[:60]!r}' for p in sorted((repo / 'nbs').glob('*.ipynb'))
             for i, src in _code_cells(p) if EXPORT_CALL.search(src)]
    assert not found, 'these cells export the library when a learner runs the chapter; delete them:\n' + '\n'.join(found)


def test_export_call_pattern():
    assert EXPORT_CALL.search('#| hide\nimport nbdev; nbdev.nbdev_export()')
    assert EXPORT_CALL.search('from nbdev import nbdev_export\nnbdev_export ()')
    assert EXPORT_CALL.search('!nbdev_export --path .')
    assert not EXPORT_CALL.search("# after editing, run nbdev_export yourself\nprint('nbdev_export')")


def _output_text(out: dict) -> str:
    "An output as text: streams, errors and every mime type but images (base64 could spell anything)."
    return json.dumps({**out, 'data': {k: v for k, v in out.get('data', {}).items() if not k.startswith('image/')}},
                      ensure_ascii=False)


def test_saved_outputs_show_no_warning_or_developer_path(repo):
    "No saved output shows a FutureWarning (torch's jvp warning is silenced where it arises) or a developer's path."
    found = []
    for p in sorted((repo / 'nbs').glob('*.ipynb')):
        nb = json.loads(p.read_text())
        for i, cell in enumerate(nb['cells']):
            for out in cell.get('outputs', []):
                found += [f'{p.name} cell {i}: ...{x}...' for x in leaks(_output_text(out))]
    assert not found, 'saved outputs show a warning or a developer path:\n' + '\n'.join(found)


def test_leak_pattern():
    assert leaks("/work/main/.venv/lib/python3.11/site-packages/torch/_jit.py:12: FutureWarning: `torch.jit.script` is")
    assert leaks("saved to '/root/runs/digits'") and leaks('see /home/ann/x') and leaks('/Users/ann/x')
    assert not leaks('saved to runs/digits/work/model.safetensors; see https://example.org/home/ or ~/work/x')


def test_ci_runs_the_readme_test_command_and_nothing_else(repo):
    "CI does what the README tells a user: the test command brings its browser itself (tests/chromium.py)."
    ci = (repo / '.ci' / 'run').read_text()
    outside = re.sub(r"<<'PY'\n.*?\nPY\n", '', ci, flags=re.S)
    commands = [l.strip() for l in outside.splitlines() if l.strip() and not l.lstrip().startswith('#')]
    assert commands == ['set -euo pipefail', 'cd "$(dirname "$0")/.."', 'cmd=$(python3 - )', 'echo "+ $cmd"',
                        'exec bash -c "$cmd"'], commands


def _dirty_as_jupyterlab_saves_it(nb: dict) -> dict:
    "What running and saving a notebook in JupyterLab adds: execution counts, kernel metadata, cell metadata."
    nb['metadata'].update(kernelspec={'display_name': 'Python 3 (ipykernel)', 'language': 'python', 'name': 'python3'},
                          language_info={'name': 'python', 'version': '3.11.2', 'mimetype': 'text/x-python'})
    for n, cell in enumerate(nb['cells'], 1):
        cell['metadata'].update(scrolled=True, collapsed=False, jupyter={'outputs_hidden': False},
                                execution={'iopub.status.busy': '2026-01-01T00:00:00.000Z'})
        if cell['cell_type'] == 'code':
            cell['execution_count'] = n
            for out in cell['outputs']:
                if 'execution_count' in out: out['execution_count'] = n
    return nb


@pytest.mark.filterwarnings('ignore:Overriding existing pre_save_hook')
def test_nbdev_hooks_keep_a_clone_clean(repo, tmp_path, monkeypatch):
    """The README's set-up (`nbdev_install_hooks`) leaves the clone as committed, and saving a run notebook through
    Jupyter's contents manager with the hook it installs (what JupyterLab does on save) gives back the committed file."""
    import nbformat
    from jupyter_server.services.contents.filemanager import FileContentsManager
    from traitlets.config import Config
    clone, home = tmp_path / 'clone', tmp_path / 'home'
    shutil.copytree(repo / 'nbs', clone / 'nbs', ignore=shutil.ignore_patterns('.*', 'runs'))
    for name in ('settings.ini', '.gitignore', '.gitconfig', '.gitattributes'): shutil.copy(repo / name, clone / name)
    home.mkdir()
    env = {**os.environ, 'HOME': str(home), 'JUPYTER_DATA_DIR': str(home / 'data'), 'GIT_CONFIG_NOSYSTEM': '1',
           'GIT_AUTHOR_NAME': 't', 'GIT_AUTHOR_EMAIL': 't@t', 'GIT_COMMITTER_NAME': 't', 'GIT_COMMITTER_EMAIL': 't@t'}
    git = lambda *a: subprocess.run(['git', *a], cwd=clone, env=env, check=True, capture_output=True, text=True).stdout
    git('init', '-q'); git('add', '-A'); git('commit', '-qm', 'clone')
    hooks = subprocess.run([str(Path(sys.executable).parent / 'nbdev_install_hooks')], cwd=clone, env=env,
                           capture_output=True, text=True)
    assert hooks.returncode == 0 and 'Hooks are installed' in hooks.stdout, hooks.stderr
    assert git('status', '--porcelain') == '', 'nbdev_install_hooks changed the clone: commit what it writes'
    # JupyterLab runs from the clone (`.venv/bin/jupyter lab nbs/...`) with the server configuration the hooks wrote
    monkeypatch.chdir(clone)
    for k in ('HOME', 'JUPYTER_DATA_DIR'): monkeypatch.setenv(k, env[k])
    c = Config(); exec((home / '.jupyter' / 'jupyter_server_config.py').read_text(), {'c': c})
    cm = FileContentsManager(config=c, root_dir=str(clone))
    for nb_path in sorted((clone / 'nbs').glob('*.ipynb')):
        rel = nb_path.relative_to(clone).as_posix()
        model = cm.get(rel)
        model['content'] = nbformat.from_dict(_dirty_as_jupyterlab_saves_it(json.loads(json.dumps(model['content']))))
        cm.save(model, rel)
    changed = git('status', '--porcelain')
    assert changed == '', (f'saving through the nbdev hook changed {changed.split()[1::2]}: the committed notebooks must be '
                           'what nbdev_clean writes (run nbdev_clean), and the hook must be on (settings.ini: jupyter_hooks)')


def test_stage_functions_take_data_and_device_from_their_caller():
    """What a stage function uses is handed to it (CONTRIBUTING.md): no `data = data or load_dataset_for(cfg)`, no
    `device = device or setup_run(cfg)` anywhere in the library (a model's own device, `module_device`, may stand in), and no
    default for the data or device of a stage function."""
    import importlib, inspect, re
    modules = [importlib.import_module(f'geovq_tutorial.{m}')
               for m in ('vae', 'codebook', 'prior', 'finetune', 'evaluate', 'explore', 'pipeline', 'cli')]
    fallback = re.compile(r'.*\b(data|device)\s+or\s+(setup_run|load_dataset_for|pick_device)\(.*')
    fallbacks = [(m.__name__, f.group(0).strip()) for m in modules for f in fallback.finditer(Path(m.__file__).read_text())]
    assert not fallbacks, fallbacks
    stage = re.compile(r'(load_or_|evaluate_(run|seeds?)$|run_(scorer|geometry)$|training_metric$|train_vae$)')
    stage_functions = [f for m in modules for name, f in vars(m).items()
                       if inspect.isfunction(f) and f.__module__ == m.__name__ and stage.match(name)]
    assert len(stage_functions) >= 15, [f.__name__ for f in stage_functions]
    defaults = [(f.__name__, p.name) for f in stage_functions for p in inspect.signature(f).parameters.values()
                if p.name in ('data', 'device') and p.default is not inspect.Parameter.empty]
    assert not defaults, f'stage functions that would look these up themselves: {defaults}'
