#!/usr/bin/env python
"""How many significant digits the canonical runs' per-seed headline numbers keep from one machine to another.

    python bench/cross_machine.py --before 806f7aa --after f576b05 [--out bench/results/cross_machine.json]

`docs/executed.json` records, for each canonical run, every variant's per-seed headline numbers (test MSE, prior NLL, the two
sample FDs). Two records of the same code made on two machines (the records at two git revisions, `--before` and `--after`;
without `--after`, the working tree's) give, per run and variant, the fewest significant digits on which any of its numbers agree
(-log10 of the largest relative difference; 16 where they are equal) and which seeds and numbers differ most. The machines are
named with --before-machine / --after-machine (what `lscpu` says), since the record does not keep them."""
from __future__ import annotations

import argparse
import json
import math
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def digits_apart(x: float, y: float) -> float:
    "Significant digits on which x and y agree: -log10 of their relative difference (16 when equal)."
    d = abs(x - y) / max(abs(x), 1e-30)
    return 16.0 if d == 0 else round(-math.log10(d), 2)


def compare(before: dict, after: dict) -> dict:
    "Per run and variant: the fewest agreeing digits over its numbers and seeds, and the number and seed where they are fewest."
    out = {}
    for run in sorted(set(before['runs']) & set(after['runs'])):
        a, b = before['runs'][run]['headline']['per_seed'], after['runs'][run]['headline']['per_seed']
        rows = {}
        for v in sorted(set(a) & set(b)):
            cells = [(digits_apart(x, y), k, s) for k in a[v] if k != 'seeds' and k in b[v]
                     for s, x, y in zip(a[v]['seeds'], a[v][k], b[v][k])]
            worst = min(cells)
            rows[v] = {'digits': worst[0], 'worst_number': worst[1], 'worst_seed': worst[2],
                       'seed_digits': {s: min(d for d, _, t in cells if t == s) for s in a[v]['seeds']}}
        out[run] = rows
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--before', required=True, help='git revision whose docs/executed.json was made on the other machine')
    ap.add_argument('--after', help='git revision whose docs/executed.json was made on this machine (default: the working tree)')
    ap.add_argument('--before-machine', default='', help='what the other machine was (lscpu model name)')
    ap.add_argument('--after-machine', default='', help='what this machine is (lscpu model name)')
    ap.add_argument('--out', type=Path, default=REPO / 'bench' / 'results' / 'cross_machine.json')
    args = ap.parse_args(argv)
    before = json.loads(subprocess.check_output(['git', 'show', f'{args.before}:docs/executed.json'], cwd=REPO))
    after = json.loads(subprocess.check_output(['git', 'show', f'{args.after}:docs/executed.json'], cwd=REPO) if args.after
                       else (REPO / 'docs' / 'executed.json').read_text())
    res = {'before': args.before, 'after': args.after or 'working tree', 'before_machine': args.before_machine, 'after_machine': args.after_machine,
           'runs': compare(before, after)}
    args.out.write_text(json.dumps(res, indent=1) + '\n')
    for run, rows in res['runs'].items():
        print(f"{run}: " + ', '.join(f"{v} {r['digits']:.1f}" for v, r in rows.items()))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
