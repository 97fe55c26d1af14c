#!/usr/bin/env python3
"""Benchmark harness: siamese (Rust, flex CPU) against PyTorch and Keras 3 (TensorFlow).

Standard library only. It builds nothing; build first, from the repository root:

    cargo build --release --bin siamese --example peer_bench --example seed --example fma_peak

and install the peers (bench/README.md):

    python3.11 -m venv /tmp/peers-venv
    /tmp/peers-venv/bin/pip install -r bench/peers/requirements.txt

Then:

    python3 bench/run.py --quick                      # smoke run: 1 repetition, small sizes
    python3 bench/run.py --out bench/results.md       # full run: 3 repetitions
    python3 bench/run.py --only train,predict --reps 5

Every measurement is a separate process (so start-up and peak RSS are per process), the
implementations run alternately within each row (rotating which goes first) so that machine
noise hits all of them alike, and every table shows medians over the repetitions. Peak RSS is
the child's own ru_maxrss from os.wait4. All children get the same thread count (--threads,
default 2): RAYON_NUM_THREADS for siamese, torch.set_num_threads for PyTorch, TensorFlow's
intra- and inter-op pools for Keras, plus OMP/MKL/OpenBLAS variables.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "bench", "peers")
# Our binaries, under <target dir>/release: --target-dir, else $CARGO_TARGET_DIR, else target/.
PEER_BENCH = FMA_PEAK = SEED_BIN = SIAMESE_BIN = None


def set_target_dir(target_dir):
    global PEER_BENCH, FMA_PEAK, SEED_BIN, SIAMESE_BIN
    release = os.path.join(os.path.abspath(target_dir), "release")
    PEER_BENCH = os.path.join(release, "examples", "peer_bench")
    FMA_PEAK = os.path.join(release, "examples", "fma_peak")
    SEED_BIN = os.path.join(release, "examples", "seed")
    SIAMESE_BIN = os.path.join(release, "siamese")


set_target_dir(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"))
# "burn" is ours with the fused MLP path off (peer_bench --burn): the before/after of src/fused/.
IMPLS = ("siamese", "burn", "torch", "keras")

# ours / torch at least this much (training by batch size; predict at batch 1024).
TRAIN_TARGETS = {32: 3.0, 128: 1.5, 1024: 1.2}
PREDICT_TARGET = 1.5
WHOLE_PROGRAM_TARGET = 0.10  # ours / keras at most this, wall and peak RSS
CONTENTION_TARGET = 0.45  # contended / uncontended throughput at least this

log_lines = []


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


def run_child(cmd, env, timeout):
    """Runs cmd to completion; returns wall seconds, the child's own peak RSS, its output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    result = {
        "cmd": cmd,
        "rc": proc.returncode,
        "wall_s": wall,
        "rss_mb": usage.ru_maxrss / 1024.0,  # KiB on Linux
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "json": last_json(stdout),
        "stdout": stdout,
    }
    if proc.returncode != 0:
        result["error"] = (stderr.strip() or stdout.strip())[-600:]
        log(f"    FAILED (rc {proc.returncode}): {' '.join(cmd)}\n      {result['error']!r}")
    return result


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


