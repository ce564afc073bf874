#!/usr/bin/env python3
"""The training corpus: the Go distribution's own source, split by file.

Every file under GOROOT/{src,test,misc} ending in .go is either "train" or
"heldout". The split is a deterministic function of the file's path (a hash),
so this machine, the GPU machine and later runs all agree on it. Only files
that cannot be near-duplicates of training files are allowed into the
held-out set, so that evaluation measures generalisation rather than recall:

  - no per-platform or per-variant siblings (foo_linux.go / foo_windows.go,
    map_fast32.go / map_fast64.go: any two files of one directory whose names
    share the stem before the first '_'),
  - no build-constrained files (//go:build), no generated files
    ("// Code generated ... DO NOT EDIT."), no testdata/ or vendor/ trees,
  - no file whose content occurs twice in the distribution, and none most of
    whose lines (NEAR_DUP_SHARE) occur verbatim in training files (go/types
    mirrors types2, copied helpers).

Very large data-like files (> MAX_BYTES) and large generated files are left
out of training too: they are tables, not code, and would waste capacity.

Commands:
  corpus.py list --goroot DIR --split train|heldout      paths, one a line
  corpus.py pack --goroot DIR --out FILE.tar.xz           archive for the GPU trip
  corpus.py stats --goroot DIR
"""

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time

ROOTS = ("src", "test", "misc")
HELDOUT_PER_MILLE = 60  # share of eligible files held out
MAX_BYTES = 400_000  # larger files are data tables: not trained on
MAX_GENERATED_BYTES = 100_000  # large generated files (rewrite rules, tables) neither
NEAR_DUP_SHARE = 0.5  # held-out candidates with more of their lines in training are near-duplicates

GOOS = set(
    "aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd "
    "openbsd plan9 solaris wasip1 wasip2 windows zos unix".split()
)
GOARCH = set(
    "386 amd64 amd64p32 arm armbe arm64 arm64be loong64 mips mipsle mips64 "
    "mips64le mips64p32 mips64p32le ppc ppc64 ppc64le riscv riscv64 s390 s390x "
    "sparc sparc64 wasm".split()
)
GENERATED_RE = re.compile(rb"^// Code generated .* DO NOT EDIT\.$", re.M)
BUILD_RE = re.compile(rb"^//go:build ", re.M)


