"""The Keras mnist_siamese recipe in PyTorch, mirroring `siamese train --config configs/mnist.toml`.

    SIAMESE_DATA_DIR=../shared/data python bench/peers/torch_mnist.py [--epochs 20] [--threads 2]

Data: mnist_data.py (the test set split 8,000 / 2,000 by image, Keras pairs within each part).
Model: Linear(784,128)+ReLU, Dropout(0.1), Linear(128,128)+ReLU, Dropout(0.1),
Linear(128,128)+ReLU (Glorot-uniform, zero biases), shared by both inputs; Euclidean distance
(eps 1e-7); contrastive loss, margin 1; RMSprop(lr=1e-3, alpha=0.9, eps=1e-7) (torch puts eps
outside the sqrt); 20 epochs at batch 128, shuffled; validation loss and accuracy each epoch
(as `fit` with validation data does). Test pair accuracy at d < 0.5.

Prints one JSON line: {"impl": "torch", "mode": "mnist", "seconds": <training>, ...}.
"""

import os
import sys
import time

STARTED = time.perf_counter()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist_data  # noqa: E402

args, threads = mnist_data.parse_args(__doc__.splitlines()[0])

import torch  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(threads)
try:
    torch.set_num_interop_threads(threads)
except RuntimeError:
    pass


pairs, images = mnist_data.prepare(mnist_data.data_dir(args), args.seed)
tr_a, tr_b, tr_y = (torch.from_numpy(v) for v in pairs["train"])
va_a, va_b, va_y = (torch.from_numpy(v) for v in pairs["val"])
te_a, te_b, te_y = (torch.from_numpy(v) for v in pairs["test"])


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
mnist_data.emit(
    "torch", args, threads, images, pairs, train_seconds, STARTED, accuracy,
    history[-1]["loss"] if history else None,
)
