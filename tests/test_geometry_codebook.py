"""Property and boundary tests for geovq_tutorial.geometry and geovq_tutorial.codebook (fast: small untrained models only)."""
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st, HealthCheck

from geovq_tutorial._legacy_core import CheckpointError
from geovq_tutorial.vae import SpatialVAE
from geovq_tutorial.geometry import (LatentGraph, GraphError, metric_tensors, segment_lengths, metric_edge_lengths,
                                     exact_edge_lengths, knn_edges)
from geovq_tutorial.codebook import (grid_to_vectors, vectors_to_grid, KMeansCodebook, EuclideanKMedoidsCodebook,
                                     GeodesicCodebook, Codebook, kmedoids, make_codebook, fit_codebook)

torch.set_num_threads(1)
FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_problem(seed, n, d):
    "Random vectors [n, d] with random positive definite metric tensors [n, d, d]."
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, generator=g)
    a = torch.randn(n, d, d, generator=g)
    return v, a @ a.transpose(1, 2) + 0.05 * torch.eye(d)


# ---------------------------------------------------------------- graph distances
@FEW
@given(seed=st.integers(0, 10_000), n=st.integers(8, 40), d=st.integers(1, 4), k=st.integers(1, 5))
def test_graph_distances_are_a_metric(seed, n, d, k):
    v, M = random_problem(seed, n, d)
    D = LatentGraph(v, M, k=min(k, n - 1)).distances()
    assert np.isfinite(D).all()                                    # components were joined
    np.testing.assert_allclose(D, D.T, rtol=1e-9, atol=1e-12)     # symmetric
    np.testing.assert_array_equal(np.diag(D), 0)                  # zero on the diagonal
    # triangle inequality D[i, j] <= D[i, m] + D[m, j] for all i, j, m
    assert (D[:, None, :] <= D[:, :, None] + D[None, :, :] + 1e-9).all()


def test_symmetrisation_takes_the_maximum():
    # a metric that makes vector 0 "expensive": edges at 0 are longer in 0's own metric; weights are symmetric by rule,
    # and the graph must contain both directions with the same (larger, mean-of-ends) weight
    v = torch.tensor([[0.], [1.], [3.]])
    M = torch.tensor([[[4.]], [[1.]], [[1.]]])
    G = LatentGraph(v, M, k=1).graph.toarray()
    np.testing.assert_allclose(G, G.T)
    assert G[0, 1] == pytest.approx(0.5 * (2 + 1))


def test_knn_edges_never_self_even_with_duplicates():
    x = np.zeros((5, 2))
    i, j = knn_edges(x, 2)
    assert (i != j).all()


def test_disconnected_graph_joined_or_refused():
    v, M = random_problem(0, 30, 2)
    far = torch.cat([v, v + 1000])
    MM = torch.cat([M, M])
    g = LatentGraph(far, MM, k=3)
    assert g.components_before == 2 and g.bridges == 1 and np.isfinite(g.distances(0)).all()
    with pytest.raises(GraphError, match='connected components'):
        LatentGraph(far, MM, k=3, on_disconnected='raise')
    with pytest.raises(GraphError, match='connected components'):
        GeodesicCodebook(4, knn=3, on_disconnected='raise').fit(far, MM)


# ---------------------------------------------------------------- the pull-back metric
@pytest.fixture(scope='module')
def small_vae():
    torch.manual_seed(0)
    return SpatialVAE((1, 8, 8), 3, 8).eval()


def test_metric_symmetric_psd_and_matches_autograd(small_vae):
    g = torch.randn(2, 3, 4, 4)
    M = metric_tensors(small_vae, g)
    assert M.shape == (32, 3, 3)
    torch.testing.assert_close(M, M.transpose(1, 2))
    assert torch.linalg.eigvalsh(M).min() > -1e-6
    J = torch.autograd.functional.jacobian(lambda z: torch.sigmoid(small_vae.decoder(z[None]))[0].flatten(), g[1])
    Jc = J[:, :, 3, 2]                                    # cell (3, 2) = raster index 14 of grid 1
    torch.testing.assert_close(M[16 + 14], Jc.T @ Jc, rtol=1e-4, atol=1e-6)