def goroot_default():
    try:
        return subprocess.check_output(["go", "env", "GOROOT"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "/usr/local/go"


def walk(goroot):
    """All .go files under the corpus roots, as sorted '/'-separated relative paths."""
    out = []
    for root in ROOTS:
        base = os.path.join(goroot, root)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in filenames:
                if name.endswith(".go"):
                    full = os.path.join(dirpath, name)
                    out.append(os.path.relpath(full, goroot).replace(os.sep, "/"))
    out.sort()
    return out


def is_generated(data):
    return GENERATED_RE.search(data[:4096]) is not None


def path_hash(rel):
    return int.from_bytes(hashlib.sha1(rel.encode()).digest()[:4], "big") % 1000


def platform_suffixed(name):
    stem = name[: -len(".go")]
    if stem.endswith("_test"):
        stem = stem[: -len("_test")]
    parts = stem.split("_")
    return any(p in GOOS or p in GOARCH for p in parts[1:])


def stem_group(rel):
    d, name = rel.rsplit("/", 1)
    stem = name[: -len(".go")]
    test = stem.endswith("_test")
    if test:
        stem = stem[: -len("_test")]
    return (d, stem.split("_")[0], test)


def classify(goroot):
    """Returns (train, heldout, skipped): lists of relative paths."""
    paths = walk(goroot)
    groups = {}
    for rel in paths:
        groups.setdefault(stem_group(rel), []).append(rel)
    contents = {}
    datas = {}
    for rel in paths:
        with open(os.path.join(goroot, rel), "rb") as f:
            data = f.read()
        datas[rel] = data
        h = hashlib.sha1(data).digest()
        contents[h] = contents.get(h, 0) + 1
    train, heldout, skipped = [], [], []
    for rel in paths:
        data = datas[rel]
        gen = is_generated(data)
        if len(data) > MAX_BYTES or (gen and len(data) > MAX_GENERATED_BYTES):
            skipped.append(rel)
            continue
        parts = rel.split("/")
        eligible = (
            path_hash(rel) < HELDOUT_PER_MILLE
            and "testdata" not in parts
            and "vendor" not in parts
            and not parts[-1].startswith("zz")
            and not gen
            and BUILD_RE.search(data) is None
            and not platform_suffixed(parts[-1])
            and len(groups[stem_group(rel)]) == 1
            and contents[hashlib.sha1(data).digest()] == 1
            and len(data) >= 300
        )
        (heldout if eligible else train).append(rel)
    # Near-duplicates across directories (go/types mirrors types2, copied
    # helpers): a candidate most of whose lines occur verbatim in training
    # files goes to training.
    seen = set()
    for rel in train:
        seen.update(code_lines(datas[rel]))
    kept = []
    for rel in heldout:
        lines = code_lines(datas[rel])
        if lines and sum(l in seen for l in lines) / len(lines) > NEAR_DUP_SHARE:
            train.append(rel)
        else:
            kept.append(rel)
    train.sort()
    return train, kept, skipped


def code_lines(data):
    """Distinct stripped lines long enough to identify a file's content."""
    return {l for l in (x.strip() for x in data.split(b"\n")) if len(l) >= 12}


def pack(goroot, out):
    t0 = time.time()
    train, heldout, skipped = classify(goroot)
    manifest = {"goroot_version": read_version(goroot), "train": train, "heldout": heldout}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp.tar"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        def add_bytes(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))

        add_bytes("corpus/manifest.json", json.dumps(manifest, indent=0).encode())
        with open(os.path.join(goroot, "LICENSE"), "rb") as f:
            add_bytes("corpus/LICENSE", f.read())
        for rel in train + heldout:
            with open(os.path.join(goroot, rel), "rb") as f:
                add_bytes("corpus/files/" + rel, f.read())
    # xz with threads when the tool exists; else Python's lzma.
    try:
        subprocess.check_call(["xz", "-T0", "-6", "-f", tmp])
        os.replace(tmp + ".xz", out)
    except (OSError, subprocess.CalledProcessError):
        import lzma

        with open(tmp, "rb") as src, lzma.open(out, "wb", preset=6) as dst:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                dst.write(chunk)
        os.remove(tmp)
    size = os.path.getsize(out)
    print(
        f"packed {len(train)} train + {len(heldout)} heldout files "
        f"({len(skipped)} skipped) into {out}: {size / 1e6:.1f} MB in {time.time() - t0:.0f}s"
    )
    if size >= 40e6:
        sys.exit(f"corpus archive is {size / 1e6:.1f} MB, over the 40 MB limit")


def read_version(goroot):
    try:
        with open(os.path.join(goroot, "VERSION")) as f:
            return f.readline().strip()
    except OSError:
        return "unknown"


def load_unpacked(corpus_dir):
    """Reads an unpacked archive: (manifest, read(rel) -> str)."""
    with open(os.path.join(corpus_dir, "manifest.json")) as f:
        manifest = json.load(f)

    def read(rel):
        with open(os.path.join(corpus_dir, "files", rel), "rb") as f:
            return f.read().decode("utf-8", errors="replace")

    return manifest, read


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("list")
    p.add_argument("--goroot", default=None)
    p.add_argument("--split", choices=("train", "heldout", "skipped"), required=True)
    p.add_argument("--absolute", action="store_true")
    p = sub.add_parser("pack")
    p.add_argument("--goroot", default=None)
    p.add_argument("--out", required=True)
    p = sub.add_parser("stats")
    p.add_argument("--goroot", default=None)
    args = ap.parse_args()
    goroot = args.goroot or goroot_default()
    if args.cmd == "list":
        train, heldout, skipped = classify(goroot)
        sel = {"train": train, "heldout": heldout, "skipped": skipped}[args.split]
        for rel in sel:
            print(os.path.join(goroot, rel) if args.absolute else rel)
    elif args.cmd == "pack":
        pack(goroot, args.out)
    else:
        train, heldout, skipped = classify(goroot)
        for name, sel in (("train", train), ("heldout", heldout), ("skipped", skipped)):
            size = sum(os.path.getsize(os.path.join(goroot, r)) for r in sel)
            print(f"{name}: {len(sel)} files, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
