"""Shared command line, data and output of the peer benchmarks (stdlib + numpy only).

Every peer script takes the same flags as `examples/peer_bench.rs`:

    --mode train|predict|startup [--model mlp|conv|koch-cpu] --dim 100 --batch 32 --pairs 8192
    --epochs 2 [--threads 2] [--summary]

`--model conv` is the `faces` conv preset of `src/encoder/conv/config.rs` on 46×56 grey images
(2,576 features per sample; `--dim` is ignored): conv 16@5 → max-pool 2 → conv 32@3 →
max-pool 2 → conv 64@3 → max-pool 2 → flatten → dropout 0.2 → dense 128 (linear), valid
padding and ReLU after each conv.

`--model koch-cpu` is the `koch-cpu` preset on 52×52 grey images (2,704 features; Omniglot
downscaled, as configs/omniglot.toml): conv 16@5 → max-pool 2 → conv 32@5 → max-pool 2 →
conv 32@3 → max-pool 2 → conv 64@3 → flatten (2×2×64 = 256) → dense 256 (sigmoid), valid
padding and ReLU after each conv.

and prints one JSON line:

    {"impl": ..., "mode": ..., "dim": ..., "batch": ..., "pairs_per_s": ..., "seconds": ...,
     "params": ...}

(`params`: the trainable parameters of the shared base network.)
"""

import argparse
import json
import os
import time

# Taken when the script's module is first imported, before torch / tensorflow are.
STARTED = time.perf_counter()


def threads_from_env():
    """--threads default: RAYON_NUM_THREADS (what the harness sets for everybody), else all cores."""
    for name in ("BENCH_THREADS", "RAYON_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--mode", choices=["train", "predict", "startup"], default="train")
    p.add_argument("--model", choices=["mlp", "conv", "koch-cpu"], default="mlp")
    p.add_argument("--dim", type=int, default=100, help="input features per sample")
    p.add_argument("--batch", type=int, default=32, help="training batch / predict chunk")
    p.add_argument("--pairs", type=int, default=8192, help="number of pairs")
    p.add_argument(
        "--epochs",
        type=int,
        default=2,
        help="timed epochs (train) or passes (predict), after one warm-up",
    )
    p.add_argument("--threads", type=int, default=None, help="default: RAYON_NUM_THREADS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--summary",
        action="store_true",
        help="print the base network's layers, output shapes and parameters to stderr",
    )
    args = p.parse_args()
    if args.threads is None:
        args.threads = threads_from_env()
    if args.model == "conv":
        args.dim = CONV_HEIGHT * CONV_WIDTH
    elif args.model == "koch-cpu":
        args.dim = KOCH_CPU_HEIGHT * KOCH_CPU_WIDTH
    return args


# The conv benchmark's images: AT&T faces downscaled, as configs/att_conv.toml.
CONV_WIDTH, CONV_HEIGHT = 46, 56


def conv_features():
    """Features after the faces preset's three conv + pool stages: 64 × 5 × 3 at 46×56."""
    h, w = CONV_HEIGHT, CONV_WIDTH
    for k in (5, 3, 3):
        h, w = (h - k + 1) // 2, (w - k + 1) // 2
    return 64 * h * w


# The koch-cpu benchmark's images: Omniglot downscaled, as configs/omniglot.toml.
KOCH_CPU_WIDTH, KOCH_CPU_HEIGHT = 52, 52


def koch_cpu_features():
    """Features after the koch-cpu preset's convolutions: 64 × 2 × 2 at 52×52
    (52 → 48 → 24 → 20 → 10 → 8 → 4 → 2)."""
    h, w = KOCH_CPU_HEIGHT, KOCH_CPU_WIDTH
    for k, pool in ((5, 2), (5, 2), (3, 2), (3, 1)):
        h, w = (h - k + 1) // pool, (w - k + 1) // pool
    return 64 * h * w


def random_pairs(n, dim, seed):
    """n pairs of uniform [0, 1) float32 vectors and random 0/1 float32 labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.random((n, dim), dtype=np.float32)
    b = rng.random((n, dim), dtype=np.float32)
    y = rng.integers(0, 2, size=n).astype(np.float32)
    return a, b, y


def emit(impl, args, seconds, processed, **extra):
    """Prints the one JSON result line."""
    record = {
        "impl": impl,
        "model": args.model,
        "mode": args.mode,
        "dim": args.dim,
        "batch": args.batch,
        "pairs": args.pairs,
        "epochs": args.epochs,
        "threads": args.threads,
        "pairs_per_s": round(processed / seconds, 1) if seconds > 0 and processed else 0.0,
        "seconds": round(seconds, 6),
    }
    record.update(extra)
    print(json.dumps(record), flush=True)
