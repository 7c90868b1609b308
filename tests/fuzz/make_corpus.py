#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/: a few valid tiny
files in each format and the edge cases the parsers must refuse. The output is committed; run
this again only to change the seeds. Standard library only."""
import gzip
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def idx(dims, values=None, type_byte=0x08):
    n = 1
    for d in dims:
        n *= d
    if values is None:
        values = bytes(i % 256 for i in range(n))
    return bytes([0, 0, type_byte, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + values


def gz(data):
    return gzip.compress(data, mtime=0)


def idx_corpus():
    t = "fuzz_idx"
    put(t, "labels_5", idx([5], bytes([0, 9, 3, 1, 7])))
    put(t, "images_2x3x4", idx([2, 3, 4]))
    put(t, "rank4_1x2x2x2", idx([1, 2, 2, 2]))
    put(t, "labels_5.gz", gz(idx([5], bytes([0, 9, 3, 1, 7]))))
    put(t, "images_2x3x4.gz", gz(idx([2, 3, 4])))
    whole = idx([2, 2, 2])
    put(t, "two_members.gz", gz(whole[:7]) + gz(whole[7:]))  # as `cat a.gz b.gz` makes
    put(t, "stored_block.gz", gzip.compress(idx([3, 2]), compresslevel=0, mtime=0))
    put(t, "truncated", idx([2, 3, 4])[:-3])
    put(t, "trailing", idx([4]) + b"\x00")
    put(t, "trailing.gz", gz(idx([4]) + b"\x00"))
    put(t, "truncated.gz", gz(idx([2, 3, 4]))[:-9])
    put(t, "float_type", idx([2], b"\x00" * 8, type_byte=0x0D))
    put(t, "zero_dim", idx([0, 28, 28], b""))
    put(t, "rank5", bytes([0, 0, 8, 5]) + struct.pack(">5I", 1, 1, 1, 1, 1) + b"\x00")
    put(t, "claims_2pow31_images", idx([1 << 31, 28, 28], b""))
    put(t, "claims_2pow31_images.gz", gz(idx([1 << 31, 28, 28], b"")))
    put(t, "claims_2GiB_sends_little.gz", gz(idx([(1 << 31) // 784, 28, 28], b"")[:16] + b"\x01" * 64))
    put(t, "short", b"\x00\x00\x08")
    put(t, "gzip_magic_only", b"\x1f\x8b")


def safetensors(header, data=b"", pad=True):
    text = json.dumps(header, separators=(",", ":"))
    if pad:
        text += " " * ((8 - len(text) % 8) % 8)
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw + data


def safetensors_corpus():
    t = "fuzz_safetensors"
    f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    put(t, "f32_2x3", safetensors({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, f32))
    put(t, "f64_scalar_and_metadata", safetensors({
        "__metadata__": {"step": "12", "model": "vae"},
        "s": {"dtype": "F64", "shape": [], "data_offsets": [0, 8]}}, struct.pack("<d", 0.5)))
    put(t, "empty_tensor", safetensors({
        "a": {"dtype": "F32", "shape": [0, 4], "data_offsets": [0, 0]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, struct.pack("<f", 7)))
    put(t, "two_tensors_rank4", safetensors({
        "x": {"dtype": "F32", "shape": [1, 1, 1, 2], "data_offsets": [8, 16]},
        "y": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}, bytes(16)))
    put(t, "empty_object", safetensors({}))
    put(t, "overlap", safetensors({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)))
    put(t, "gap", safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)))
    put(t, "claims_2pow40_bytes", safetensors(
        {"a": {"dtype": "F32", "shape": [1 << 38], "data_offsets": [0, 1 << 40]}}, bytes(8)))
    put(t, "bf16", safetensors({"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, bytes(4)))
    put(t, "metadata_not_string", safetensors({"__metadata__": {"k": 1}}))
    put(t, "unicode_escapes", safetensors(
        {"\u00e9\\\"": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4), pad=False))
    put(t, "deep_nesting", struct.pack("<Q", 64) + b"[" * 64)
    put(t, "header_2GiB", struct.pack("<Q", 1 << 31) + b"{}")
    put(t, "header_past_end", struct.pack("<Q", 100) + b"{}      ")
    put(t, "short", b"\x08\x00\x00")


def model_file_corpus():
    t = "fuzz_model_file"
    for name in ("model.ae", "model.dae", "model.sae", "model.vae"):
        shutil.copyfile(os.path.join(ROOT, "models", name), os.path.join(CORPUS, t, name))
    put(t, "config.ini", "builder = vae\n\n[model]\nhidden = 8,4\nlatent = 2\n\n[train]\n"
        "epochs = 1\nbatch = 4\nlr = 0.01\noptimizer = sgd\nmomentum = 0.5\nseed = 7\n"
        "threads = 2\ncheck_numerics = true\n\n[data]\ndataset = mnist\nlimit = 10\n")
    put(t, "tiny.sae", "[model]\nhidden = 3\ncode = 2\nsparsity = l1\nsparsity_weight = auto\n")
    put(t, "tiny.dae", "[model]\nnoise = gaussian\nnoise_level = 0.1\nhidden=5,5\ncode=1\n")
    put(t, "repeated_key", "[train]\nepochs = 1\nepochs = 2\n")
    put(t, "unknown_key", "[train]\nepoch = 1\n[model]\nlatent = 3\n")
    put(t, "bad_values", "[train]\nlr = -1\nbatch = 0\nthreads = 99999\n")
    put(t, "no_equals", "[model]\nhidden 400\n")
    put(t, "crlf_and_comments", "# c\r\n[data]\r\nlimit = 5 # five\r\n\r\n[ train ]\r\nseed=3\r\n")
    put(t, "empty", "")


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    os.makedirs(os.path.join(CORPUS, "fuzz_model_file"))
    idx_corpus()
    safetensors_corpus()
    model_file_corpus()
    return 0


if __name__ == "__main__":
    sys.exit(main())
