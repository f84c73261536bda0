"The installed `geovq` console script: help for every option, clear errors with exit status 2."
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

from geovq_tutorial._legacy_core import RunConfig

GEOVQ = str(Path(sys.executable).parent / 'geovq')


def _run(*args, **kw):
    return subprocess.run([GEOVQ, *args], capture_output=True, text=True, **kw)


def test_help_explains_every_option():
    out = _run('run', '--help').stdout
    for f in fields(RunConfig):
        assert '--' + f.name.replace('_', '-') in out, f.name
    assert 'epochs' in _run('train-vae', '--help').stdout


def test_unknown_dataset_is_a_clear_error(tmp_path):
    res = _run('train-vae', '--run-dir', str(tmp_path / 'r'), '--dataset', 'imagenet')
    assert res.returncode == 2 and 'choose one of: digits' in res.stderr
    assert not (tmp_path / 'r').exists(), 'nothing is written for a run that cannot start'


def test_missing_torchvision_data_offline_names_the_files(tmp_path):
    res = _run('train-vae', '--run-dir', str(tmp_path / 'r'), '--dataset', 'fashion_mnist', '--data-root', str(tmp_path / 'd'),
               '--no-download')
    assert res.returncode == 2
    assert str(tmp_path / 'd' / 'FashionMNIST' / 'raw') in res.stderr and 'train-images-idx3-ubyte' in res.stderr


def test_invalid_value_and_mismatched_checkpoint(tmp_path):
    res = _run('train-vae', '--beta', '-1')
    assert res.returncode == 2 and 'config.beta' in res.stderr
    run = str(tmp_path / 'r')
    ok = _run('train-vae', '--run-dir', run, '--epochs', '1', '--hidden', '8', '--no-progress')
    assert ok.returncode == 0, ok.stderr
    assert 'Run folder' in ok.stdout and 'jupyter lab' in ok.stdout
    bad = _run('train-vae', '--run-dir', run, '--epochs', '1', '--hidden', '16', '--no-progress')
    assert bad.returncode == 2 and 'hidden' in bad.stderr and '--force' in bad.stderr
    forced = _run('train-vae', '--run-dir', run, '--epochs', '1', '--hidden', '16', '--no-progress', '--force')
    assert forced.returncode == 0, forced.stderr
