"""Where a prior's training step goes on this CPU (issue 27: the 15 priors are ~30% of `geovq run`'s job-seconds).

One step of the default prior (batch 128, 2 blocks, dim 32, 4 heads, dropout 0.1) on one thread, forward, backward and the
fused AdamW update, timed three ways in one process, interleaved: as trained today; with the attention weights' dropout off
(`dropout_p=0` in `scaled_dot_product_attention`: PyTorch's CPU kernel for a dropout_p > 0 is the slow one); and the
attention alone (both blocks' calls, forward and backward). Medians of 5 repeats of 50 steps.

    python bench/bench_prior_step.py      # ~1 min; writes bench/results/prior_step.json
"""
from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from geovq_tutorial.prior import PriorConfig, param_groups, prior_for, prior_loss


def step_ms(prior, opt, tokens, steps: int = 50) -> float:
    "Milliseconds per training step of `prior` on `tokens` (one batch, again and again)."
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(); prior_loss(prior, tokens).backward(); opt.step()
    return (time.perf_counter() - t0) / steps * 1e3


def attention_ms(cfg: PriorConfig, batch: int, p: float, steps: int = 50) -> float:
    "Milliseconds of the attention calls of one step (every block, forward and backward) at dropout `p`."
    q, k, v = (torch.randn(batch, cfg.prior_heads, 16, cfg.prior_dim // cfg.prior_heads, requires_grad=True) for _ in range(3))
    t0 = time.perf_counter()
    for _ in range(steps * cfg.prior_layers):
        F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p).sum().backward()
    return (time.perf_counter() - t0) / steps * 1e3


def main(repeats: int = 5):
    torch.set_num_threads(1); torch.manual_seed(0)
    cfg = PriorConfig()
    tokens = torch.randint(0, cfg.codebook_k, (cfg.prior_batch_size, 16))
    variants = {}
    for name, attn_p in (('as trained', cfg.prior_dropout), ('attention dropout off', 0.0)):
        prior = prior_for(cfg, cfg.codebook_k).train()
        for blk in prior.blocks: blk.attn.dropout = attn_p
        opt = torch.optim.AdamW(param_groups(prior, cfg.prior_weight_decay), lr=cfg.prior_lr, fused=True)
        variants[name] = (prior, opt)
    times = {name: [] for name in [*variants, 'attention alone, dropout 0.1', 'attention alone, dropout 0']}
    for name, (prior, opt) in variants.items(): step_ms(prior, opt, tokens, 10)          # warm-up
    for _ in range(repeats):                                                            # interleaved
        for name, (prior, opt) in variants.items(): times[name].append(step_ms(prior, opt, tokens))
        times['attention alone, dropout 0.1'].append(attention_ms(cfg, cfg.prior_batch_size, cfg.prior_dropout))
        times['attention alone, dropout 0'].append(attention_ms(cfg, cfg.prior_batch_size, 0.0))
    cpuinfo = Path('/proc/cpuinfo').read_text() if Path('/proc/cpuinfo').exists() else ''
    cpu = next((l.split(':', 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith('model name')), platform.machine())
    result = {'cpu': cpu, 'torch': torch.__version__, 'threads': 1, 'repeats': repeats,
              'median_ms_per_step': {k: round(statistics.median(v), 3) for k, v in times.items()}}
    print(json.dumps(result, indent=1))
    Path(__file__).with_name('results').joinpath('prior_step.json').write_text(json.dumps(result, indent=1) + '\n')


if __name__ == '__main__':
    main()
