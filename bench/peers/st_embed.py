"""sentence-transformers peer for the pretrained sentence encoders (CPU PyTorch).

    OMP_NUM_THREADS=2 python bench/peers/st_embed.py --mode embed --model DIR --batch 32 [--sentences stsb|FILE]
    python bench/peers/st_embed.py --mode encode --model DIR --input sentences.txt --out emb.npy
    python bench/peers/st_embed.py --mode stsb --model DIR [--split test|dev|train]
    python bench/peers/st_embed.py --mode sick --model DIR [--split test|trial|train]
    python bench/peers/st_embed.py --mode finetune-epoch --model DIR --batch 16 [--steps 50]

Needs bench/peers/requirements-text.txt (torch, transformers, sentence-transformers, scipy) in a
throw-away venv; the crate never depends on Python. DIR is a sentence-transformers directory,
e.g. the one `python3 tools/fetch_minilm.py /tmp/models/all-MiniLM-L6-v2` writes. Nothing is
downloaded: the model loads from DIR only (HF_HUB_OFFLINE=1).

Data: STS-B (`sts_benchmark/sts-{train,dev,test}.csv`) and SICK (`sick/SICK.txt`) from
$SIAMESE_DATA_DIR, default `../shared/data` next to the repository root. STS-B lines are split on
tabs with no quoting (the first 7 fields: genre, file, year, id, score, sentence1, sentence2), as
src/data/text.rs reads them; "unique sentences" are in order of first appearance (sentence1 then
sentence2, line by line).

Modes (each prints one JSON line on stdout):

* `embed`: `model.encode(sentences, batch_size=B)` over all sentences (default: the unique
  sentences of the STS-B test split), after one untimed warm-up encode of 4 batches; timed passes
  (`--passes`, default 1) report sentences/s. Note `encode` sorts sentences by length before
  batching (its standard behaviour), which keeps padding small.
* `encode`: one sentence per line of `--input` (a final empty line is ignored; other empty lines
  are empty sentences) -> float32 `.npy` of shape [N, dim] at `--out`. Embeddings are what
  `encode` returns (normalized when the model has a Normalize module, as all-MiniLM-L6-v2 does).
* `stsb` / `sick`: zero-shot Spearman x100 and Pearson x100 of the cosine similarity of the two
  embeddings against the gold scores (sentence-transformers' EmbeddingSimilarityEvaluator;
  `--check-evaluator` also runs that class and reports its figure).
* `finetune-epoch`: the classic SBERT STS-B recipe: CosineSimilarityLoss (MSE between
  cos(u, v) and score / 5), batch `--batch` (16), shuffled, AdamW lr 2e-5, weight decay 0.01
  (not on biases and LayerNorm), linear warm-up over 10% of the steps then linear decay, gradient
  norm clipped at 1, dropout on, exactly one epoch over STS-B train (5,749 pairs, 360 steps at
  batch 16). Reports the epoch's seconds and the dev Spearman after it. `--steps N` times only N
  steps (after 2 untimed warm-up steps) and extrapolates seconds per epoch (`"extrapolated":
  true`); the dev Spearman is then after N + 2 steps, with the schedule of a full epoch.
"""

import argparse
import json
import math
import os
import random
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def data_dir():
    d = os.environ.get("SIAMESE_DATA_DIR") or os.path.join(REPO_ROOT, "..", "shared", "data")
    return os.path.abspath(d)


def read_stsb(split):
    """[(a, b, score 0-5)] of sts-{split}.csv (tab-separated, no quoting, first 7 fields)."""
    path = os.path.join(data_dir(), "sts_benchmark", f"sts-{split}.csv")
    if not os.path.exists(path):
        sys.exit(f"st_embed: no STS-B file {path} (set SIAMESE_DATA_DIR)")
    pairs = []
    with open(path, encoding="utf-8", newline="") as f:
        for n, line in enumerate(f.read().split("\n"), 1):
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 7:
                sys.exit(f"st_embed: {path} line {n}: {len(fields)} fields, need 7")
            pairs.append((fields[5], fields[6], float(fields[4])))
    return pairs


