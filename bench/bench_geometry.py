"""Benchmark and validation of the latent geometry on the digits run (chapter 03), measured in one run:

    PYTHONPATH=$PWD .venv/bin/python bench/bench_geometry.py [--pairs 200] [--threads 1]

1. cost of the metric tensors: the in-context metric (`metric_tensors`, batches of 8 and 32 grids) against its physical limit,
   16*D forward-mode tangents per grid counted in decoder-forward equivalents (the time of decoding 16*D grids per grid,
   measured alongside), and the total cost of the expected metric at `metric_contexts` contexts on all training vectors;
2. validation on `--pairs` random pairs of test vectors, for the plain and the uncertainty-aware expected metric: the graph
   distance (kNN graph over all training vectors) over the exact length of its own path, over the continuous geodesic, and
   over the straight segment (median, p10, p90). The continuous geodesic is `converge_geodesics` (L-BFGS to a relative energy
   change < 1e-4 per round) from the straight segment and from the graph path at `--segments`, the shorter solved again at twice
   the segments (the doubling's length ratio is recorded), and for `--check-pairs` pairs doubled once more.
Writes bench/results/geometry.json. Needs the run's VAE (GEOVQ_TUTORIAL_RUN_DIR or runs/digits; trained if missing).
No assertions: the numbers are recorded, not judged.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeats: int = 3):
    "Median wall time of `fn()` over `repeats` calls, and its last result."
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def metric_cost(vae, grids, D: int) -> dict:
    "In-context metric tensors at 8 and 32 grids per batch against decoding 16*D grids per grid (interleaved repeats)."
    from geovq_tutorial.geometry import metric_tensors
    from geovq_tutorial.vae import CELLS
    g = grids[:256]
    dec = lambda: [vae.decoder(g[i:i + 8].repeat_interleave(CELLS * D, 0)) for i in range(0, len(g), 8)]
    out = {'grids': len(g)}
    with torch.no_grad():
        for rep in range(3):
            for name, fn in (('decode_16D_s', dec), ('metric_bs8_s', lambda: metric_tensors(vae, g, batch_size=8)),
                             ('metric_bs32_s', lambda: metric_tensors(vae, g, batch_size=32))):
                t0 = time.perf_counter(); fn(); out.setdefault(name, []).append(time.perf_counter() - t0)
    out = {k: float(np.median(v)) if isinstance(v, list) else v for k, v in out.items()}
    out['ratio_bs8'], out['ratio_bs32'] = out['metric_bs8_s'] / out['decode_16D_s'], out['metric_bs32_s'] / out['decode_16D_s']
    same = torch.allclose(metric_tensors(vae, g[:32], batch_size=8), metric_tensors(vae, g[:32], batch_size=32), atol=1e-6)
    out['bs8_equals_bs32'] = bool(same)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--pairs', type=int, default=200)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--segments', type=int, default=16, help='segments T of the first solve; then doubled once for every pair')
    ap.add_argument('--check-pairs', type=int, default=40, help='pairs whose solution is doubled once more (the convergence-in-T check)')
    ap.add_argument('--reuse', metavar='COST_JSON', help="skip the cost section: take its numbers from COST_JSON (an earlier run of "
                    "this script on the same VAE) and the training vectors' expected metric from the run's stage 'metric'")
    ap.add_argument('--only', choices=('plain', 'uncertainty'), help='validate one metric only; the other entry is kept from --out')
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results' / 'geometry.json'))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault('GEOVQ_PROGRESS', '0')
    from geovq_tutorial.vae import tutorial_config, load_or_train_vae, encode_means, CELLS
    from geovq_tutorial.geometry import (GeometryConfig, ContextDecoder, LatentGraph, draw_contexts, fit_precision, pullback_metric,
                                         ratio_summary, validate_distances, with_uncertainty, VARIANCE_STEPS,
                                         GEODESIC_TOL, converge_geodesics, curve_length, refine)
    from geovq_tutorial.core import setup_run
    from geovq_tutorial.data import load_dataset_for
    cfg = tutorial_config(GeometryConfig, threads=args.threads, progress=False)
    data = load_dataset_for(cfg)
    vae = load_or_train_vae(cfg, data, device=setup_run(cfg))[0].cpu().eval()
    vec = lambda g: g.permute(0, 2, 3, 1).reshape(-1, cfg.latent_dim)
    train, val_g, test = (encode_means(vae, x) for x in (data.train, data.val, data.test))
    V, VT = vec(train), vec(test)
    load0 = os.getloadavg()
    res = {'command': f'bench/bench_geometry.py --pairs {args.pairs} --threads {args.threads} --segments {args.segments} '
                      f'--check-pairs {args.check_pairs}'
                          + (f' --reuse {args.reuse}' if args.reuse else '') + (f' --only {args.only}' if args.only else ''),
           'when': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
           'machine': {'cpus': os.cpu_count(), 'platform': platform.platform(), 'load_average_start': load0},
           'N_train_vectors': len(V), 'D': cfg.latent_dim, 'knn': cfg.knn, 'metric_contexts': cfg.metric_contexts,
           'rbf_centres': cfg.rbf_centres}
    ctx, cells = draw_contexts(train, cfg.metric_contexts, seed=0)
    G = ContextDecoder(vae, ctx, cells)
    if args.reuse:
        res.update(json.loads(Path(args.reuse).read_text()))
        from geovq_tutorial.codebook import CodebookConfig, training_metric
        M = training_metric(tutorial_config(CodebookConfig, threads=args.threads, progress=False), vae, data)[1]
    else:
        res['in_context_metric_cost'] = metric_cost(vae, train, cfg.latent_dim)
        print('in-context metric cost', res['in_context_metric_cost'], flush=True)
        t0 = time.perf_counter(); M = pullback_metric(G, V); t_exp = time.perf_counter() - t0
        t0 = time.perf_counter(); from geovq_tutorial.geometry import metric_tensors; metric_tensors(vae, train); t_in = time.perf_counter() - t0
    with torch.no_grad():
        resid = lambda x, g: (x - vae.decode(g)).flatten(1).repeat_interleave(CELLS, 0)
        r_train, r_val = resid(data.train, train), resid(data.val, val_g)
    t0 = time.perf_counter(); prec, hist = fit_precision(V, r_train, vec(val_g), r_val, K=cfg.rbf_centres); t_prec = time.perf_counter() - t0
    t0 = time.perf_counter(); Ms = pullback_metric(prec, V, batch_size=4096); t_sig = time.perf_counter() - t0
    if not args.reuse:
        res['expected_metric_cost'] = {'expected_metric_s': t_exp, 'in_context_metric_s': t_in, 'ratio_to_in_context': t_exp / t_in,
                                       'sigma_metric_s': t_sig, 'vectors': len(V)}
    res['precision'] = {'fit_s': t_prec, 'val_nll': hist['val'], 'best_epoch': hist['best_epoch'],
                        'sigma_median_val': float(prec(vec(val_g)).median())}
    print('expected metric cost', res.get('expected_metric_cost'), res['precision'], flush=True)
    rng = np.random.default_rng(0)
    ia, ib = (torch.as_tensor(rng.choice(len(VT), args.pairs)) for _ in range(2))
    MT = pullback_metric(G, VT[torch.cat([ia, ib])]); MTs = pullback_metric(prec, VT[torch.cat([ia, ib])], batch_size=4096)
    n = args.pairs
    if args.only and Path(args.out).exists():                   # the other metric's entry, from the earlier run
        old = json.loads(Path(args.out).read_text())
        other = 'plain' if args.only == 'uncertainty' else 'uncertainty'
        if other in old: res[other] = {**old[other], 'from_run': old.get('when')}
    for name, f, Mv, Mt, var in (('plain', G, M, MT, None), ('uncertainty', with_uncertainty(G, prec), M + Ms, MT + MTs, prec)):
        if args.only and name != args.only: continue
        t0 = time.perf_counter()
        graph = LatentGraph(V, Mv, k=cfg.knn, variance=var)     # the uncertainty-aware graph measures sigma's part exactly
        t_graph = time.perf_counter() - t0
        v = validate_distances(f, graph, VT[ia], Mt[:n], VT[ib], Mt[n:], T=args.segments, doublings=1)
        t_val = time.perf_counter() - t0 - t_graph
        entry = {'graph_vs_own_path_median': None, 'graph_vs_continuous_median': None}
        for key, ref in (('own_path', 'own_path'), ('continuous', 'continuous'), ('straight', 'straight')):
            s = ratio_summary(v['graph'], v[ref])
            entry.update({f'graph_vs_{key}_median': s['median'], f'graph_vs_{key}_p10': s['p10'], f'graph_vs_{key}_p90': s['p90']})
        m = args.check_pairs                                    # one more doubling, for the first m pairs
        steps = 4 * args.segments * 4
        c4, ok4, _ = converge_geodesics(f, refine(v['curves'][:m], 2))
        again = curve_length(f, c4, steps // (c4.shape[1] - 1)) / curve_length(f, v['curves'][:m], steps // (v['curves'].shape[1] - 1))
        entry.update({'continuous_vs_straight_median': ratio_summary(v['continuous'], v['straight'])['median'],
                      'solver_vs_start_median': ratio_summary(v['solved'], v['start'])['median'],
                      'converged': int(v['converged'].sum()), 'convergence': f'relative energy change < {GEODESIC_TOL:g} over a round of 10 L-BFGS iterations',
                      'segments': [args.segments, 2 * args.segments],
                      'doubling': {**ratio_summary(v['doubling'], np.ones(n)), 'min': float(v['doubling'].min())},
                      'doubling_again': {**ratio_summary(again.numpy(), np.ones(m)), 'min': float(again.min()), 'pairs': m,
                                         'segments': 4 * args.segments, 'converged': int(ok4.sum())},
                      'rank_correlation_graph_continuous': float(spearmanr(v['graph'], v['continuous']).statistic),
                      'per_pair': {k: np.round(np.asarray(v[k], dtype=float), 6).tolist() for k in ('graph', 'continuous', 'straight')},
                      'hops_median': float(np.median(v['hops'])), 'graph_s': t_graph, 'validation_s': t_val,
                      'components': int(graph.components_before), 'bridges': int(graph.bridges), 'pairs': n,
                      'edge_rule': 'endpoint mean' if var is None else f'variance exact ({VARIANCE_STEPS} sub-steps), decoder part from the ends'})
        res[name] = entry
        print(name, entry, flush=True)
    res['machine']['load_average_end'] = os.getloadavg()
    Path(args.out).write_text(json.dumps(res, indent=2) + '\n')
    print('wrote', args.out)


if __name__ == '__main__':
    main()
