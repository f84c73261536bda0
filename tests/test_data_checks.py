"""Issue 31, point 4: every dataset checks its labels while loading. A damaged file (a label no class has, fewer labels than
images, labels that are not whole numbers) is refused by `load_dataset` in one line that names the files and the folder to
replace, before any training; following that advice makes the set load again. The fakes are damaged by writing a batch or an
IDX file anew, as `write_fake_cifar10` / `write_fake_mnist` write them: nothing here unpickles a file."""
import pickle
import shutil
import time

import numpy as np
import pytest
import torch

from geovq_tutorial.data import DATASETS, DatasetError, check_labels, load_dataset, write_fake_cifar10, write_fake_mnist

N = 4   # images per fake CIFAR-10 batch: 5 x 4 training images, 4 test images


@pytest.fixture
def cifar(tmp_path, monkeypatch):
    "A fake CIFAR-10 under tmp_path; torchvision's MD5 check (of the official files) is switched off, as in test_natural_images."
    import torchvision.datasets.cifar as tv_cifar
    monkeypatch.setattr(tv_cifar, 'check_integrity', lambda *a, **k: True)
    write_fake_cifar10(tmp_path, n_per_batch=N)
    return tmp_path


def write_batch(root, name, labels, n_images=N):
    "Replace one CIFAR-10 batch by one with `n_images` black images and these `labels`."
    batch = {'data': np.zeros((n_images, 3072), np.uint8), 'labels': labels}
    (root / 'cifar-10-batches-py' / name).write_bytes(pickle.dumps(batch))


def write_idx_labels(path, labels):
    "An IDX label file whose header agrees with its contents (so it passes `check_idx_file`)."
    path.write_bytes(np.array([2049, len(labels)], '>i4').tobytes() + np.asarray(labels, np.uint8).tobytes())


def refusal(name, root, one_line=True) -> str:
    "The message `load_dataset` refuses with; it must come at once, from loading alone."
    t = time.perf_counter()
    with pytest.raises(DatasetError) as e: load_dataset(name, root, download=False)
    assert time.perf_counter() - t < 5
    msg = str(e.value)
    assert not one_line or '\n' not in msg, msg
    return msg


def advice(folder) -> str:
    return (f"the files are damaged: delete {folder.absolute()} and download it again (with download enabled), "
            "or put an intact copy there")


def test_cifar10_label_99_is_refused_naming_the_batches_and_the_cure(cifar):
    write_batch(cifar, 'data_batch_3', [1, 2, 99, 0])
    msg = refusal('cifar10', cifar)
    folder = cifar / 'cifar-10-batches-py'
    assert msg.startswith(f"cifar10 training labels (from data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5 in "
                          f"{folder.absolute()}): 1 of 20 labels lie outside [0, 10), the first: 99 at position 10; ")
    assert msg.endswith(advice(folder))


def test_cifar10_one_label_fewer_than_images_is_refused(cifar):
    write_batch(cifar, 'test_batch', [1, 2, 3])
    msg = refusal('cifar10', cifar)
    assert 'cifar10 test labels (from test_batch in ' in msg and '3 labels for 4 images, not one per image' in msg
    assert msg.endswith(advice(cifar / 'cifar-10-batches-py'))


def test_cifar10_labels_that_are_not_whole_numbers_are_refused(cifar):
    write_batch(cifar, 'data_batch_1', [0.5, 1.0, 2.0, 3.0])
    assert 'labels must be whole numbers, got float64 values such as 0.5' in refusal('cifar10', cifar)


def test_mnist_label_file_with_fewer_labels_than_images_is_refused(tmp_path):
    raw = write_fake_mnist(tmp_path / 'MNIST' / 'raw', n_train=20)
    write_idx_labels(raw / 'train-labels-idx1-ubyte', [3] * 19)
    msg = refusal('mnist', tmp_path)
    assert msg.startswith(f"mnist training labels (from train-images-idx3-ubyte, train-labels-idx1-ubyte in {raw.absolute()}): "
                          "19 labels for 20 images, not one per image; ")
    assert msg.endswith(advice(raw))


def test_mnist_label_99_is_refused(tmp_path):
    raw = write_fake_mnist(tmp_path / 'MNIST' / 'raw', n_test=10)
    write_idx_labels(raw / 't10k-labels-idx1-ubyte', [0] * 9 + [99])
    msg = refusal('mnist', tmp_path)
    assert 'mnist test labels (from t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte in ' in msg
    assert '1 of 10 labels lie outside [0, 10), the first: 99 at position 9' in msg


