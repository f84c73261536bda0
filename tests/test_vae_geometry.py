"Data, VAE and geometry: bad inputs refused with one clear line each, and an interrupted VAE training resumed exactly."
import dataclasses
import subprocess
import sys
import warnings

import pytest
import torch

from geovq_tutorial.core import CheckpointError, StageError, Trainer, setup_run
from geovq_tutorial.data import DatasetError, ImageSplits, check_images, load_dataset, write_fake_mnist
from geovq_tutorial.vae import (CELLS, GRID, VAE_STAGE, VAEConfig, SpatialVAE, load_or_train_vae, load_vae, train_vae,
                                tutorial_config, chapter_setup)
from geovq_tutorial.geometry import check_grids, metric_tensors, segment_lengths


@pytest.fixture(scope='module')
def small():
    d = load_dataset('digits')
    return ImageSplits('digits', d.train[:128], d.val[:32], d.test[:32], d.train_labels[:128], d.val_labels[:32],
                       d.test_labels[:32], d.classes)


def tiny_cfg(tmp_path, **changes):
    return VAEConfig(**{'run_dir': str(tmp_path), 'epochs': 5, 'hidden': 8, 'latent_dim': 4, 'batch_size': 32, 'threads': 1,
                        'progress': False, 'device': 'cpu', **changes})


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------- data
def test_images_in_0_255_are_refused_with_the_fix(small):
    with pytest.raises(ValueError, match='divide by 255'):
        check_images(small.train * 255)
    bytes_like = dataclasses.replace(small, train=small.train * 255)
    with pytest.raises(ValueError, match='divide by 255'):
        train_vae(SpatialVAE((1, 8, 8), 4, 8), bytes_like, VAEConfig(epochs=1, progress=False), torch.device('cpu'))


def test_a_nan_pixel_is_a_data_problem_not_the_learning_rate(small):
    train = small.train.clone(); train[3, 0, 2, 2] = float('nan')
    with pytest.raises(ValueError, match='NaN') as e:
        train_vae(SpatialVAE((1, 8, 8), 4, 8), dataclasses.replace(small, train=train), VAEConfig(epochs=1, progress=False),
                  torch.device('cpu'))
    assert 'learning rate' not in str(e.value) and 'data problem' in str(e.value)
    assert '\n' not in str(e.value)


def test_truncated_mnist_file_is_named_with_the_fix(tmp_path):
    raw = write_fake_mnist(tmp_path / 'MNIST' / 'raw')
    f = raw / 'train-images-idx3-ubyte'
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DatasetError) as e:
        load_dataset('mnist', tmp_path, download=False)
    msg = str(e.value)
    assert str(f) in msg and 'delete it and download it again' in msg and '\n' not in msg


def test_truncated_header_and_labels_are_caught(tmp_path):
    raw = write_fake_mnist(tmp_path / 'MNIST' / 'raw')
    (raw / 't10k-labels-idx1-ubyte').write_bytes(b'\x00\x00')
    with pytest.raises(DatasetError, match='t10k-labels-idx1-ubyte is truncated'):
        load_dataset('mnist', tmp_path, download=False)


def test_intact_fake_mnist_loads(tmp_path):
    write_fake_mnist(tmp_path / 'MNIST' / 'raw')
    assert load_dataset('mnist', tmp_path, download=False).image_shape == (1, 32, 32)


# ---------------------------------------------------------------- vae
def test_decode_logits_wrong_channels_same_error_as_decode():
    vae = SpatialVAE((1, 8, 8), latent_dim=4, hidden=8)
    z = torch.zeros(2, 8, GRID, GRID)
    msgs = []
    for f in (vae.decode, vae.decode_logits):
        with pytest.raises(ValueError) as e: f(z)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1] and '[N, 4, 4, 4]' in msgs[0]


def test_cells_is_grid_squared():
    assert CELLS == GRID * GRID == 16


