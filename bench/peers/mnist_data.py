"""The data of the Keras mnist_siamese recipe, as `siamese train --config configs/mnist.toml`
prepares it (the same steps; the random draws differ because numpy is not ChaCha8). Shared by
torch_mnist.py and keras_mnist.py (numpy only):

  - the MNIST test set, t10k-images-idx3-ubyte.gz / t10k-labels-idx1-ubyte.gz (or the
    uncompressed files) from $SIAMESE_DATA_DIR/mnist, pixels / 255, 784 features;
  - split by image, stratified: each class gives round(n_c * 0.2) random images to the test
    part (8,000 / 2,000), then round(n_c * 0.1) of each class's training images to validation
    (about 7,200 / 800);
  - Keras mnist_siamese pairs within each part: with m = min class size - 1, for every class c
    and i < m a positive (c[i], c[i+1]) and a negative (c[i], c'[i]), c' = c + random(1..9).
"""

import argparse
import gzip
import json
import os
import sys
import time

import numpy as np

import common


def find(directory, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    sys.exit(f"error: {directory} has neither {stem}.gz nor {stem}")


def read_idx(path, offset):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load_mnist(directory):
    images = read_idx(find(directory, "t10k-images-idx3-ubyte"), 16)
    labels = read_idx(find(directory, "t10k-labels-idx1-ubyte"), 8).astype(np.int64)
    images = images.reshape(len(labels), 784).astype(np.float32) / 255.0
    return images, labels


def round_half_up(x):
    return int(np.floor(x + 0.5))


def split_by_sample(labels, fraction, rng):
    """(train, test) indices; each class gives round(n_c * fraction) random samples to test."""
    train, test = [], []
    for c in range(labels.max() + 1):
        members = np.flatnonzero(labels == c)
        rng.shuffle(members)
        k = round_half_up(len(members) * fraction)
        test.extend(members[:k])
        train.extend(members[k:])
    return np.sort(np.array(train)), np.sort(np.array(test))


def keras_pairs(labels, rng):
    """Index pairs (i, j) and labels (1 = same digit), the mnist_siamese scheme."""
    by_class = [np.flatnonzero(labels == c) for c in range(labels.max() + 1)]
    by_class = [m for m in by_class if len(m)]
    k = len(by_class)
    m = min(len(members) for members in by_class) - 1
    i, j, y = [], [], []
    for ci, members in enumerate(by_class):
        for n in range(m):
            i.append(members[n])
            j.append(members[n + 1])
            y.append(1.0)
            other = by_class[(ci + rng.integers(1, k)) % k]
            i.append(members[n])
            j.append(other[n])
            y.append(0.0)
    return np.array(i), np.array(j), np.array(y, dtype=np.float32)


def prepare(data_dir, seed):
    """{"train"|"val"|"test": (a, b, y)} float32 pair arrays, and the image counts per part."""
    x, digits = load_mnist(data_dir)
    rng = np.random.default_rng(seed)
    train_all, test_idx = split_by_sample(digits, 0.2, rng)
    t, v = split_by_sample(digits[train_all], 0.1, rng)
    parts = {"train": train_all[t], "val": train_all[v], "test": test_idx}
    pairs = {}
    for name, idx in parts.items():
        i, j, y = keras_pairs(digits[idx], rng)
        samples = x[idx]
        pairs[name] = (samples[i], samples[j], y.reshape(-1, 1))
    return pairs, {name: len(idx) for name, idx in parts.items()}


def parse_args(description):
    """The MNIST peers' flags; returns (args, threads)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=None, help="default: RAYON_NUM_THREADS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="default: $SIAMESE_DATA_DIR/mnist")
    p.add_argument("--threshold", type=float, default=0.5)
    args = p.parse_args()
    return args, args.threads or common.threads_from_env()


def data_dir(args):
    """--data-dir, else $SIAMESE_DATA_DIR/mnist."""
    return args.data_dir or os.path.join(os.environ.get("SIAMESE_DATA_DIR", "."), "mnist")


def emit(impl, args, threads, images, pairs, seconds, started, accuracy, final_loss):
    """Prints the one JSON result line of an MNIST peer."""
    record = {
        "impl": impl,
        "mode": "mnist",
        "epochs": args.epochs,
        "batch": args.batch,
        "threads": threads,
        "train_images": images["train"],
        "val_images": images["val"],
        "test_images": images["test"],
        "train_pairs": len(pairs["train"][2]),
        "test_pairs": len(pairs["test"][2]),
        "seconds": round(seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 3),
        "test_accuracy": round(accuracy, 4),
        "threshold": args.threshold,
        "final_loss": None if final_loss is None else round(final_loss, 5),
    }
    print(json.dumps(record), flush=True)
