"""The reference Siamese model in PyTorch, one benchmark configuration per process.

Same flags and JSON line as `examples/peer_bench.rs` (see common.py):

    python bench/peers/torch_ref.py --mode train --dim 784 --batch 128 --pairs 8192 --epochs 2
    python bench/peers/torch_ref.py --mode train --model conv --batch 128 --pairs 1024
    python bench/peers/torch_ref.py --mode train --model koch-cpu --batch 32 --pairs 1024

Model: base network Linear(dim, 128) + ReLU, x3 (Glorot-uniform weights, zero biases) shared
by both inputs; d = sqrt(max(sum (a - b)^2, 1e-7)), shape (batch, 1); contrastive loss,
margin 1, label 1 = similar; RMSprop(lr=1e-3, alpha=0.9, eps=1e-7), no momentum.
`--model conv` swaps the base network for the faces conv preset (common.py), `--model
koch-cpu` for the koch-cpu preset, NCHW, Glorot-uniform weights and zero biases.

Note: torch's RMSprop adds eps outside the square root (g / (sqrt(v) + eps)) where Keras and
siamese use g / sqrt(v + eps). It changes the numbers slightly, not the cost.

Training mirrors Keras `fit(shuffle=True)`: a fresh permutation each epoch, each batch
gathered from it; the epoch's mean loss is read once per epoch (no sync per step).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (takes the start time before torch is imported)

args = common.parse_args("PyTorch reference Siamese model benchmark")

import torch  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(args.threads)
try:
    torch.set_num_interop_threads(args.threads)
except RuntimeError:
    pass  # only settable before any parallel work; harmless if already fixed


def init(layer):
    """Glorot-uniform weights and zero biases (Keras's defaults), in place; returns the layer."""
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def base_network(dim):
    layers = []
    for fan_in in (dim, 128, 128):
        layers += [init(nn.Linear(fan_in, 128)), nn.ReLU()]
    return nn.Sequential(*layers)


def conv_network():
    """The faces conv preset (common.py), Glorot-uniform weights and zero biases."""
    return nn.Sequential(
        nn.Unflatten(1, (1, common.CONV_HEIGHT, common.CONV_WIDTH)),
        init(nn.Conv2d(1, 16, 5)), nn.ReLU(), nn.MaxPool2d(2),
        init(nn.Conv2d(16, 32, 3)), nn.ReLU(), nn.MaxPool2d(2),
        init(nn.Conv2d(32, 64, 3)), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.2), init(nn.Linear(common.conv_features(), 128)),
    )  # fmt: skip


def koch_cpu_network():
    """The koch-cpu conv preset (common.py), Glorot-uniform weights and zero biases."""
    return nn.Sequential(
        nn.Unflatten(1, (1, common.KOCH_CPU_HEIGHT, common.KOCH_CPU_WIDTH)),
        init(nn.Conv2d(1, 16, 5)), nn.ReLU(), nn.MaxPool2d(2),
        init(nn.Conv2d(16, 32, 5)), nn.ReLU(), nn.MaxPool2d(2),
        init(nn.Conv2d(32, 32, 3)), nn.ReLU(), nn.MaxPool2d(2),
        init(nn.Conv2d(32, 64, 3)), nn.ReLU(),
        nn.Flatten(), init(nn.Linear(common.koch_cpu_features(), 256)), nn.Sigmoid(),
    )  # fmt: skip


def print_summary(net, dim):
    """Each layer's output shape and parameters for one input, on stderr (--summary)."""
    x = torch.zeros(1, dim)
    with torch.no_grad():
        for layer in net:
            x = layer(x)
            params = sum(p.numel() for p in layer.parameters())
            name = repr(layer) if params else type(layer).__name__
            print(f"{name:<56} {tuple(x.shape)!s:<18} {params:>9,}", file=sys.stderr)
    print(f"total params: {sum(p.numel() for p in net.parameters()):,}", file=sys.stderr)


def euclidean(x, y):
    return torch.sqrt(torch.clamp(((x - y) ** 2).sum(dim=1, keepdim=True), min=1e-7))


def contrastive(d, y, margin=1.0):
    return (y * d.square() + (1.0 - y) * torch.clamp(margin - d, min=0.0).square()).mean()


torch.manual_seed(args.seed)
NETWORKS = {"conv": conv_network, "koch-cpu": koch_cpu_network}
net = NETWORKS[args.model]() if args.model in NETWORKS else base_network(args.dim)
params = sum(p.numel() for p in net.parameters())
if args.summary:
    print_summary(net, args.dim)
optimizer = torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)

if args.mode == "startup":
    common.emit("torch", args, time.perf_counter() - common.STARTED, 0, params=params)
    sys.exit(0)

a_np, b_np, y_np = common.random_pairs(args.pairs, args.dim, args.seed + 1)
a = torch.from_numpy(a_np)
b = torch.from_numpy(b_np)
y = torch.from_numpy(y_np).reshape(-1, 1)
n = args.pairs

if args.mode == "train":
    generator = torch.Generator().manual_seed(args.seed)

    def epoch():
        net.train()
        perm = torch.randperm(n, generator=generator)
        total = torch.zeros(())
        for start in range(0, n, args.batch):
            idx = perm[start : start + args.batch]
            d = euclidean(net(a[idx]), net(b[idx]))
            loss = contrastive(d, y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        return float(total) / n

    epoch()  # warm-up
    t = time.perf_counter()
    for _ in range(args.epochs):
        loss = epoch()
    seconds = time.perf_counter() - t
    common.emit("torch", args, seconds, n * args.epochs, loss=round(loss, 6), params=params)
else:  # predict
    chunks = [(a[s : s + args.batch], b[s : s + args.batch]) for s in range(0, n, args.batch)]

    def predict_pass():
        net.eval()
        with torch.inference_mode():
            return torch.cat([euclidean(net(ca), net(cb)) for ca, cb in chunks]).sum().item()

    predict_pass()  # warm-up
    t = time.perf_counter()
    for _ in range(args.epochs):
        predict_pass()
    seconds = time.perf_counter() - t
    common.emit("torch", args, seconds, n * args.epochs, params=params)
