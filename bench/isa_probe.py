"""Why two x86-64 CPUs give different numbers at the same seed (issue 29, point 3): train seed 0's end-to-end VQ-VAE of a
complete run again, once per instruction-set setting of the three kernel libraries torch uses on the CPU (ATen's own
kernels, MKL's BLAS, oneDNN's convolutions), each in a fresh process, and compare it with the stored one.

    PYTHONPATH=$PWD .venv/bin/python bench/isa_probe.py runs/digits

On an AVX-512 machine, each setting in turn emulates an AVX2-only CPU for one library. The stored VQ-VAE was made on this
machine with the libraries' defaults, so the first row must reproduce it exactly (max weight difference 0)."""
import json
import os
import subprocess
import sys

SETTINGS = {'defaults': {}, 'ATen AVX2': {'ATEN_CPU_CAPABILITY': 'avx2'}, 'MKL AVX2': {'MKL_CBWR': 'AVX2'},
            'oneDNN AVX2': {'DNNL_MAX_CPU_ISA': 'AVX2'}, 'MKL + oneDNN AVX2': {'MKL_CBWR': 'AVX2', 'DNNL_MAX_CPU_ISA': 'AVX2'}}

ONE = """
import json, sys, tempfile, torch
from safetensors.torch import load_file
from geovq_tutorial.pipeline import load_run
from geovq_tutorial.data import load_dataset_for
from geovq_tutorial.finetune import load_or_train_vqvae
cfg = load_run(sys.argv[1])
model, info = load_or_train_vqvae(cfg.replace(run_dir=tempfile.mkdtemp(), threads=1, progress=False), load_dataset_for(cfg),
                                  device=torch.device('cpu'))
stored, mine = load_file(f'{sys.argv[1]}/vqvae/{sys.argv[2]}.safetensors'), model.state_dict()
print(json.dumps({'test_mse': info['test']['mse'], 'max_weight_difference': max((mine[k].float() - stored[k].float()).abs().max().item() for k in stored)}))
"""


def main(run_dir: str = 'runs/digits', artifact: str = 'vqvae_ema') -> None:
    rows = {}
    for name, env in SETTINGS.items():
        res = subprocess.run([sys.executable, '-c', ONE, run_dir, artifact], capture_output=True, text=True, env={**os.environ, **env})
        if res.returncode != 0: raise SystemExit(res.stderr[-3000:])
        rows[name] = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{name:<20} test MSE {rows[name]['test_mse']:.6f}   max weight difference from the stored {rows[name]['max_weight_difference']:.3g}", flush=True)
    return rows


if __name__ == '__main__':
    rows = main(*sys.argv[1:])
    out = os.path.join(os.path.dirname(__file__), 'results', 'isa_probe.json')
    with open(out, 'w') as fh: json.dump({'settings': SETTINGS, 'rows': rows}, fh, indent=1)
    print(f"written to {out}")
