"""The Keras mnist_siamese recipe in PyTorch, mirroring `siamese train --config configs/mnist.toml`.

    SIAMESE_DATA_DIR=../shared/data python bench/peers/torch_mnist.py [--epochs 20] [--threads 2]

Data, as configs/mnist.toml prepares it (the same steps; the random draws differ because numpy
is not ChaCha8):
  - the MNIST test set, t10k-images-idx3-ubyte.gz / t10k-labels-idx1-ubyte.gz (or the
    uncompressed files) from $SIAMESE_DATA_DIR/mnist, pixels / 255, 784 features;
  - split by image, stratified: each class gives round(n_c * 0.2) random images to the test
    part (8,000 / 2,000), then round(n_c * 0.1) of each class's training images to validation
    (about 7,200 / 800);
  - Keras mnist_siamese pairs within each part: with m = min class size - 1, for every class c
    and i < m a positive (c[i], c[i+1]) and a negative (c[i], c'[i]), c' = c + random(1..9).
Model: Linear(784,128)+ReLU, Dropout(0.1), Linear(128,128)+ReLU, Dropout(0.1),
Linear(128,128)+ReLU (Glorot-uniform, zero biases), shared by both inputs; Euclidean distance
(eps 1e-7); contrastive loss, margin 1; RMSprop(lr=1e-3, alpha=0.9, eps=1e-7) (torch puts eps
outside the sqrt); 20 epochs at batch 128, shuffled; validation loss and accuracy each epoch
(as `fit` with validation data does). Test pair accuracy at d < 0.5.

Prints one JSON line: {"impl": "torch", "mode": "mnist", "seconds": <training>, ...}.
"""

import argparse
import gzip
import json
import os
import sys
import time

STARTED = time.perf_counter()

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--epochs", type=int, default=20)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--threads", type=int, default=None, help="default: RAYON_NUM_THREADS")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--data-dir", default=None, help="default: $SIAMESE_DATA_DIR/mnist")
p.add_argument("--threshold", type=float, default=0.5)
args = p.parse_args()
threads = args.threads or common.threads_from_env()

import torch  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(threads)
try:
    torch.set_num_interop_threads(threads)
except RuntimeError:
    pass


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


data_dir = args.data_dir or os.path.join(os.environ.get("SIAMESE_DATA_DIR", "."), "mnist")
x, digits = load_mnist(data_dir)
rng = np.random.default_rng(args.seed)
train_all, test_idx = split_by_sample(digits, 0.2, rng)
t, v = split_by_sample(digits[train_all], 0.1, rng)
train_idx, val_idx = train_all[t], train_all[v]


def pair_tensors(idx):
    i, j, y = keras_pairs(digits[idx], rng)
    samples = x[idx]
    return (
        torch.from_numpy(samples[i]),
        torch.from_numpy(samples[j]),
        torch.from_numpy(y).reshape(-1, 1),
    )


tr_a, tr_b, tr_y = pair_tensors(train_idx)
va_a, va_b, va_y = pair_tensors(val_idx)
te_a, te_b, te_y = pair_tensors(test_idx)


def dense(fan_in):
    linear = nn.Linear(fan_in, 128)
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


torch.manual_seed(args.seed)
net = nn.Sequential(
    dense(784), nn.ReLU(), nn.Dropout(0.1),
    dense(128), nn.ReLU(), nn.Dropout(0.1),
    dense(128), nn.ReLU(),
)  # fmt: skip
optimizer = torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)


def euclidean(p, q):
    return torch.sqrt(torch.clamp(((p - q) ** 2).sum(dim=1, keepdim=True), min=1e-7))


def contrastive(d, y, margin=1.0):
    return (y * d.square() + (1.0 - y) * torch.clamp(margin - d, min=0.0).square()).mean()


def distances(a, b, batch=1024):
    net.eval()
    with torch.inference_mode():
        return torch.cat(
            [euclidean(net(a[s : s + batch]), net(b[s : s + batch])) for s in range(0, len(a), batch)]
        )


generator = torch.Generator().manual_seed(args.seed)
n = len(tr_y)
history = []
t0 = time.perf_counter()
for epoch in range(args.epochs):
    net.train()
    perm = torch.randperm(n, generator=generator)
    total = torch.zeros(())
    correct = torch.zeros(())
    for start in range(0, n, args.batch):
        idx = perm[start : start + args.batch]
        d = euclidean(net(tr_a[idx]), net(tr_b[idx]))
        loss = contrastive(d, tr_y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(idx)
        correct += ((d.detach() < args.threshold).float() == tr_y[idx]).sum()
    dv = distances(va_a, va_b)
    history.append(
        {
            "loss": float(total) / n,
            "accuracy": float(correct) / n,
            "val_loss": float(contrastive(dv, va_y)),
            "val_accuracy": float(((dv < args.threshold).float() == va_y).float().mean()),
        }
    )
train_seconds = time.perf_counter() - t0

dt = distances(te_a, te_b)
accuracy = float(((dt < args.threshold).float() == te_y).float().mean())
print(
    json.dumps(
        {
            "impl": "torch",
            "mode": "mnist",
            "epochs": args.epochs,
            "batch": args.batch,
            "threads": threads,
            "train_images": len(train_idx),
            "val_images": len(val_idx),
            "test_images": len(test_idx),
            "train_pairs": n,
            "test_pairs": len(te_y),
            "seconds": round(train_seconds, 3),
            "total_seconds": round(time.perf_counter() - STARTED, 3),
            "test_accuracy": round(accuracy, 4),
            "threshold": args.threshold,
            "final_loss": round(history[-1]["loss"], 5) if history else None,
        }
    ),
    flush=True,
)
