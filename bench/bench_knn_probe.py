"""Exact (scikit-learn) against approximate (pynndescent) kNN on synthetic latent vectors of D = 16 (4 live channels): wall and
CPU time of the k = 11 neighbour graph, and recall of the exact neighbours. The first pynndescent call in a process includes its
numba compilation. Usage: PYTHONPATH=$PWD .venv/bin/python bench/bench_knn_probe.py 20000 100000 400000"""
import time, sys, numpy as np
from sklearn.neighbors import NearestNeighbors
def synth(n, D=16, active=4, seed=0):
    rng = np.random.default_rng(seed); x = rng.normal(size=(n, D)) * 0.05; x[:, :active] = rng.normal(size=(n, active)); return x
for n in [int(a) for a in sys.argv[1:]]:
    x = synth(n)
    t = time.perf_counter(); c = time.process_time()
    idx = NearestNeighbors(n_neighbors=11).fit(x).kneighbors(x, return_distance=False)
    print(n, 'sklearn', f'{time.perf_counter()-t:.1f}s wall {time.process_time()-c:.1f}s cpu', flush=True)
    import pynndescent
    t = time.perf_counter(); c = time.process_time()
    ind = pynndescent.NNDescent(x, n_neighbors=11, random_state=0, n_jobs=1)
    g = ind.neighbor_graph[0]
    print(n, 'nndescent', f'{time.perf_counter()-t:.1f}s wall {time.process_time()-c:.1f}s cpu', flush=True)
    rec = np.mean([len(set(a) & set(b)) / 11 for a, b in zip(idx[:2000], g[:2000])])
    print(n, 'recall', rec, flush=True)
