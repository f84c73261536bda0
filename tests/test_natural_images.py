"""Natural images (issue 12): `geovq run --dataset cifar10` end to end on a tiny fake in torchvision's on-disk format, the photo
patches' size setting, and a VAE whose log-variance head overflows no longer turns the loss into NaN."""
import json
from pathlib import Path

import pytest
import torch

from geovq_tutorial import cli
from geovq_tutorial.data import DataConfig, load_dataset_for, write_fake_cifar10

TINY = ['--epochs', '2', '--hidden', '8', '--latent-dim', '4', '--codebook-k', '8', '--prior-epochs', '2', '--prior-dim', '16',
        '--finetune-epochs', '1', '--vqvae-epochs', '2', '--classifier-epochs', '2', '--n-samples', '16', '--eval-seeds', '0',
        '--geodesic-subsample', '300', '--no-progress']


@pytest.fixture
def fake_cifar10(tmp_path, monkeypatch):
    "A 5 x 8 + 8 image CIFAR-10 in torchvision's pickled-batch format; its MD5 check (of the official files) passes."
    import torchvision.datasets.cifar as cifar
    write_fake_cifar10(tmp_path / 'data', n_per_batch=8)
    monkeypatch.setattr(cifar, 'check_integrity', lambda *a, **k: True)
    return tmp_path / 'data'


def test_geovq_run_on_cifar10_end_to_end(fake_cifar10, tmp_path, capsys):
    run = tmp_path / 'run'
    # one process: the patched MD5 check lives in this process only (spawned workers would check the fake's files for real)
    rc = cli.main(['run', '--dataset', 'cifar10', '--data-root', str(fake_cifar10), '--no-download', '--run-dir', str(run),
                   '--workers', '1', *TINY])
    out = capsys.readouterr()
    assert rc == 0, out.err
    metrics = json.loads((run / 'metrics.json').read_text())
    assert metrics['dataset'] == 'cifar10' and metrics['n_test'] == 8
    assert {r['variant'] for r in metrics['table']} >= {'vae', 'kmeans', 'geodesic+ft', 'vqvae'}
    assert (run / 'report.html').stat().st_size > 1000


def test_cifar10_offline_without_files_names_the_folder(tmp_path, capsys):
    rc = cli.main(['run', '--dataset', 'cifar10', '--data-root', str(tmp_path / 'none'), '--no-download', '--run-dir', str(tmp_path / 'r')])
    assert rc == 2 and 'cifar-10-batches-py' in capsys.readouterr().err and not (tmp_path / 'r').exists()


def test_photo_patches_is_a_setting_of_the_data_and_of_the_stages():
    from geovq_tutorial.core import STAGES
    import geovq_tutorial.pipeline  # noqa: F401  (declares every stage)
    d = load_dataset_for(DataConfig(dataset='photos', photo_patches=30))
    assert (len(d.train), len(d.val), len(d.test)) == (24, 3, 3) and d.image_shape == (3, 32, 32)
    for stage in ('vae', 'vqvae', 'classifier', 'feature_ae', 'evaluation'): assert 'photo_patches' in STAGES[stage].fields, stage


def test_chunked_edge_lengths_and_attachment_match_one_chunk():
    import numpy as np
    from geovq_tutorial.geometry import attach_edges, knn_index, metric_edge_lengths
    g = torch.Generator().manual_seed(0)
    v, A = torch.randn(200, 3, generator=g), torch.randn(200, 3, 3, generator=g)
    M = A @ A.transpose(1, 2)
    i, j = torch.randint(0, 200, (500,), generator=g), torch.randint(0, 200, (500,), generator=g)
    assert torch.allclose(metric_edge_lengths(v, M, i, j, chunk=7), metric_edge_lengths(v, M, i, j, chunk=10 ** 6))
    index = knn_index(v.numpy().astype(np.float64), 5)
    x, Mx = torch.randn(50, 3, generator=g), M[:50]
    for xm in (Mx, None):
        n1, w1 = attach_edges(index, v, M, x, xm, 5, chunk=3)
        n2, w2 = attach_edges(index, v, M, x, xm, 5, chunk=10 ** 6)
        assert (n1 == n2).all() and np.allclose(w1, w2)


def test_approximate_knn_above_the_threshold_gives_the_same_codebook_interface():
    import numpy as np
    import geovq_tutorial.geometry as geometry
    from geovq_tutorial.codebook import make_codebook
    v = torch.randn(1500, 4, generator=torch.Generator().manual_seed(1)); M = torch.eye(4).expand(1500, 4, 4).clone()
    exact = make_codebook('geodesic', 8, subsample=500, knn=5).fit(v, M)
    old, geometry.APPROX_KNN_ABOVE = geometry.APPROX_KNN_ABOVE, 1000
    try: approx = make_codebook('geodesic', 8, subsample=500, knn=5).fit(v, M)
    finally: geometry.APPROX_KNN_ABOVE = old
    assert isinstance(approx._index, geometry.ApproxKNN) and not isinstance(exact._index, geometry.ApproxKNN)
    assert (approx.encode(v[:200], M[:200]) == approx.node_label[:200]).float().mean() > 0.95   # training vectors keep their code


def test_approximate_knn_finds_the_exact_neighbours():
    "The geometry chapter's check of `ApproxKNN` (a slow cell there: pynndescent compiles for ~30 s in every new process)."
    import numpy as np
    import geovq_tutorial.geometry as geometry
    x = np.random.default_rng(0).normal(size=(3000, 4))
    exact_nbrs = geometry.knn_index(x, 5).kneighbors(x, n_neighbors=6, return_distance=False)
    index = geometry.knn_index(x, 5, approx_above=100)
    assert isinstance(index, geometry.ApproxKNN)
    recall = np.mean([len(set(a) & set(b)) / 6 for a, b in zip(exact_nbrs, index.kneighbors(x, n_neighbors=6))])
    query = index.kneighbors(x[:50] + 1e-3, n_neighbors=3)            # new points: the query route
    assert recall > 0.95 and (query[:, 0] == np.arange(50)).mean() > 0.95, (recall, query[:5])
