"""The installed `geovq` console script: options grouped by section with each default once, `--version`, progress bars only on
a terminal, closing lines that work as printed, and every bad input (issue 13) refused before any work with one line and exit
status 2."""
import errno
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

import pytest

from geovq_tutorial import __version__, cli, pipeline
from geovq_tutorial.core import STAGES, stage_order
from geovq_tutorial.pipeline import RunConfig

GEOVQ = str(Path(sys.executable).parent / 'geovq')
TINY_VAE = ['--epochs', '1', '--hidden', '8']


def _run(*args, env=None, **kw):
    env = {**os.environ, 'PYTHONPATH': str(Path(__file__).resolve().parents[1]), **(env or {})}
    return subprocess.run([GEOVQ, *map(str, args)], capture_output=True, text=True, env=env, **kw)


def refused(capsys, *args) -> str:
    "Run `geovq args` in-process; assert it was refused with one line and exit status 2; return that line."
    assert cli.main([*map(str, args)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f'geovq {args[0]}: error: '), err
    return err


def test_help_groups_options_by_section_and_prints_each_default_once():
    out = _run('run', '--help').stdout
    for f in fields(RunConfig):
        assert '--' + f.name.replace('_', '-') in out, f.name
    assert 'VAEConfig settings' in out and 'PriorConfig settings' in out and 'examples:' in out
    flat = ' '.join(out.split())
    assert not re.search(r'\(default: [^)]*\) \(default:', flat), 'a default printed twice'
    assert flat.count("(default: 'runs/digits')") == 1
    assert all(n in flat for n in stage_order()), '--force names the declared stages'
    vae_help = _run('train-vae', '--help').stdout
    assert '--epochs' in vae_help and '--prior-epochs' not in vae_help


def test_version():
    res = _run('--version')
    assert res.returncode == 0 and res.stdout.strip() == f'geovq {__version__}'


def test_force_choices_are_the_declared_stages(capsys):
    with pytest.raises(SystemExit) as e: cli.main(['run', '--force', 'report'])
    assert e.value.code == 2 and 'invalid choice' in capsys.readouterr().err
    assert 'vqvae' not in pipeline.downstream_of(['vae']), 'forcing the VAE keeps the VQ-VAE'


def test_unknown_dataset_is_a_clear_error(tmp_path):
    res = _run('train-vae', '--run-dir', tmp_path / 'r', '--dataset', 'imagenet')
    assert res.returncode == 2 and 'digits' in res.stderr and 'Traceback' not in res.stderr
    assert not (tmp_path / 'r').exists(), 'nothing is written for a run that cannot start'


def test_missing_torchvision_data_offline_names_the_files(tmp_path):
    res = _run('train-vae', '--run-dir', tmp_path / 'r', '--dataset', 'fashion_mnist', '--data-root', tmp_path / 'd', '--no-download')
    assert res.returncode == 2
    assert str(tmp_path / 'd' / 'FashionMNIST' / 'raw') in res.stderr and 'train-images-idx3-ubyte' in res.stderr
    assert not (tmp_path / 'r').exists()


def test_invalid_value_mismatched_checkpoint_and_closing_lines(tmp_path):
    res = _run('train-vae', '--beta', '-1')
    assert res.returncode == 2 and 'config.beta' in res.stderr
    run = tmp_path / 'r'
    ok = _run('train-vae', '--run-dir', run, *TINY_VAE, '--no-progress')
    assert ok.returncode == 0, ok.stderr
    assert f'Run folder: {run.absolute()}' in ok.stdout and str(STAGES['vae'].path(RunConfig(run_dir=str(run))).absolute()) in ok.stdout
    hint = shlex.split(ok.stdout.split('Next: the tour, then the chapters in order, in JupyterLab:')[1].strip().splitlines()[0])
    exe, notebook = Path(hint[0]), Path(hint[-1])                   # a command that works as printed
    assert exe.is_absolute() and os.access(exe, os.X_OK) and notebook.is_absolute() and notebook.name == '000_tour.ipynb' \
        and notebook.is_file(), hint
    hooks = shlex.split(ok.stdout.split('Once per clone, so that saving a notebook keeps only what you changed:')[1].strip().splitlines()[0])
    assert hooks[0] == 'cd' and (Path(hooks[1]) / 'settings.ini').is_file() and hooks[-1].endswith('nbdev_install_hooks'), hooks
    bad = _run('train-vae', '--run-dir', run, '--epochs', '1', '--hidden', '16', '--no-progress')
    assert bad.returncode == 2 and 'hidden' in bad.stderr and '--force' in bad.stderr and 'Traceback' not in bad.stderr
    forced = _run('train-vae', '--run-dir', run, '--epochs', '1', '--hidden', '16', '--no-progress', '--force')
    assert forced.returncode == 0, forced.stderr


def test_progress_bars_only_on_a_terminal_unless_asked(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'GEOVQ_PROGRESS'}
    quiet = subprocess.run([GEOVQ, 'train-vae', '--run-dir', str(tmp_path / 'a'), *TINY_VAE], capture_output=True, text=True, env=env)
    assert quiet.returncode == 0 and '%|' not in quiet.stderr + quiet.stdout, 'stdout is not a terminal: no bars'
    shown = subprocess.run([GEOVQ, 'train-vae', '--run-dir', str(tmp_path / 'b'), *TINY_VAE, '--progress'], capture_output=True,
                           text=True, env=env)
    assert shown.returncode == 0 and '%|' in shown.stderr, '--progress forces them on'


BAD_CONFIGS = {'number': (b'5', 'holds a JSON number (5)'), 'null': (b'null', 'holds a JSON null'),
               'list': (b'[1, 2]', 'holds a JSON list ([1, 2])'), 'string': (b'"abc"', 'holds a JSON string ("abc")'),
               'not-utf8': (b'\xff\xfe{"epochs": 1}', 'is not a UTF-8 text file'), 'malformed': (b'{"epochs": 1,', 'is not valid JSON'),
               'unknown-keys': (b'{"epochs": 1, "epoch": 2, "lr_max": 3}', "unknown setting(s) ['epoch', 'lr_max']")}


@pytest.mark.parametrize('case', BAD_CONFIGS)
def test_bad_config_file(tmp_path, capsys, case):
    content, says = BAD_CONFIGS[case]
    path = tmp_path / 'config.json'; path.write_bytes(content)
    err = refused(capsys, 'run', '--config', path, '--run-dir', tmp_path / 'r')
    assert says in err and str(path) in err and 'delete' not in err.lower(), err
    assert not (tmp_path / 'r').exists()


def test_config_that_is_a_folder(tmp_path, capsys):
    err = refused(capsys, 'run', '--config', tmp_path)
    assert 'is a folder' in err and 'config.json' in err


def test_bad_config_file_without_traceback(tmp_path):
    (tmp_path / 'c.json').write_text('"abc"')
    res = _run('run', '--config', tmp_path / 'c.json')
    assert res.returncode == 2 and 'Traceback' not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_run_dir_that_is_a_file_or_under_one(tmp_path, capsys):
    (tmp_path / 'f').write_text('x')
    assert 'is a file, not a folder' in refused(capsys, 'run', '--run-dir', tmp_path / 'f')
    assert f"{tmp_path / 'f'} is a file" in refused(capsys, 'train-vae', '--run-dir', tmp_path / 'f' / 'run')
    assert 'is not a folder' in refused(capsys, 'report', '--run-dir', tmp_path / 'f')


def test_run_dir_on_a_read_only_file_system():
    from test_stages import read_only                  # tests/ is on sys.path (no package)
    folder = Path(tempfile.mkdtemp(prefix='geovq-ro-')); folder.chmod(0o755)
    env = {'MPLCONFIGDIR': tempfile.mkdtemp(), 'GEOVQ_PROGRESS': '0'}; Path(env['MPLCONFIGDIR']).chmod(0o777)
    try:
        with read_only(folder) as preexec: res = _run('train-vae', '--run-dir', folder / 'run', *TINY_VAE, env=env, preexec_fn=preexec)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert 'read-only file system' in res.stderr or 'not writable' in res.stderr
        assert list(folder.iterdir()) == []
    finally: shutil.rmtree(folder, ignore_errors=True)


def test_run_dir_on_a_full_file_system(tmp_path, capsys, monkeypatch):
    def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(pipeline.tempfile, 'NamedTemporaryFile', full)
    assert 'full file system' in refused(capsys, 'run', '--run-dir', tmp_path / 'r')
    monkeypatch.undo()
    def fills_up(cfg, force=()): raise OSError(errno.ENOSPC, 'No space left on device', str(Path(cfg.run_dir) / 'vae.safetensors'))
    monkeypatch.setattr(cli, 'run_pipeline', fills_up)              # the disk fills up during the run
    err = refused(capsys, 'run', '--run-dir', tmp_path / 'r')
    assert 'vae.safetensors' in err and 'free some space' in err and 'same command continues' in err


@pytest.mark.parametrize('option', [['--top-k', '1000'], ['--temperature', '1e-39']])
def test_sampling_settings_refused_at_validation(tmp_path, capsys, monkeypatch, option):
    def no_work(*a, **k): raise AssertionError(f'{option} must be refused at validation, before any work')
    monkeypatch.setattr(cli, 'run_pipeline', no_work)
    err = refused(capsys, 'run', '--run-dir', tmp_path / 'r', *option)
    assert option[0].lstrip('-').replace('-', '_') in err
    assert not (tmp_path / 'r').exists()


def test_a_requested_gpu_that_is_not_there_is_refused_and_the_advice_works(tmp_path, capsys, monkeypatch):
    "Issue 12, point 5: the device is 'auto' unless overridden; `--device cuda` without CUDA is one line, before any work."
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)       # as on a machine without a GPU, wherever this runs
    err = refused(capsys, 'run', '--run-dir', tmp_path / 'r', '--device', 'cuda')
    assert "CUDA is not available here; use --device cpu (or auto)" in err and not (tmp_path / 'r').exists()
    devices = []
    def data_loaded(cfg): devices.append(pipeline.pick_device(cfg.device)); raise SystemExit('stop after the device check')
    monkeypatch.setattr(pipeline, 'load_dataset_for', data_loaded)       # called right after the device is picked
    for advice in ('cpu', 'auto'):
        with pytest.raises(SystemExit, match='stop after'): cli.main(['run', '--run-dir', str(tmp_path / 'r'), '--device', advice])
    assert devices == [torch.device('cpu')] * 2