def read_sick(split):
    """[(a, b, relatedness 1-5)] of SICK.txt's SemEval_set == split (TRAIN/TRIAL/TEST)."""
    path = os.path.join(data_dir(), "sick", "SICK.txt")
    if not os.path.exists(path):
        sys.exit(f"st_embed: no SICK file {path} (set SIAMESE_DATA_DIR)")
    with open(path, encoding="utf-8", newline="") as f:
        lines = [l.removesuffix("\r") for l in f.read().split("\n") if l.strip()]
    header = lines[0].split("\t")
    ia, ib = header.index("sentence_A"), header.index("sentence_B")
    isc, isplit = header.index("relatedness_score"), header.index("SemEval_set")
    pairs = []
    for line in lines[1:]:
        f = line.split("\t")
        if f[isplit].strip().upper() == split.upper():
            pairs.append((f[ia], f[ib], float(f[isc])))
    return pairs


def unique_sentences(pairs):
    seen, out = set(), []
    for a, b, _ in pairs:
        for s in (a, b):
            if s not in seen:
                seen.add(s)
                out.append(s)
    return out


def read_lines(path):
    with open(path, encoding="utf-8", newline="") as f:
        lines = [l.removesuffix("\r") for l in f.read().split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def load_model(args):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    from sentence_transformers import SentenceTransformer

    if not os.path.isdir(args.model):
        sys.exit(f"st_embed: --model {args.model} is not a directory")
    model = SentenceTransformer(args.model, device="cpu")
    model.eval()
    return model


def correlation(model, pairs, batch, check_evaluator=False):
    """Spearman x100 and Pearson x100 of cos(u, v) against the gold scores."""
    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    sents = unique_sentences(pairs)
    emb = model.encode(sents, batch_size=batch, convert_to_numpy=True, show_progress_bar=False)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    index = {s: i for i, s in enumerate(sents)}
    a = emb[[index[p[0]] for p in pairs]]
    b = emb[[index[p[1]] for p in pairs]]
    cos = (a * b).sum(1)
    gold = np.array([p[2] for p in pairs])
    out = {
        "pairs": len(pairs),
        "spearman": round(100 * float(spearmanr(cos, gold).statistic), 4),
        "pearson": round(100 * float(pearsonr(cos, gold).statistic), 4),
    }
    if check_evaluator:
        from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator

        ev = EmbeddingSimilarityEvaluator([p[0] for p in pairs], [p[1] for p in pairs],
                                          [p[2] / 5.0 for p in pairs], batch_size=batch,
                                          name="check", show_progress_bar=False)
        res = ev(model)
        out["evaluator"] = {k: round(100 * float(v), 4) for k, v in res.items()
                            if k.endswith(("spearman_cosine", "pearson_cosine"))}
    return out


def mode_embed(args, model):
    if args.sentences in (None, "stsb", "stsb-test"):
        sents, source = unique_sentences(read_stsb("test")), "stsb-test-unique"
    else:
        sents, source = read_lines(args.sentences), args.sentences
    if args.limit:
        sents = sents[: args.limit]
    model.encode(sents[: 4 * args.batch], batch_size=args.batch, show_progress_bar=False)
    times = []
    for _ in range(args.passes):
        t0 = time.perf_counter()
        model.encode(sents, batch_size=args.batch, show_progress_bar=False)
        times.append(time.perf_counter() - t0)
    seconds = sorted(times)[len(times) // 2]
    return {"batch": args.batch, "sentences": len(sents), "source": source,
            "passes": args.passes, "sentences_per_s": round(len(sents) / seconds, 2),
            "seconds": round(seconds, 4)}


def mode_encode(args, model):
    import numpy as np

    if not args.input or not args.out:
        sys.exit("st_embed: --mode encode needs --input FILE and --out FILE.npy")
    sents = read_lines(args.input)
    emb = model.encode(sents, batch_size=args.batch, convert_to_numpy=True,
                       show_progress_bar=False).astype(np.float32)
    np.save(args.out, emb)
    return {"sentences": len(sents), "dim": int(emb.shape[1]), "out": args.out}


def mode_finetune(args, model):
    import torch
    from transformers import get_linear_schedule_with_warmup

    train = read_stsb("train")
    dev = read_stsb("dev")
    order = list(range(len(train)))
    random.Random(args.seed).shuffle(order)
    batches = [order[i:i + args.batch] for i in range(0, len(order), args.batch)]
    steps_per_epoch = len(batches)
    warmup = math.ceil(0.1 * steps_per_epoch)

    no_decay = ("bias", "LayerNorm.bias", "LayerNorm.weight")
    params = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in params if not any(k in n for k in no_decay)],
         "weight_decay": 0.01},
        {"params": [p for n, p in params if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=2e-5)
    sched = get_linear_schedule_with_warmup(opt, warmup, steps_per_epoch)
    mse = torch.nn.MSELoss()

    def step(idx):
        a = model.preprocess([train[i][0] for i in idx])
        b = model.preprocess([train[i][1] for i in idx])
        labels = torch.tensor([train[i][2] / 5.0 for i in idx], dtype=torch.float32)
        u = model(a)["sentence_embedding"]
        v = model(b)["sentence_embedding"]
        loss = mse(torch.cosine_similarity(u, v), labels)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        return float(loss.detach())

    model.train()
    warmup_untimed = 0
    if args.steps:
        warmup_untimed = 2
        for idx in batches[:warmup_untimed]:
            step(idx)
        timed = batches[warmup_untimed:warmup_untimed + args.steps]
    else:
        timed = batches
    losses = []
    t0 = time.perf_counter()
    for idx in timed:
        losses.append(step(idx))
    seconds = time.perf_counter() - t0
    model.eval()
    per_step = seconds / len(timed)
    ev = correlation(model, dev, 32)
    return {"batch": args.batch, "pairs": len(train), "steps_per_epoch": steps_per_epoch,
            "steps_timed": len(timed), "warmup_steps_untimed": warmup_untimed,
            "extrapolated": bool(args.steps),
            "seconds": round(seconds, 3), "seconds_per_step": round(per_step, 4),
            "seconds_per_epoch": round(per_step * steps_per_epoch, 2),
            "pairs_per_s": round(len(timed) * args.batch / seconds, 2),
            "mean_loss": round(sum(losses) / len(losses), 6),
            "dev_spearman_after": ev["spearman"], "dev_pearson_after": ev["pearson"]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", required=True,
                   choices=["embed", "encode", "stsb", "sick", "finetune-epoch"])
    p.add_argument("--model", required=True, help="a sentence-transformers directory")
    p.add_argument("--batch", type=int, default=None,
                   help="encode batch (default 32) / training batch (default 16)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--sentences", default=None, help="embed: 'stsb' (default) or a file")
    p.add_argument("--limit", type=int, default=0, help="embed: first N sentences only")
    p.add_argument("--passes", type=int, default=1, help="embed: timed passes (median)")
    p.add_argument("--input", help="encode: one sentence per line")
    p.add_argument("--out", help="encode: output .npy")
    p.add_argument("--split", default=None,
                   help="stsb: test (default) | dev | train; sick: test (default) | trial | train")
    p.add_argument("--check-evaluator", action="store_true",
                   help="stsb/sick: also run sentence-transformers' EmbeddingSimilarityEvaluator")
    p.add_argument("--steps", type=int, default=0,
                   help="finetune-epoch: time only N steps and extrapolate (0 = full epoch)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.batch is None:
        args.batch = 16 if args.mode == "finetune-epoch" else 32

    t_load = time.perf_counter()
    model = load_model(args)
    load_s = time.perf_counter() - t_load
    head = {"impl": "sentence-transformers", "mode": args.mode, "threads": args.threads,
            "model": os.path.basename(os.path.normpath(args.model))}
    if args.mode == "embed":
        res = mode_embed(args, model)
    elif args.mode == "encode":
        res = mode_encode(args, model)
    elif args.mode == "stsb":
        split = (args.split or "test").lower()
        res = {"split": split, **correlation(model, read_stsb(split), args.batch,
                                             args.check_evaluator)}
    elif args.mode == "sick":
        split = (args.split or "test").upper()
        res = {"split": split, **correlation(model, read_sick(split), args.batch,
                                             args.check_evaluator)}
    else:
        res = mode_finetune(args, model)
    import sentence_transformers
    import torch

    res.update({"load_seconds": round(load_s, 3), "torch": torch.__version__,
                "sentence_transformers": sentence_transformers.__version__})
    print(json.dumps({**head, **res}))


if __name__ == "__main__":
    main()