def test_interrupted_vae_training_resumes_to_the_uninterrupted_result(tmp_path, small, monkeypatch):
    torch.set_num_threads(1)
    full, full_hist = load_or_train_vae(tiny_cfg(tmp_path / 'full'), small, device=setup_run(tiny_cfg(tmp_path / 'full')))
    cfg = tiny_cfg(tmp_path / 'cut')
    record, calls = Trainer.record, []
    def record_then_interrupt(self, *a, **k):
        if self.epoch == 3 and not calls: calls.append(1); raise KeyboardInterrupt
        return record(self, *a, **k)
    monkeypatch.setattr(Trainer, 'record', record_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        load_or_train_vae(cfg, small, device=setup_run(cfg))
    partial = VAE_STAGE.path(cfg).with_suffix('.partial.safetensors')
    assert partial.exists() and not VAE_STAGE.path(cfg).exists()
    monkeypatch.setattr(Trainer, 'record', record)
    resumed, hist = load_or_train_vae(cfg, small, device=setup_run(cfg))
    assert same_weights(resumed, full)
    assert hist['epoch'] == full_hist['epoch'] and hist['val'] == full_hist['val'] and hist['test'] == full_hist['test']
    assert not partial.exists() and not partial.with_suffix('.json').exists()


def test_partial_checkpoint_of_other_settings_is_not_resumed(tmp_path, small, monkeypatch):
    cfg = tiny_cfg(tmp_path)
    record = Trainer.record
    def interrupt(self, *a, **k):
        if self.epoch == 2: raise KeyboardInterrupt
        return record(self, *a, **k)
    monkeypatch.setattr(Trainer, 'record', interrupt)
    with pytest.raises(KeyboardInterrupt): load_or_train_vae(cfg.replace(lr=1e-3), small, device=setup_run(cfg))
    monkeypatch.setattr(Trainer, 'record', record)
    model, hist = load_or_train_vae(cfg, small, device=setup_run(cfg))          # other lr: starts afresh, equal to a clean run
    clean, _ = load_or_train_vae(tiny_cfg(tmp_path / 'clean'), small, device=setup_run(tiny_cfg(tmp_path / 'clean')))
    assert same_weights(model, clean)


def test_stored_vae_of_other_settings_is_refused_with_the_command(tmp_path, small):
    cfg = tiny_cfg(tmp_path, epochs=2)
    load_or_train_vae(cfg, small, device=setup_run(cfg))
    with pytest.raises(StageError, match=r'hidden: stored 8, now 16.*geovq run --force vae'):
        load_or_train_vae(cfg.replace(hidden=16), small, device=setup_run(cfg))
    with pytest.raises(StageError, match='hidden'):
        load_vae(cfg.replace(hidden=16), small.image_shape)


def test_load_vae_refuses_absent_with_advice_and_writes_nothing(tmp_path):
    with pytest.raises(CheckpointError, match='geovq train-vae'):
        load_vae(tiny_cfg(tmp_path / 'none'), (1, 8, 8))
    assert not (tmp_path / 'none').exists()


def test_tutorial_config_sections_and_run_dir(monkeypatch, tmp_path):
    monkeypatch.setenv('GEOVQ_TUTORIAL_RUN_DIR', str(tmp_path))
    cfg = tutorial_config(epochs=3)
    assert isinstance(cfg, VAEConfig) and cfg.run_dir == str(tmp_path) and cfg.epochs == 3
    from geovq_tutorial.geometry import GeometryConfig
    assert isinstance(tutorial_config(GeometryConfig, knn=4), GeometryConfig)


def test_chapter_setup_trains_once_then_loads(monkeypatch, tmp_path):
    monkeypatch.setenv('GEOVQ_TUTORIAL_RUN_DIR', str(tmp_path))
    a = chapter_setup(epochs=1, hidden=8, threads=1, progress=False, device='cpu')
    b = chapter_setup(epochs=1, hidden=8, threads=1, progress=False, device='cpu')
    assert same_weights(a.vae, b.vae) and a.vae_history == b.vae_history and a.data.name == 'digits'


# ---------------------------------------------------------------- geometry
def test_geometry_bad_inputs_are_refused():
    vae = SpatialVAE((1, 8, 8), 4, 8).eval()
    with pytest.raises(ValueError, match=r'\[B, 4, 4, 4\]'):
        check_grids(torch.zeros(2, 3, 4, 4), 4)
    with pytest.raises(ValueError, match='NaN'):
        check_grids(torch.full((1, 4, 4, 4), float('nan')))
    with pytest.raises(ValueError, match='at least 1'):
        segment_lengths(vae, torch.zeros(1, 4, 4, 4), 0, torch.zeros(1, 4), torch.ones(1, 4), steps=0)
    with pytest.raises(ValueError, match='same number of segments'):
        segment_lengths(vae, torch.zeros(2, 4, 4, 4), 0, torch.zeros(1, 4), torch.ones(1, 4))


def test_first_jvp_shows_no_torch_jit_warning():
    "In a fresh interpreter (the warning comes once, on torch's first jvp), computing metric tensors warns about nothing."
    code = ("import warnings, torch\nfrom geovq_tutorial.vae import SpatialVAE\nfrom geovq_tutorial.geometry import metric_tensors\n"
            "warnings.simplefilter('error')\n"
            "metric_tensors(SpatialVAE((1, 8, 8), 4, 8).eval(), torch.randn(2, 4, 4, 4))\nprint('quiet')")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0 and 'quiet' in r.stdout and 'Warning' not in r.stderr, r.stderr[-2000:]


def test_metric_tensors_still_right_with_warnings_silenced():
    vae = SpatialVAE((1, 8, 8), 4, 8).eval()
    g = torch.randn(1, 4, 4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        M = metric_tensors(vae, g)
    assert M.shape == (CELLS, 4, 4)