@FEW
@given(seed=st.integers(0, 10_000))
def test_fast_length_matches_exact_on_short_edges(small_vae, seed):
    g = torch.randn(3, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    # place a few vectors close to others of other grids: short edges between different contexts
    j, i = torch.arange(24), torch.arange(24, 48)          # vectors of grids 0-1 moved next to vectors of grids 1-2
    g2 = g.clone().permute(0, 2, 3, 1).reshape(48, 3)
    g2[j] = g2[i] + 0.02 * torch.randn(24, 3, generator=torch.Generator().manual_seed(seed + 1))
    grids = g2.reshape(3, 4, 4, 3).permute(0, 3, 1, 2).contiguous()
    vv = grid_to_vectors(grids)
    M = metric_tensors(small_vae, grids)
    fast = metric_edge_lengths(vv, M, i, j)
    exact = exact_edge_lengths(small_vae, grids, i, j, steps=16)
    rel = ((fast - exact).abs() / exact.clamp_min(1e-12))
    assert rel.max() <= 0.05


def test_segment_length_zero_and_symmetric(small_vae):
    g = torch.randn(4, 3, 4, 4)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(segment_lengths(small_vae, g, 3, a, a), torch.zeros(4))
    torch.testing.assert_close(segment_lengths(small_vae, g, 3, a, b), segment_lengths(small_vae, g, 3, b, a),
                               rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- k-medoids
@FEW
@given(seed=st.integers(0, 10_000), n=st.integers(4, 12), K=st.integers(1, 4))
def test_kmedoids_is_a_local_optimum(seed, n, K):
    K = min(K, n)
    x = np.random.default_rng(seed).standard_normal((n, 2))
    D = np.linalg.norm(x[:, None] - x[None], axis=-1)
    med, lab, info = kmedoids(D, K, seed=seed)
    assert len(set(med.tolist())) == K
    cost = D[med].min(0).sum()
    assert cost == pytest.approx(info['cost'])
    for slot, c in itertools.product(range(K), range(n)):
        if c in med: continue
        m2 = med.copy(); m2[slot] = c
        assert D[m2].min(0).sum() >= cost - 1e-9


# ---------------------------------------------------------------- codebooks
@FEW
@given(K=st.integers(2, 6), d=st.integers(1, 5), per=st.integers(5, 30), seed=st.integers(0, 10_000))
def test_kmeans_recovers_well_separated_blobs(K, d, per, seed):
    rng = np.random.default_rng(seed)
    centers = np.eye(K, max(K, d))[:, :max(K, d)] * 50.0      # pairwise distance 50*sqrt(2)
    x = np.concatenate([c + rng.standard_normal((per, centers.shape[1])) for c in centers]).astype(np.float32)
    truth = np.repeat(np.arange(K), per)
    cb = KMeansCodebook(K, seed=seed, n_init=3).fit(torch.as_tensor(x))
    ids = cb.encode(torch.as_tensor(x)).numpy()
    # the same partition: each blob one id, different blobs different ids
    assert all(len(set(ids[truth == k])) == 1 for k in range(K))
    assert len(set(ids.tolist())) == K


@FEW
@given(seed=st.integers(0, 10_000), method=st.sampled_from(['kmeans', 'kmedoids', 'geodesic']), B=st.integers(1, 5))
def test_decode_then_encode_returns_the_ids(seed, method, B):
    v, M = random_problem(seed, 80, 3)
    cb = make_codebook(method, 7, seed=seed, knn=4) if method == 'geodesic' else make_codebook(method, 7, seed=seed)
    cb.fit(v, M)
    tok = torch.randint(0, 7, (B, 4, 4), generator=torch.Generator().manual_seed(seed))
    vec = cb.decode(tok.reshape(-1))
    metric = cb.train_metric[cb.medoid_index[tok.reshape(-1)]] if method == 'geodesic' else None
    assert torch.equal(cb.encode(vec, metric), tok.reshape(-1))
    if method != 'geodesic': assert torch.equal(cb.encode_grid(cb.decode_grid(tok)), tok)


@FEW
@given(seed=st.integers(0, 10_000), n=st.integers(20, 60), K=st.integers(1, 6), k=st.integers(2, 6),
       sub=st.sampled_from([None, 15]))
def test_geodesic_assignment_equals_brute_force(seed, n, K, k, sub):
    v, M = random_problem(seed, n, 3)
    cb = GeodesicCodebook(K, seed=seed, knn=k, subsample=sub or n).fit(v, M)
    brute = torch.as_tensor(cb.graph.distances()[cb.medoid_index.numpy()].argmin(0))
    assert torch.equal(cb.node_label, brute)
    assert torch.equal(cb.encode(v, M), brute)


def test_grid_vector_roundtrip():
    g = torch.randn(3, 6, 4, 4)
    v = grid_to_vectors(g)
    assert torch.equal(v[2 * 16 + 1 * 4 + 2], g[2, :, 1, 2])
    assert torch.equal(vectors_to_grid(v, 3), g)


# ---------------------------------------------------------------- bad input
def test_bad_inputs_are_refused():
    v, M = random_problem(0, 20, 3)
    with pytest.raises(ValueError, match='at least K training vectors'):
        KMeansCodebook(21).fit(v)
    with pytest.raises(ValueError, match='at least K training vectors'):
        GeodesicCodebook(21, subsample=30).fit(v, M)
    vn = v.clone(); vn[3, 1] = float('nan')
    for method in ('kmeans', 'kmedoids', 'geodesic'):
        with pytest.raises(ValueError, match='NaN'):
            make_codebook(method, 3).fit(vn, M)
    cb = KMeansCodebook(3).fit(v)
    with pytest.raises(ValueError, match='dimension D=2'):
        cb.encode(torch.randn(5, 2))
    with pytest.raises(ValueError, match=r'\[B, 3, 4, 4\]'):
        cb.encode_grid(torch.randn(2, 2, 4, 4))
    with pytest.raises(ValueError, match='NaN'):
        cb.encode(vn)
    with pytest.raises(ValueError, match=r'\[0, 2\]'):
        cb.decode_grid(torch.full((1, 16), 3))
    geo = GeodesicCodebook(3, knn=3).fit(v, M)
    with pytest.raises(ValueError, match='dimension D=4'):
        geo.encode(torch.randn(5, 4), torch.eye(4).expand(5, 4, 4))
    with pytest.raises(ValueError, match='needs the pull-back metric'):
        geo.encode(v)
    with pytest.raises(RuntimeError, match='attach'):
        geo.encode_grid(torch.randn(1, 3, 4, 4))


def test_codebook_file_of_another_vae_is_refused(tmp_path):
    torch.manual_seed(0)
    vae_a, vae_b = SpatialVAE((1, 8, 8), 3, 8), SpatialVAE((1, 8, 8), 3, 8)
    x = torch.rand(10, 1, 8, 8)
    cb = fit_codebook(vae_a, x, 'geodesic', 5, knn=4)
    cb.save(tmp_path / 'geo.safetensors')
    back = Codebook.load(tmp_path / 'geo.safetensors', vae=vae_a)
    mu = vae_a.encode(x)[0].detach()
    assert torch.equal(back.encode_grid(mu), cb.encode_grid(mu))
    assert torch.equal(back.codewords, cb.codewords)
    with pytest.raises(CheckpointError, match='fit a new codebook for this VAE'):
        Codebook.load(tmp_path / 'geo.safetensors', vae=vae_b)
