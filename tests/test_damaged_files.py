"""Issue 31, point 5: messages name the real cause. A damaged checkpoint header, a sidecar that holds no object and a full disk
each give one line with the file and a fix that works; an empty split is refused before any work, not blamed on the
learning rate; the NaN guard names the step sizes and loss weights it cannot rule out."""
import errno
import math

import pytest
import safetensors
import safetensors.torch
import torch

from geovq_tutorial import cli
from geovq_tutorial.core import STAGES, CheckpointError, Trainer, read_meta, save_checkpoint
from geovq_tutorial.data import DatasetError, load_dataset
from geovq_tutorial.vae import VAEConfig

# What safetensors raised when writing 400 KB into a 64 KB tmpfs (measured: mount -t tmpfs -o size=64k)
FULL_DISK = 'Error while serializing: I/O error: No space left on device (os error 28)'


def stored_vae(tmp_path):
    "A stored artifact of the `vae` stage (any tensors will do: find() reads, it does not build a model)."
    cfg = VAEConfig(run_dir=str(tmp_path / 'run'))
    STAGES['vae'].save(cfg, {'w': torch.ones(3)}, {'history': {}})
    assert STAGES['vae'].find(cfg) is not None
    return cfg


def test_a_damaged_header_names_the_file_and_is_made_again(tmp_path, capsys):
    cfg = stored_vae(tmp_path)
    path = STAGES['vae'].path(cfg)
    safetensors.torch.save_file({'w': torch.ones(3)}, str(path), metadata={'geovq': '{"settings": {"epochs": 1'})
    with pytest.raises(CheckpointError, match=f'checkpoint {path} has a damaged header .*delete it and make it again'):
        read_meta(path)
    assert STAGES['vae'].find(cfg) is None and 'damaged header' in capsys.readouterr().out   # the run makes it again


@pytest.mark.parametrize('content', ['null', '[1, 2]', '"done"'])
def test_a_sidecar_that_holds_no_object_is_a_damaged_artifact(tmp_path, capsys, content):
    cfg = stored_vae(tmp_path)
    STAGES['vae'].sidecar(cfg).write_text(content)
    assert STAGES['vae'].find(cfg) is None                  # was: AttributeError later, on info.get(...)
    assert f'holds {content}, not an object' in capsys.readouterr().out


def test_a_full_disk_is_an_os_error_naming_the_file(tmp_path, monkeypatch):
    def full(*a, **k): raise safetensors.SafetensorError(FULL_DISK)
    monkeypatch.setattr(safetensors.torch, 'save_file', full)
    with pytest.raises(OSError) as e: save_checkpoint(tmp_path / 'a.safetensors', {'w': torch.ones(3)}, {})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / 'a.safetensors')
    assert list(tmp_path.iterdir()) == []                   # nothing half-written left behind


def test_a_full_disk_during_training_is_one_line_from_the_cli(tmp_path, monkeypatch, capsys):
    def full(*a, **k): raise safetensors.SafetensorError(FULL_DISK)
    monkeypatch.setattr(safetensors.torch, 'save_file', full)
    assert cli.main(['train-vae', '--run-dir', str(tmp_path / 'run'), '--epochs', '1', '--hidden', '8', '--no-progress']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'vae.safetensors' in err and 'full file system' in err and 'free some space' in err, err


def test_an_empty_split_is_refused_before_training_and_the_advice_works(tmp_path, capsys, monkeypatch):
    def no_work(*a, **k): raise AssertionError('an empty split must be refused before any training')
    monkeypatch.setattr(cli, 'load_or_train_vae', no_work)
    assert cli.main(['train-vae', '--run-dir', str(tmp_path / 'run'), '--val-fraction', '0.0001', '--no-progress']) == 2
    err = capsys.readouterr().err.strip()
    assert 'the val split of digits is empty: --val-fraction 0.0001' in err and 'learning rate' not in err, err
    advised = float(err.split('give --val-fraction ')[1].split()[0])
    assert len(load_dataset('digits', val_fraction=advised).val) >= 1
    with pytest.raises(DatasetError, match='leave no image to train on'): load_dataset('digits', val_fraction=0.6, test_fraction=0.4)


def test_the_nan_guard_names_weight_decay_before_blaming_the_learning_rate():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e30)      # a loss weight far too large
    x = torch.randn(16, 4)
    trainer = Trainer(model, lambda m, xb: m(xb).pow(2).mean(), lambda m: 0.0, opt, epochs=20, batch_size=16, progress=False)
    with pytest.raises(FloatingPointError, match=r'weight decay 1e\+30\): lower the learning rate, or the weight of a loss term'):
        trainer.fit(x)


def test_the_nan_guard_blames_the_validation_split_when_training_is_finite():
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = Trainer(model, lambda m, xb: m(xb).pow(2).mean(), lambda m: math.nan, opt, epochs=2, batch_size=16, progress=False)
    with pytest.raises(FloatingPointError, match='the validation split is empty or not finite'): trainer.fit(torch.randn(16, 4))