class Busy:
    """A `python -c 'while True: pass'` child pinned to one core, for the contention row."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            os.sched_setaffinity(self.proc.pid, {sorted(os.sched_getaffinity(0))[0]})
        except (AttributeError, OSError):
            pass
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


# --------------------------------------------------------------------------- commands


def bench_cmd(impl, python, mode, dim, batch, pairs, epochs, threads, model="mlp"):
    flags = [
        "--mode", mode, "--model", model, "--dim", str(dim), "--batch", str(batch),
        "--pairs", str(pairs), "--epochs", str(epochs), "--threads", str(threads),
    ]  # fmt: skip
    if impl == "siamese":
        return [PEER_BENCH] + flags
    if impl == "burn":
        return [PEER_BENCH] + flags + ["--burn"]
    return [python, os.path.join(PEERS, f"{impl}_ref.py")] + flags


def rotated(impls, rep):
    k = rep % len(impls)
    return list(impls[k:]) + list(impls[:k])


def measure(label, impls, make_cmd, args, env, reps=None):
    """Runs every impl `reps` times, alternating; returns {impl: [result, ...]}."""
    reps = reps or args.reps
    results = {impl: [] for impl in impls}
    for rep in range(reps):
        for impl in rotated(impls, rep):
            cmd = make_cmd(impl)
            r = run_child(cmd, env, args.timeout)
            r["rep"] = rep
            results[impl].append(r)
            rate = (r["json"] or {}).get("pairs_per_s")
            extra = f", {rate:,.0f} pairs/s" if rate else ""
            log(f"  {label} [{impl} {rep + 1}/{reps}] {r['wall_s']:.2f} s, {r['rss_mb']:.0f} MB{extra}")
    return results


def ok(runs):
    return [r for r in runs if r["rc"] == 0]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def med_rate(runs):
    return med([(r["json"] or {}).get("pairs_per_s") for r in ok(runs)])


def med_wall(runs):
    return med([r["wall_s"] for r in ok(runs)])


def med_rss(runs):
    return med([r["rss_mb"] for r in ok(runs)])


# --------------------------------------------------------------------------- formatting


def fmt_num(v, digits=0):
    if v is None:
        return "failed"
    return f"{v:,.{digits}f}"


def show(args, impl, value, digits=0):
    """A median, or "not run" for an implementation left out with --impls."""
    return fmt_num(value, digits) if impl in args.impls else "not run"


def fmt_ratio(ours, peer):
    if ours is None or peer is None or peer == 0:
        return "–"
    r = ours / peer
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.2g}×"


def verdict(value, target, at_least=True):
    if value is None:
        return "–"
    met = value >= target if at_least else value <= target
    return "yes" if met else "**no**"


def ratio(ours, peer):
    if ours is None or peer is None or peer == 0:
        return None
    return ours / peer


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- sections


THROUGHPUT_COLUMNS = ["dim", "batch", "siamese", "burn path", "torch", "keras", "ours/torch",
                      "ours/keras", "fused/burn", "target", "met",
                      "peak RSS MB (s / b / t / k)"]  # fmt: skip


def throughput_row(args, env, raw, mode, dim, batch, pairs, passes, target, model="mlp"):
    """Measures one dim × batch configuration of `mode` and returns its table row (a conv
    row has no target)."""
    label = f"{mode} dim {dim} batch {batch}" + (f" {model}" if model != "mlp" else "")
    log(label)
    impls = args.impls
    res = measure(
        label, impls,
        lambda i: bench_cmd(i, args.python, mode, dim, batch, pairs, passes, args.threads, model),
        args, env,
    )  # fmt: skip
    raw[label] = res
    rate = {i: med_rate(res.get(i, [])) for i in IMPLS}
    rss = {i: med_rss(res.get(i, [])) for i in IMPLS}
    return [
        dim, batch,
        *(show(args, i, rate[i]) for i in IMPLS),
        fmt_ratio(rate["siamese"], rate["torch"]), fmt_ratio(rate["siamese"], rate["keras"]),
        fmt_ratio(rate["siamese"], rate["burn"]),
        f"≥ {target}× torch" if target else "–",
        verdict(ratio(rate["siamese"], rate["torch"]), target) if target else "–",
        " / ".join(show(args, i, rss[i]) for i in IMPLS),
    ]  # fmt: skip


def section_train(args, env, sizes, raw):
    rows = [
        throughput_row(args, env, raw, "train", dim, batch, sizes["train_pairs"],
                       sizes["train_epochs"], TRAIN_TARGETS[batch])
        for dim in (100, 784)
        for batch in (32, 128, 1024)
    ]  # fmt: skip
    return (
        f"### Training throughput (pairs/s; {sizes['train_pairs']} pairs, "
        f"{sizes['train_epochs']} timed epoch(s) after 1 warm-up)\n\n"
        + table(THROUGHPUT_COLUMNS, rows)
    )


def predict_flop_per_pair(dim):
    """FLOP of one reference-model pair: two inputs through 784|100→128→128→128."""
    return 2 * 2 * (dim * 128 + 128 * 128 + 128 * 128)


def fma_peak(args, env, raw):
    """Median f32 FMA peak in GFLOP/s on --threads threads (examples/fma_peak.rs), or None."""
    if not os.path.exists(FMA_PEAK):
        log(f"  {FMA_PEAK} not built: no FMA peak")
        return None
    runs = []
    for rep in range(3):
        r = run_child([FMA_PEAK, str(args.threads)], env, args.timeout)
        log(f"  fma peak [{rep + 1}/3] {(r['json'] or {}).get('gflops')} GFLOP/s")
        runs.append(r)
    raw["fma peak"] = {"fma_peak": runs}
    return med([(r["json"] or {}).get("gflops") for r in ok(runs)])


def section_predict(args, env, sizes, raw):
    rows = [
        throughput_row(args, env, raw, "predict", dim, 1024, sizes["predict_pairs"],
                       sizes["predict_passes"], PREDICT_TARGET)
        for dim in (100, 784)
    ]  # fmt: skip
    log("fma peak")
    peak = fma_peak(args, env, raw)
    lines = []
    for dim in (100, 784):
        res = raw[f"predict dim {dim} batch 1024"]
        parts = []
        for impl in args.impls:
            rate = med_rate(res.get(impl, []))
            if rate is None:
                continue
            gflops = rate * predict_flop_per_pair(dim) / 1e9
            share = f" ({gflops / peak:.0%} of peak)" if peak else ""
            parts.append(f"{impl} {gflops:,.0f}{share}")
        lines.append(f"- dim {dim}: " + ", ".join(parts))
    roofline = (
        f"\n\nGFLOP/s ({predict_flop_per_pair(100):,} FLOP per pair at dim 100, "
        f"{predict_flop_per_pair(784):,} at dim 784) against the f32 FMA peak measured in "
        f"the same run on {args.threads} threads (examples/fma_peak.rs): "
        + (f"**{peak:,.0f} GFLOP/s**" if peak else "not measured")
        + "\n\n" + "\n".join(lines)
    )
    return (
        f"### Predict throughput (pairs/s; {sizes['predict_pairs']} pairs, "
        f"{sizes['predict_passes']} timed pass(es) after 1 warm-up)\n\n"
        + table(THROUGHPUT_COLUMNS, rows)
        + roofline
    )


# The conv presets benchmarked: --model flag of the benchmark programs -> (preset, image w×h).
CONV_MODELS = {"conv": ("faces", (46, 56)), "koch-cpu": ("koch-cpu", (52, 52))}
CONV_TRAIN_BATCHES = (128, 32)
CONV_PREDICT_CHUNK = 256


def section_conv(args, env, sizes, raw):
    rows, params = [], []
    for model, (preset, (width, height)) in CONV_MODELS.items():
        dim = width * height
        for mode, batch, pairs, passes in [
            *(("train", b, sizes["conv_train_pairs"], sizes["conv_train_epochs"])
              for b in CONV_TRAIN_BATCHES),
            ("predict", CONV_PREDICT_CHUNK, sizes["conv_predict_pairs"],
             sizes["conv_predict_passes"]),
        ]:  # fmt: skip
            row = throughput_row(args, env, raw, mode, dim, batch, pairs, passes, None, model)
            rows.append([f"`{preset}`", mode] + row)
        # Trainable parameters of the shared encoder, as each implementation reports them.
        counts = {}
        for label, res in raw.items():
            if not label.endswith(f" {model}"):
                continue
            for impl, runs in res.items():
                for r in ok(runs):
                    if (r["json"] or {}).get("params") is not None:
                        counts.setdefault(impl, r["json"]["params"])
        same = "equal" if len(set(counts.values())) == 1 else "**differ**"
        listed = ", ".join(f"{impl} {counts[impl]:,}" for impl in IMPLS if impl in counts)
        params.append(f"- `{preset}` ({width}×{height}): {listed or 'none reported'} ({same})")
    return (
        "### Conv presets `faces` and `koch-cpu` (Euclidean distance, contrastive loss, RMSprop; "
        f"train {sizes['conv_train_pairs']} pairs × {sizes['conv_train_epochs']} timed "
        f"epoch(s) at batch {' and '.join(map(str, CONV_TRAIN_BATCHES))}, predict "
        f"{sizes['conv_predict_pairs']} pairs × {sizes['conv_predict_passes']} pass(es) in "
        f"chunks of {CONV_PREDICT_CHUNK}, after 1 warm-up)\n\n"
        "- `faces`: 46×56 grey images (2,576 features; `--model conv`): conv 16@5 → pool → "
        "conv 32@3 → pool → conv 64@3 → pool → dropout 0.2 → dense 128 (linear)\n"
        "- `koch-cpu`: 52×52 grey images (2,704 features; `--model koch-cpu`): conv 16@5 → "
        "pool → conv 32@5 → pool → conv 32@3 → pool → conv 64@3 → flatten 256 → dense 256 "
        "(sigmoid)\n\n"
        "Valid padding, stride 1, ReLU convolutions, 2×2 max-pooling. Ours trains on the host "
        "conv trainer of src/fused/conv_train/ and predicts on the host conv path of "
        "src/fused/conv.rs (AVX-512 CPUs; elsewhere burn); the burn path is everything through "
        "burn.\n\n"
        + table(["model", "mode"] + THROUGHPUT_COLUMNS, rows)
        + "\n\nTrainable parameters of the shared encoder, as each implementation reports "
        "them:\n\n" + "\n".join(params)
    )


def section_startup(args, env, sizes, raw):
    label = "startup dim 784"
    log(label)
    res = measure(
        label, args.impls,
        lambda i: bench_cmd(i, args.python, "startup", 784, 128, 1, 1, args.threads),
        args, env,
    )  # fmt: skip
    raw[label] = res
    rows = []
    for impl in IMPLS:
        if impl not in res:
            continue
        rows.append([
            impl, fmt_num(med_wall(res[impl]), 3), fmt_num(med_rss(res[impl])),
            fmt_ratio(med_wall(res["siamese"]), med_wall(res[impl])) if impl != "siamese" else "–",
        ])  # fmt: skip
    return (
        "### Start-up (process start to model built, dim 784, no training)\n\n"
        + table(["impl", "wall s", "peak RSS MB", "ours/impl wall"], rows)
    )


def section_seed(args, env, sizes, raw):
    label = "whole reference program"
    log(label)
    impls = [i for i in ("siamese", "keras") if i in args.impls]
    cmds = {
        "siamese": [SEED_BIN],
        "keras": [args.python, os.path.join(PEERS, "keras_seed.py")],
    }
    res = measure(label, impls, lambda i: cmds[i], args, env)
    raw[label] = res
    wall = {i: med_wall(res.get(i, [])) for i in ("siamese", "keras")}
    rss = {i: med_rss(res.get(i, [])) for i in ("siamese", "keras")}
    rows = [
        ["wall s", fmt_num(wall["siamese"], 3), show(args, "keras", wall["keras"], 3),
         fmt_ratio(wall["siamese"], wall["keras"]), f"≤ {WHOLE_PROGRAM_TARGET}",
         verdict(ratio(wall["siamese"], wall["keras"]), WHOLE_PROGRAM_TARGET, at_least=False)],
        ["peak RSS MB", fmt_num(rss["siamese"], 1), show(args, "keras", rss["keras"], 1),
         fmt_ratio(rss["siamese"], rss["keras"]), f"≤ {WHOLE_PROGRAM_TARGET}",
         verdict(ratio(rss["siamese"], rss["keras"]), WHOLE_PROGRAM_TARGET, at_least=False)],
    ]  # fmt: skip
    return (
        "### Whole reference program (100 random pairs, 20 epochs at batch 32, one predict)\n\n"
        "`target/release/examples/seed` vs `bench/peers/keras_seed.py`, whole process.\n\n"
        + table(["", "siamese", "keras", "ours/keras", "target", "met"], rows)
    )


TRAIN_SECONDS = re.compile(r"test \(([0-9.]+)s of training\)")


def section_mnist(args, env, sizes, raw):
    label = "MNIST recipe"
    log(label)
    data_dir = env.get("SIAMESE_DATA_DIR")
    mnist_dir = os.path.join(data_dir, "mnist") if data_dir else None
    if not mnist_dir or not os.path.isdir(mnist_dir):
        log(f"  skipped: no MNIST directory (SIAMESE_DATA_DIR={data_dir!r})")
        return (
            "### MNIST recipe\n\nskipped: set SIAMESE_DATA_DIR to a folder with mnist/ "
            "(t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)."
        )
    work = tempfile.mkdtemp(prefix="siamese-bench-")
    epochs = sizes["mnist_epochs"]
    impls = [i for i in ("siamese", "torch", "keras") if i in args.impls]
    out_dir = os.path.join(work, "mnist")

    def make(impl):
        if impl == "siamese":
            cmd = [SIAMESE_BIN, "train", "--config", os.path.join(ROOT, "configs", "mnist.toml"),
                   "--output", out_dir, "--quiet"]  # fmt: skip
        else:
            cmd = [args.python, os.path.join(PEERS, f"{impl}_mnist.py"),
                   "--threads", str(args.threads)]  # fmt: skip
        if epochs is not None:
            cmd += ["--epochs", str(epochs)]
        return cmd

    res = {i: [] for i in impls}
    for rep in range(args.reps):
        for impl in rotated(impls, rep):
            r = run_child(make(impl), env, args.timeout)
            r["rep"] = rep
            if impl == "siamese" and r["rc"] == 0:
                m = TRAIN_SECONDS.search(r["stdout"])
                r["train_s"] = float(m.group(1)) if m else None
                # Accuracy at d < 0.5 (train reports it at the calibrated threshold); untimed.
                ev_dir = os.path.join(work, f"eval-{rep}")
                ev = run_child(
                    [SIAMESE_BIN, "evaluate", "--model", out_dir, "--threshold", "0.5",
                     "--no-plots", "--out", ev_dir],
                    env, args.timeout,
                )  # fmt: skip
                r["test_accuracy"] = None
                if ev["rc"] == 0:
                    try:
                        with open(os.path.join(ev_dir, "report.json")) as f:
                            report = json.load(f)
                        r["test_accuracy"] = find_key(report, "accuracy")
                        r["test_pairs"] = find_key(report, "pairs")
                    except (OSError, json.JSONDecodeError):
                        pass
            elif r["rc"] == 0 and r["json"]:
                r["train_s"] = r["json"].get("seconds")
                r["test_accuracy"] = r["json"].get("test_accuracy")
                r["test_pairs"] = r["json"].get("test_pairs")
            res[impl].append(r)
            log(f"  {label} [{impl} {rep + 1}/{args.reps}] {r['wall_s']:.2f} s, "
                f"{r['rss_mb']:.0f} MB, train {r.get('train_s')} s, acc {r.get('test_accuracy')}")
    shutil.rmtree(work, ignore_errors=True)
    raw[label] = res
    rows = []
    for impl in impls:
        runs = ok(res[impl])
        rows.append([
            impl,
            fmt_num(med([r.get("train_s") for r in runs]), 2),
            fmt_num(med_wall(runs), 2),
            fmt_num(med_rss(runs)),
            fmt_num(med([r.get("test_accuracy") for r in runs]), 4),
            fmt_num(med([r.get("test_pairs") for r in runs])),
        ])  # fmt: skip
    ours = med([r.get("train_s") for r in ok(res.get("siamese", []))])
    note = ", ".join(
        f"ours/{impl}: {fmt_ratio(ours, med([r.get('train_s') for r in ok(res[impl])]))}"
        for impl in impls
        if impl != "siamese"
    )
    note = f"training time {note} (lower is better)"
    return (
        f"### MNIST recipe ({'20' if epochs is None else epochs} epochs, batch 128, "
        "8,000 / 2,000 split by image)\n\n"
        "`siamese train --config configs/mnist.toml` vs `bench/peers/torch_mnist.py` and "
        "`bench/peers/keras_mnist.py`. "
        "Process wall includes loading, pairing, evaluation (and for siamese saving the model "
        "directory); accuracy is on the test pairs at d < 0.5.\n\n"
        + table(["impl", "train s", "process wall s", "peak RSS MB", "test acc @0.5",
                 "test pairs"], rows)  # fmt: skip
        + f"\n\n{note}"
    )


def find_key(obj, key):
    """First value of `key` in a nested JSON object (report layouts may nest the metrics)."""
    if isinstance(obj, dict):
        if key in obj and isinstance(obj[key], (int, float)):
            return obj[key]
        for v in obj.values():
            found = find_key(v, key)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = find_key(v, key)
            if found is not None:
                return found
    return None


def section_contention(args, env, sizes, raw):
    dim, batch = 784, 128
    label = f"contention train dim {dim} batch {batch}"
    log(label)
    impls = [i for i in ("siamese", "torch", "keras") if i in args.impls]
    res = {i: {"free": [], "busy": []} for i in impls}
    for rep in range(args.reps):
        for state in ("free", "busy"):
            ctx = Busy() if state == "busy" else None
            try:
                if ctx:
                    ctx.__enter__()
                for impl in rotated(impls, rep):
                    cmd = bench_cmd(impl, args.python, "train", dim, batch,
                                    sizes["train_pairs"], sizes["train_epochs"], args.threads)  # fmt: skip
                    r = run_child(cmd, env, args.timeout)
                    r["rep"] = rep
                    res[impl][state].append(r)
                    rate = (r["json"] or {}).get("pairs_per_s")
                    log(f"  {label} [{impl} {state} {rep + 1}/{args.reps}] "
                        f"{rate and f'{rate:,.0f}'} pairs/s")
            finally:
                if ctx:
                    ctx.__exit__(None, None, None)
    raw[label] = res
    rows = []
    for impl in impls:
        free, busy = med_rate(res[impl]["free"]), med_rate(res[impl]["busy"])
        r = ratio(busy, free)
        rows.append([impl, fmt_num(free), fmt_num(busy), fmt_ratio(busy, free),
                     f"≥ {CONTENTION_TARGET}", verdict(r, CONTENTION_TARGET)])  # fmt: skip
    return (
        f"### Contention (train dim {dim} batch {batch}, {args.threads} threads, while a "
        "`python -c 'while True: pass'` child pinned to one core runs)\n\n"
        + table(["impl", "uncontended pairs/s", "contended pairs/s", "contended/uncontended",
                 "target", "met"], rows)  # fmt: skip
    )


SECTIONS = {
    "train": section_train,
    "predict": section_predict,
    "conv": section_conv,
    "startup": section_startup,
    "seed": section_seed,
    "mnist": section_mnist,
    "contention": section_contention,
}


# --------------------------------------------------------------------------- main


def machine_line():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}"


def load():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def busy_warning():
    """A warning when something else is using the CPUs (the figures are then not comparable)."""
    try:
        one_minute = os.getloadavg()[0]
    except OSError:
        return None
    if one_minute > 0.5:
        return (
            f" — **the machine is busy (1-min load {one_minute:.2f}); PyTorch's spinning "
            "OpenMP pool in particular collapses when a core is taken: rerun when idle**"
        )
    return None


def default_python():
    env = os.environ.get("PEERS_PYTHON")
    if env:
        return env
    venv = "/tmp/peers-venv/bin/python"
    return venv if os.path.exists(venv) else sys.executable


def main():
    p = argparse.ArgumentParser(
        description="siamese vs PyTorch vs Keras 3 benchmark harness (see bench/README.md)"
    )
    p.add_argument("--quick", action="store_true", help="1 repetition and small sizes (smoke run)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per row (default 3; 1 with --quick)")
    p.add_argument("--threads", type=int, default=2, help="threads for every implementation")
    p.add_argument("--python", default=default_python(),
                   help="python with torch/tensorflow/keras (default: $PEERS_PYTHON, else /tmp/peers-venv)")  # fmt: skip
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections: {','.join(SECTIONS)}")  # fmt: skip
    p.add_argument("--impls", default=",".join(IMPLS), help="comma-separated subset of siamese,burn,torch,keras")
    p.add_argument("--omp-passive", action="store_true",
                   help="set OMP_WAIT_POLICY=PASSIVE for every child (PyTorch's OpenMP threads "
                        "then sleep instead of spinning; far better on a busy machine)")  # fmt: skip
    p.add_argument("--out", help="also write the markdown report to this file")
    p.add_argument("--json", help="write every raw measurement to this JSON file")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before a child is killed")
    p.add_argument("--target-dir", default=None,
                   help="cargo target directory holding release/ (default: $CARGO_TARGET_DIR, "
                        "else target/)")  # fmt: skip
    args = p.parse_args()
    args.reps = args.reps or (1 if args.quick else 3)
    args.impls = [i for i in args.impls.split(",") if i]
    if "siamese" not in args.impls:
        p.error("--impls must include siamese (every ratio is ours / peer)")
    sections = [s for s in args.only.split(",") if s]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")

    if args.target_dir:
        set_target_dir(args.target_dir)
    needed = {PEER_BENCH: any(s in sections for s in ("train", "predict", "conv", "startup",
                                                          "contention")),
              SEED_BIN: "seed" in sections, SIAMESE_BIN: "mnist" in sections}  # fmt: skip
    missing = [b for b, used in needed.items() if used and not os.path.exists(b)]
    if missing:
        sys.exit(
            "error: missing " + ", ".join(os.path.relpath(m, ROOT) for m in missing)
            + "\nbuild first: cargo build --release --bin siamese --example peer_bench --example seed --example fma_peak"
        )

    sizes = (
        dict(train_pairs=1024, train_epochs=1, predict_pairs=2048, predict_passes=1, mnist_epochs=1,
             conv_train_pairs=256, conv_train_epochs=1, conv_predict_pairs=512,
             conv_predict_passes=1)
        if args.quick
        # Timed windows of at least ~0.1 s for the fastest implementation: with 2 epochs and
        # 5 passes the fused path's rows lasted 15-30 ms and varied by ±20% between runs.
        else dict(train_pairs=8192, train_epochs=8, predict_pairs=8192, predict_passes=40,
                  mnist_epochs=None, conv_train_pairs=1024, conv_train_epochs=2,
                  conv_predict_pairs=2048, conv_predict_passes=3)  # fmt: skip
    )

    env = dict(os.environ)
    t = str(args.threads)
    for name in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                 "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "BENCH_THREADS"):  # fmt: skip
        env[name] = t
    if args.omp_passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    env["KERAS_BACKEND"] = "tensorflow"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "SIAMESE_DATA_DIR" not in env:
        shared = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
        if os.path.isdir(shared):
            env["SIAMESE_DATA_DIR"] = shared

    started = time.perf_counter()
    load_before = load()
    header = [
        "## siamese vs PyTorch vs Keras 3" + (" — QUICK SMOKE RUN (not for figures)" if args.quick else ""),
        "",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {machine_line()}",
        f"- threads per implementation: {args.threads}; repetitions per row: {args.reps} "
        "(medians shown); each measurement is its own process; OpenMP wait policy: "
        + env.get("OMP_WAIT_POLICY", "default (active spinning)"),
        f"- load average before: {load_before}"
        + (busy_warning() or ""),
        f"- peers: {peer_versions(args.python, env)}",
    ]
    raw = {}
    parts = []
    for name in sections:
        parts.append(SECTIONS[name](args, env, sizes, raw))
    elapsed = time.perf_counter() - started
    header.append(f"- load average after: {load()}; harness wall time {elapsed / 60:.1f} min")
    report = "\n".join(header) + "\n\n" + "\n\n".join(parts) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
        log(f"wrote {args.out}")
    if args.json:
        for rows in raw.values():
            for runs in rows.values():
                for r in runs if isinstance(runs, list) else sum(runs.values(), []):
                    r.pop("stdout", None)
        with open(args.json, "w") as f:
            json.dump({"sizes": sizes, "threads": args.threads, "reps": args.reps,
                       "results": raw}, f, indent=1)  # fmt: skip
        log(f"wrote {args.json}")


def peer_versions(python, env):
    code = (
        "import importlib.metadata as m\n"
        "out = []\n"
        "for p in ('torch', 'tensorflow-cpu', 'tensorflow', 'keras', 'numpy'):\n"
        "    try: out.append(p + ' ' + m.version(p))\n"
        "    except Exception: pass\n"
        "print(', '.join(out))"
    )
    try:
        r = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=60)
        return f"{r.stdout.strip() or 'none found'} ({python})"
    except OSError as e:
        return f"unavailable ({python}: {e})"


if __name__ == "__main__":
    main()