# Issue 31: settings and folders that would cost a whole run, refused before any work; a run ended by SIGTERM says so.
def test_an_empty_run_dir_is_refused_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in (['run', '--run-dir', ''], ['report', '--run-dir', ' '], ['train-vae', '--run-dir', '']):
        assert '--run-dir is empty (an unset shell variable?)' in refused(capsys, *args)
    assert list(tmp_path.iterdir()) == []


def test_a_seed_outside_the_eval_seeds_is_refused_before_any_work_and_the_advice_works(tmp_path, capsys):
    err = refused(capsys, 'run', '--run-dir', tmp_path / 'run', '--seed', '3', '--eval-seeds', '0')
    assert 'give --seed 0, or --eval-seeds 0,3' in err and not (tmp_path / 'run').exists()
    for advice in (['--seed', '0', '--eval-seeds', '0'], ['--seed', '3', '--eval-seeds', '0,3']):
        assert cli._config(cli.build_parser().parse_args(['run', '--run-dir', str(tmp_path / 'run'), *advice])).seed == int(advice[1])


def test_a_copied_config_never_writes_into_the_original(tmp_path, capsys):
    original, copy = tmp_path / 'R', tmp_path / 'R2'
    original.mkdir(); (original / 'config.json').write_text(json.dumps(RunConfig(run_dir=str(original)).to_dict()))
    shutil.copytree(original, copy)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*')}
    err = refused(capsys, 'run', '--config', copy / 'config.json', '--force', 'prior')
    assert f'records the run folder {original}, not the folder it lies in ({copy})' in err and f'--run-dir {copy}' in err
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*')} == before
    for folder in (copy, original):                # the advice: --run-dir names the folder meant
        ns = cli.build_parser().parse_args(['run', '--config', str(copy / 'config.json'), '--run-dir', str(folder)])
        assert cli._config(ns).run_dir == str(folder)
    assert cli._config(cli.build_parser().parse_args(['run', '--config', str(original / 'config.json')])).run_dir == str(original)


