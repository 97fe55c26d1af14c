#!/usr/bin/env python3
"""Generate tests/fixtures/tiny_bert/: a tiny random-weight BERT sentence-transformers model
and reference outputs for the Rust port (tokenizer, encoder layers, pooling, normalize).

    python3.11 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install -r bench/peers/requirements-text.txt
    OMP_NUM_THREADS=2 /tmp/st-venv/bin/python tools/make_bert_fixture.py [--out tests/fixtures/tiny_bert]

Deterministic: fixed seeds, fixed vocabulary, float32, eval mode (no dropout). The weights are
random (normal, std 0.2), NOT a trained model. The directory is written by
`SentenceTransformer.save()` (Transformer -> Pooling(mean) -> Normalize), so file names, tensor
names and configs are exactly what sentence-transformers / transformers write; a few classic files
that recent versions no longer write (vocab.txt, special_tokens_map.json, `max_seq_length` in
sentence_bert_config.json) are added in the classic format so both old- and new-style loaders
find what they expect. The script reloads the directory with `SentenceTransformer(dir)` and checks
that it reproduces the same embeddings.

reference.json holds, per sentence: the tokenization (single-sentence batch, no padding), the
embeddings-module output, each layer's attention-block output (after residual + LayerNorm) and
full output, the last layer's token embeddings, the mean-pooled vector before Normalize and the
`encode()` output (normalized, since Normalize is a module); plus one padded batch of all
sentences (ids, mask, token types, embeddings), checked equal to the single ones to 1e-6.

Python is only a tool here: the siamese crate never depends on it.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

HIDDEN = 32
LAYERS = 2
HEADS = 4
INTERMEDIATE = 64
MAX_POSITIONS = 64
MAX_SEQ_LENGTH = 16
SEED = 20240607
WEIGHT_STD = 0.2

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCTUATION = list(".,!?'\"()-;:/&$%*+=@#[]")
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
WORDS = """
the a an is are was were be been being of and or but not no in on at to for with from by over
under near while into out up down off about after before than then there here this that these
those it its he she they we you i me him her them my your our their his who what which when where
why how all some any each every many much more most few one two three first last new old good
bad big small long short high low young great little own other same right left man men woman
women child children boy girl people person dog dogs cat cats fox horse bird fish animal car bus
train plane road street city house home room door window table chair bed food water fire tree
trees grass field beach sea river sky sun day night time year week world hello fine ok yes
quick brown lazy warm cold hot red blue green white black yellow jump jumps play plays playing
played guitar piano music song dance dancing run running walk walking ride riding eat eating
sleep sleeps sleeping sit sitting stand standing look looking talk said says make made take go
going goes went come came see saw know think want like give use find tell ask work call try
feel leave put mean keep let begin seem help show hear turn start move live believe hold bring
happen write provide text token tokens word words sentence quoted cut cutting slice onion
""".split()
SUBWORDS = """
##s ##es ##ed ##ing ##ly ##er ##ers ##est ##fe ##ive ##able ##ble ##ness ##tion ##ment ##ful
##less ##al ##ic ##ous ##ize ##ise ##ist ##ism ##ity ##ry ##y ##en ##an ##on ##in ##un ##re
##bel ##ie ##va ##ta ##te ##ti ##to ##ra ##ro ##la ##li ##lo ##ma ##me ##mi ##mo ##na ##ne ##ni
##no ##ca ##co ##de ##di ##do
""".split()
PREFIXES = "un re in dis ca na pre pro con com ex sub".split()

SENTENCES = [
    "",
    "Café naïve ☃",
    "The quick brown fox jumps over the lazy dog while the small cat sleeps near the warm fire "
    "in the old house.",
    "Hello, world! How's it going? (Fine...) - ok; yes: \"quoted\"",
    "ThE QuIcK BROWN fox Jumped",
    "A man is playing a guitar.",
    "A man is playing the piano.",
    "unbelievable 42 tokens\tin 中文 text",
]
# Hidden states (embeddings, attention outputs, layer outputs) are recorded for these (all of
# them: reference.json stays under 300 KB); token embeddings and pooled vectors for all.
HIDDEN_STATE_SENTENCES = list(range(len(SENTENCES)))


def build_vocab():
    vocab = []
    for tok in SPECIALS + PUNCTUATION + LETTERS + ["##" + c for c in LETTERS] + PREFIXES + WORDS \
            + SUBWORDS:
        if tok not in vocab:
            vocab.append(tok)
    return vocab


def build_tokenizer(vocab):
    """A BERT WordPiece tokenizer built with the `tokenizers` library."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    ids = {t: i for i, t in enumerate(vocab)}
    tok = Tokenizer(WordPiece(ids, unk_token="[UNK]", continuing_subword_prefix="##",
                              max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    return tok


def init_weights(model):
    """Every parameter random (weights N(0, 0.2²); biases and LayerNorm offsets non-zero), so a
    transposed, swapped or unloaded tensor shows in the outputs."""
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.1 * noise)
            elif "LayerNorm.bias" in name or name.endswith(".bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(WEIGHT_STD * noise)


def numpy_forward(folder, input_ids, token_type_ids):
    """The whole pipeline in plain numpy from model.safetensors (one sentence, no padding):
    the math a port must reproduce. Returns (embeddings, [attention outputs], [layer outputs],
    normalized sentence embedding)."""
    from math import erf, sqrt

    from safetensors.numpy import load_file

    w = load_file(os.path.join(folder, "model.safetensors"))
    erf_v = np.vectorize(erf)

    def ln(x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w[name + ".weight"] + w[name + ".bias"]

    def dense(x, name):  # torch Linear: y = x W^T + b, W is [out, in]
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    ids = np.asarray(input_ids)
    n = len(ids)
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][np.arange(n)]
         + w["embeddings.token_type_embeddings.weight"][np.asarray(token_type_ids)])
    x = ln(x.astype(np.float64), "embeddings.LayerNorm")
    emb, attn_outs, layer_outs = x, [], []
    d = HIDDEN // HEADS
    for i in range(LAYERS):
        pre = f"encoder.layer.{i}."
        q, k, v = (dense(x, pre + "attention.self." + t).reshape(n, HEADS, d).transpose(1, 0, 2)
                   for t in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(n, HIDDEN)
        a = ln(dense(ctx, pre + "attention.output.dense") + x, pre + "attention.output.LayerNorm")
        h = dense(a, pre + "intermediate.dense")
        h = 0.5 * h * (1.0 + erf_v(h / sqrt(2.0)))  # "gelu" = exact erf GELU
        x = ln(dense(h, pre + "output.dense") + a, pre + "output.LayerNorm")
        attn_outs.append(a)
        layer_outs.append(x)
    pooled = x.mean(0)
    return emb, attn_outs, layer_outs, pooled / np.linalg.norm(pooled)


def f32(x):
    """Nested lists of floats, each the shortest decimal that round-trips to the same f32."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 0:
        # str(np.float32) is the shortest decimal that parses back to the same f32.
        return float(str(np.float32(a)))
    return [f32(v) for v in a]


def dump_json(obj, path):
    """JSON with one row of numbers per line (readable, diff-friendly, small)."""
    def enc(o, indent):
        pad = "  " * indent
        if isinstance(o, dict):
            items = [f'{pad}  {json.dumps(k)}: {enc(v, indent + 1).lstrip()}' for k, v in o.items()]
            return pad + "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list) and o and all(isinstance(v, list) for v in o):
            return pad + "[\n" + ",\n".join(enc(v, indent + 1) for v in o) + "\n" + pad + "]"
        if isinstance(o, list) and all(isinstance(v, dict) for v in o) and o:
            return pad + "[\n" + ",\n".join(enc(v, indent + 1) for v in o) + "\n" + pad + "]"
        return pad + json.dumps(o, ensure_ascii=False, separators=(",", ":"))
    with open(path, "w", encoding="utf-8") as f:
        f.write(enc(obj, 0) + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(os.path.dirname(here), "tests", "fixtures", "tiny_bert")
    p = argparse.ArgumentParser(description="make tests/fixtures/tiny_bert")
    p.add_argument("--out", default=default_out)
    args = p.parse_args()

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(SEED)
    np.random.seed(SEED)

    import sentence_transformers
    import tokenizers
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    vocab = build_vocab()
    out = os.path.abspath(args.out)
    staging = tempfile.mkdtemp(prefix="tiny_bert_hf-")
    try:
        # 1. An HF BertModel + BertTokenizer directory (what the Transformer module loads).
        config = BertConfig(
            vocab_size=len(vocab), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
            num_attention_heads=HEADS, intermediate_size=INTERMEDIATE, hidden_act="gelu",
            hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
            max_position_embeddings=MAX_POSITIONS, type_vocab_size=2, initializer_range=WEIGHT_STD,
            layer_norm_eps=1e-12, pad_token_id=0, position_embedding_type="absolute",
            architectures=["BertModel"],
        )
        model = BertModel(config, add_pooling_layer=True).to(torch.float32).eval()
        init_weights(model)
        model.save_pretrained(staging)

        tok = build_tokenizer(vocab)
        tok.save(os.path.join(staging, "tokenizer.json"))
        with open(os.path.join(staging, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(vocab) + "\n")
        with open(os.path.join(staging, "tokenizer_config.json"), "w") as f:
            json.dump({
                "tokenizer_class": "BertTokenizer", "do_lower_case": True,
                "tokenize_chinese_chars": True, "strip_accents": None,
                "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                "cls_token": "[CLS]", "mask_token": "[MASK]",
                "model_max_length": MAX_SEQ_LENGTH,
            }, f, indent=2)

        # 2. The sentence-transformers pipeline, saved by sentence-transformers itself.
        transformer = Transformer(staging, max_seq_length=MAX_SEQ_LENGTH)
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
        st = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu").eval()
        if os.path.exists(out):  # start clean, but keep the hand-written README.md
            for name in os.listdir(out):
                path = os.path.join(out, name)
                if name != "README.md":
                    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        st.save(out, create_model_card=False)
    finally:
        shutil.rmtree(staging)

    # 3. Classic files that recent versions no longer write (old-style loaders look for them).
    written_by_st = sorted(n for n in os.listdir(out) if n != "README.md")
    sbc_path = os.path.join(out, "sentence_bert_config.json")
    with open(sbc_path) as f:
        sbc = json.load(f)
    sbc = {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False, **sbc}
    with open(sbc_path, "w") as f:
        json.dump(sbc, f, indent=2)
    vocab_path = os.path.join(out, "vocab.txt")
    if not os.path.exists(vocab_path):
        with open(vocab_path, "w", encoding="utf-8") as f:
            f.write("\n".join(vocab) + "\n")
    stm_path = os.path.join(out, "special_tokens_map.json")
    if not os.path.exists(stm_path):
        with open(stm_path, "w") as f:
            json.dump({"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                       "cls_token": "[CLS]", "mask_token": "[MASK]"}, f, indent=2)

    # 4. Reload exactly as a user would, and take every reference from the reloaded model.
    m = SentenceTransformer(out, device="cpu").eval()
    assert m.max_seq_length == MAX_SEQ_LENGTH, m.max_seq_length
    bert = m[0].auto_model
    # The tokenizer must be the one built above (same JSON pipeline).
    want = json.loads(build_tokenizer(vocab).to_str())
    got = json.loads(m.tokenizer.backend_tokenizer.to_str())
    for key in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        assert got[key] == want[key], (key, got[key], want[key])
    assert got["model"]["vocab"] == want["model"]["vocab"]

    captured = {}

    def hook(name):
        def fn(_module, _inputs, output):
            captured[name] = output[0] if isinstance(output, tuple) else output
        return fn

    handles = [bert.embeddings.register_forward_hook(hook("embeddings"))]
    for i, layer in enumerate(bert.encoder.layer):
        handles.append(layer.attention.output.register_forward_hook(hook(f"attention.{i}")))

    def ids_of(feats, key):
        return feats[key].tolist()

    records = []
    single_final = []
    with torch.no_grad():
        for idx, s in enumerate(SENTENCES):
            feats = m.preprocess([s])
            captured.clear()
            bout = bert(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"],
                        token_type_ids=feats["token_type_ids"], output_hidden_states=True)
            hs = bout.hidden_states
            assert len(hs) == LAYERS + 1
            assert torch.equal(captured["embeddings"], hs[0])
            tok_emb = bout.last_hidden_state[0]
            # The pipeline's own modules: Transformer -> Pooling (before Normalize).
            f2 = m[1](m[0](dict(feats)))
            pooled = f2["sentence_embedding"][0]
            mask = feats["attention_mask"][0].to(torch.float32).unsqueeze(-1)
            manual = (tok_emb * mask).sum(0) / mask.sum().clamp(min=1e-9)
            assert torch.allclose(pooled, manual, atol=1e-6), (pooled - manual).abs().max()
            enc = m.encode([s], convert_to_numpy=True, normalize_embeddings=False)[0]
            assert np.allclose(enc, (pooled / pooled.norm()).numpy(), atol=1e-6)
            single_final.append(enc)
            rec = {
                "text": s,
                "tokens": m.tokenizer.convert_ids_to_tokens(feats["input_ids"][0].tolist()),
                "input_ids": ids_of(feats, "input_ids")[0],
                "attention_mask": ids_of(feats, "attention_mask")[0],
                "token_type_ids": ids_of(feats, "token_type_ids")[0],
            }
            if idx in HIDDEN_STATE_SENTENCES:
                rec["embeddings_output"] = f32(hs[0][0])
                rec["attention_outputs"] = [f32(captured[f"attention.{i}"][0])
                                            for i in range(LAYERS)]
                rec["layer_outputs"] = [f32(hs[i + 1][0]) for i in range(LAYERS)]
            rec["token_embeddings"] = f32(tok_emb)
            rec["pooled_mean"] = f32(pooled)
            rec["embedding"] = f32(enc)
            records.append(rec)

        batch = m.preprocess(SENTENCES)
        batch_emb = m.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True)
    for h in handles:
        h.remove()

    # The padded batch must tokenize as the singles (plus [PAD]) and embed the same.
    for i, rec in enumerate(records):
        n = len(rec["input_ids"])
        row = batch["input_ids"][i].tolist()
        assert row[:n] == rec["input_ids"] and all(t == 0 for t in row[n:]), (i, row)
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (len(row) - n)
    diff = float(np.abs(batch_emb - np.stack(single_final)).max())
    assert diff < 1e-6, f"padded batch differs from single sentences by {diff}"
    truncated = [i for i, r in enumerate(records) if len(r["input_ids"]) == MAX_SEQ_LENGTH]
    assert truncated, "no sentence reached max_seq_length"

    # The reloaded directory reproduces the model it was saved from.
    assert np.allclose(st.encode(SENTENCES, convert_to_numpy=True), batch_emb, atol=1e-6)

    # An independent numpy forward pass (float64) agrees with every recorded stage.
    worst = 0.0
    for rec in records:
        emb, attn, layers, final = numpy_forward(out, rec["input_ids"], rec["token_type_ids"])
        pairs = [(emb, rec["embeddings_output"]), (final, rec["embedding"])]
        pairs += list(zip(attn, rec["attention_outputs"])) + list(zip(layers, rec["layer_outputs"]))
        for ours, theirs in pairs:
            worst = max(worst, float(np.abs(ours - np.asarray(theirs, dtype=np.float64)).max()))
    assert worst < 1e-4, f"numpy forward differs from torch by {worst}"

    reference = {
        "about": "tiny random-weight BERT (not a trained model); see README.md",
        "generator": "tools/make_bert_fixture.py",
        "versions": {
            "torch": torch.__version__, "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "tokenizers": tokenizers.__version__, "numpy": np.__version__,
        },
        "config": {
            "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
            "intermediate_size": INTERMEDIATE, "max_position_embeddings": MAX_POSITIONS,
            "vocab_size": len(vocab), "max_seq_length": MAX_SEQ_LENGTH, "pooling": "mean",
            "normalize": True, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
        },
        "notes": [
            "Single-sentence entries are a batch of one (no padding), truncated at max_seq_length.",
            "embeddings_output = word + position + token_type embeddings, then LayerNorm.",
            "attention_outputs[i] = encoder.layer.i.attention.output (after residual + LayerNorm).",
            "layer_outputs[i] = hidden state after layer i (layer_outputs[-1] = token_embeddings).",
            "embeddings_output / attention_outputs / layer_outputs are recorded for sentences "
            + ", ".join(str(i) for i in HIDDEN_STATE_SENTENCES) + ".",
            "pooled_mean = masked mean of token_embeddings (before Normalize).",
            "embedding = model.encode(text) = pooled_mean / ||pooled_mean||.",
            "padded_batch: all sentences in one batch, right-padded with [PAD]=0; its embeddings "
            "equal the single ones to < 1e-6 (checked).",
        ],
        "sentences": records,
        "padded_batch": {
            "input_ids": batch["input_ids"].tolist(),
            "attention_mask": batch["attention_mask"].tolist(),
            "token_type_ids": batch["token_type_ids"].tolist(),
            "embeddings": f32(batch_emb),
            "max_abs_diff_vs_single": diff,
        },
    }
    dump_json(reference, os.path.join(out, "reference.json"))

    files = []
    for root, _d, fs in os.walk(out):
        for f in fs:
            path = os.path.join(root, f)
            files.append((os.path.relpath(path, out), os.path.getsize(path)))
    print(f"written by SentenceTransformer.save(): {written_by_st}")
    for rel, size in sorted(files):
        print(f"  {rel}  {size:,} bytes")
    print(f"vocab {len(vocab)} tokens; truncated sentences {truncated}; "
          f"padded-vs-single max diff {diff:.3g}; numpy-vs-torch max diff {worst:.3g}")


if __name__ == "__main__":
    sys.exit(main())
