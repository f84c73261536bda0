"""Property and boundary tests for geovq_tutorial.geometry (fast: small untrained models only); the codebook's are in test_codebook.py."""
import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from geovq_tutorial.vae import SpatialVAE
from geovq_tutorial.geometry import (LatentGraph, GraphError, metric_tensors, segment_lengths, metric_edge_lengths,
                                     exact_edge_lengths, knn_edges)
from geovq_tutorial.codebook import grid_to_vectors, GeodesicCodebook

torch.set_num_threads(1)
from helpers import FEW, random_problem


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