def test_sigterm_ends_a_run_in_one_line_and_ends_its_workers(tmp_path):
    from test_run_dies_cleanly import alive, children, wait_until
    tiny = ['--epochs', '50', '--hidden', '8', '--latent-dim', '4', '--eval-seeds', '0,1', '--no-progress', '--workers', '2']
    env = {**os.environ, 'PYTHONPATH': str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([GEOVQ, 'run', '--run-dir', str(tmp_path / 'run'), *tiny], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    wait_until(lambda: len(children(proc.pid)) == 2, 120, 'two workers started')
    workers = children(proc.pid)
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == (f'geovq run: error: interrupted; the stages completed so far are kept in '
                                            f'{tmp_path / "run"}, and the same command continues from them'), err[-2000:]
    assert not any(map(alive, workers))


@pytest.mark.parametrize('option, value', [('--latent-dim', 10**6), ('--hidden', 10**7), ('--prior-layers', 10**12),
                                           ('--prior-dim', 4 * 10**6), ('--knn', 10**5), ('--codebook-k', 10**6)])
def test_an_impossible_size_is_refused_before_any_work_with_the_largest_that_fits(tmp_path, capsys, monkeypatch, option, value):
    def no_work(*a, **k): raise AssertionError(f'{option} {value} must be refused before any work')
    for name in ('run_pipeline', 'begin_run'): monkeypatch.setattr(cli, name, no_work)
    err = refused(capsys, 'run', '--run-dir', tmp_path / 'run', option, value)
    assert f'{option} {value} is too large' in err, err
    largest = int(err.rsplit(f'the largest that fits is {option} ', 1)[1])
    assert 0 < largest < value
    ns = cli.build_parser().parse_args(['run', '--run-dir', str(tmp_path / 'run'), option, str(largest)])
    cli.check_sizes(cli._config(ns), cli.memory_bytes())      # the advice, followed, passes every size check
    assert not (tmp_path / 'run').exists()


def test_too_many_photo_patches_are_refused_before_they_are_cut(tmp_path, capsys, monkeypatch):
    def no_load(*a, **k): raise AssertionError('the patches must not be cut')
    monkeypatch.setattr(cli, 'load_dataset_for', no_load)
    err = refused(capsys, 'run', '--dataset', 'photos', '--run-dir', tmp_path / 'run', '--photo-patches', 10**8)
    assert '--photo-patches 100000000 is too large' in err and 'the largest that fits is --photo-patches' in err


def test_a_second_run_into_a_busy_folder_waits_then_refuses_other_settings(tiny_run, tmp_path):
    """Issue 31, point 3: while a run holds the folder, a second `geovq run` with other settings says it waits and writes
    nothing; once the folder is free it is refused (the first run's artifacts differ) and config.json still describes them."""
    import fcntl
    import select
    import shutil
    import time
    from conftest import TINY_RUN
    run = tmp_path / 'digits'
    shutil.copytree(tiny_run, run)
    before = (run / 'config.json').read_text()
    other = [('4' if a == '3' and TINY_RUN[i - 1] == '--epochs' else a) for i, a in enumerate(TINY_RUN)]
    geovq = Path(sys.executable).parent / 'geovq'
    (run / '.locks').mkdir(exist_ok=True)
    with open(run / '.locks' / 'run.lock', 'w') as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)                       # a first run holds the folder
        p = subprocess.Popen([str(geovq), 'run', '--run-dir', str(run), *other], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env={**os.environ, 'GEOVQ_PROGRESS': '0'})
        seen, deadline = '', time.time() + 120
        while 'waiting' not in seen and time.time() < deadline and p.poll() is None:
            if select.select([p.stdout], [], [], 1)[0]: seen += p.stdout.readline()
        assert 'another `geovq run` is writing into' in seen, seen
        assert (run / 'config.json').read_text() == before, 'the waiting run wrote config.json'
    out = seen + p.communicate(timeout=300)[0]
    assert p.returncode != 0 and 'epochs' in out, out[-2000:]
    assert (run / 'config.json').read_text() == before, 'the refused run changed config.json'