def test_following_the_advice_makes_cifar10_load(cifar):
    write_batch(cifar, 'data_batch_5', [99] * N)
    folder = cifar / 'cifar-10-batches-py'
    assert f"delete {folder.absolute()} and download it again" in refusal('cifar10', cifar)
    shutil.rmtree(folder)                                   # delete it: offline, the next load asks for the files there
    assert f"place these files in {folder.absolute()}" in refusal('cifar10', cifar, one_line=False)
    write_fake_cifar10(cifar, n_per_batch=N)                # ... or put an intact copy there
    assert len(load_dataset('cifar10', cifar, download=False).test) == N


def test_following_the_advice_makes_mnist_load(tmp_path):
    raw = write_fake_mnist(tmp_path / 'MNIST' / 'raw')
    write_idx_labels(raw / 'train-labels-idx1-ubyte', [3] * 19)
    assert f"delete {raw.absolute()} and download it again" in refusal('mnist', tmp_path)
    shutil.rmtree(raw)
    write_fake_mnist(raw)
    assert load_dataset('mnist', tmp_path, download=False).image_shape == (1, 32, 32)


def test_undamaged_fakes_load_with_their_labels(cifar, tmp_path):
    c = load_dataset('cifar10', cifar, download=False)
    assert (len(c.train) + len(c.val), len(c.test), c.image_shape) == (5 * N, N, (3, 32, 32))
    write_fake_mnist(tmp_path / 'MNIST' / 'raw', n_train=20, n_test=10)
    m = load_dataset('mnist', tmp_path, download=False)
    for d in (c, m):
        for s in ('train', 'val', 'test'):
            x, y = d.split(s)
            assert y.dtype == torch.long and len(y) == len(x) and ((0 <= y) & (y < 10)).all()


def test_any_loader_is_checked_by_load_dataset(monkeypatch):
    "A loader outside this module (registered in DATASETS) gets the same label check at the same boundary."
    d = load_dataset('digits')
    bad = type(d)(d.name, d.train, d.val, d.test, d.train_labels, d.val_labels, d.test_labels + 10, d.classes)
    monkeypatch.setitem(DATASETS, 'bad', lambda **kw: bad)
    msg = refusal('bad', 'data')
    assert msg.startswith('bad test labels: ') and 'outside [0, 10)' in msg and msg.endswith('; fix the data they come from')


def test_check_labels_refuses_a_wrong_shape_and_passes_good_labels():
    with pytest.raises(DatasetError, match=r'shape \[N\], one per image, not \[3, 1\]'):
        check_labels(torch.zeros(3, 1, dtype=torch.long), 3, 10)
    assert torch.equal(check_labels(np.array([0, 9], np.uint8), 2, 10), torch.tensor([0, 9]))


@pytest.mark.parametrize('which', ['ste', 'ema'])
def test_the_vqvae_trainer_checks_its_images_before_any_work(which):
    "Issue 31, point 4: `train_vqvae` refuses 8-bit pixels (and NaN) before its first step, as `train_vae` does."
    from geovq_tutorial.data import ImageSplits
    from geovq_tutorial.finetune import EMAVQVAE, VQVAE, FinetuneConfig, train_vqvae
    g = torch.Generator().manual_seed(0)
    x = torch.rand(24, 1, 8, 8, generator=g)
    make = lambda: (VQVAE if which == 'ste' else EMAVQVAE)((1, 8, 8), latent_dim=4, hidden=8, K=6)
    cfg = FinetuneConfig(vqvae_epochs=3, progress=False)
    as_bytes = ImageSplits('t', x[:16] * 255, x[16:20], x[20:], torch.zeros(16, dtype=torch.long), torch.zeros(4, dtype=torch.long),
                           torch.zeros(4, dtype=torch.long), ['0'])
    with pytest.raises(ValueError, match='divide by 255'): train_vqvae(make(), as_bytes, cfg)
    bad_val = x[16:20].clone(); bad_val[0, 0, 0, 0] = float('nan')
    with pytest.raises(ValueError, match='t val images contain 1 NaN'):
        train_vqvae(make(), ImageSplits('t', x[:16], bad_val, x[20:], as_bytes.train_labels, as_bytes.val_labels,
                                        as_bytes.test_labels, ['0']), cfg)
