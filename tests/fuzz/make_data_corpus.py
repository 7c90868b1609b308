#!/usr/bin/python3
"""Writes the seed corpora of fuzz_npy, fuzz_cifar and fuzz_image_folder into tests/fuzz/corpus/<target>/, and the
.npz fixtures of tests/train/npy_test.cpp into tests/data/npy/: valid tiny files of every dtype
and layout the readers take, and the edge cases they must refuse. The output is committed; run
this again only to change the seeds. Needs numpy: run it with /usr/bin/python3 (Debian's
python3-numpy, and python3-pil for the images), not a python3 on PATH without them.
`make_data_corpus.py images` writes only the images."""
import io
import os
import struct
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
FIXTURES = os.path.join(ROOT, "tests", "data", "npy")


def put(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def npy(array, version=None):
    out = io.BytesIO()
    np.lib.format.write_array(out, np.asanyarray(array), version=version, allow_pickle=False)
    return out.getvalue()


def npy_raw(header, data=b"", version=1):
    """An .npy with a header text written as given, to make headers numpy would not write."""
    text = header.encode("latin1")
    text += b" " * ((64 - (len(text) + 11) % 64) % 64) + b"\n"
    if version == 1:
        pre = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text))
    else:
        pre = b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(text))
    return pre + text + data


def npz(arrays, compression):
    """What np.savez / np.savez_compressed write, but with a fixed timestamp so reruns match."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as z:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            with z.open(info, "w", force_zip64=True) as f:
                f.write(npy(array))
    return out.getvalue()


def npy_corpus():
    folder = os.path.join(CORPUS, "fuzz_npy")
    p = lambda name, data: put(folder, name, data)
    grid = np.arange(6).reshape(2, 3)
    p("u1_2x3.npy", npy(grid.astype(np.uint8)))
    p("f4_3x2.npy", npy(np.array([[0.5, -1.0], [2.0, 3.25], [1e-3, 7.0]], dtype="<f4")))
    p("f8_rank1.npy", npy(np.array([1.5, -2.0, 0.0, 1e30], dtype="<f8")))
    p("f4_rank4.npy", npy(np.linspace(0, 1, 8, dtype=np.float32).reshape(1, 2, 2, 2)))
    p("f4_big_endian.npy", npy(np.array([[1.0, 2.0]], dtype=">f4")))
    p("f8_big_endian.npy", npy(np.array([[1.0], [-3.5]], dtype=">f8")))
    p("f4_version2.npy", npy(grid.astype(np.float32), version=(2, 0)))
    p("u1_version3.npy", npy(grid.astype(np.uint8), version=(3, 0)))
    for dtype in ["<i8", "<i4", "<u2", "|i1", "|u1", ">i2", "<u8"]:
        p("labels_" + dtype[1:] + ".npy", npy(np.array([3, 0, 9, 1], dtype=dtype)))
    p("labels_b1.npy", npy(np.array([True, False, True])))
    p("labels_f8_whole.npy", npy(np.array([2.0, 0.0, 5.0])))
    p("labels_column.npy", npy(np.array([[1], [0], [2]], dtype="<i8")))
    p("labels_negative.npy", npy(np.array([1, -1, 2], dtype="<i8")))
    p("fortran_order.npy", npy(np.asfortranarray(grid.astype(np.float32))))
    p("truncated.npy", npy(grid.astype(np.float32))[:-3])
    p("trailing.npy", npy(grid.astype(np.float32)) + b"\x00")
    p("claims_2pow40.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", b"\x00" * 16))
    p("claims_overflow.npy", npy_raw("{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }"))
    p("unknown_key.npy", npy_raw("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), 'extra': 1, }", b"\x01\x02"))
    p("duplicate_key.npy", npy_raw("{'descr': '|u1', 'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", b"\x01\x02"))
    p("double_quotes.npy", npy_raw('{"descr": "|u1", "fortran_order": False, "shape": (2, 1)}', b"\x01\x02"))
    p("python2_long.npy", npy_raw("{'descr': '|u1', 'fortran_order': False, 'shape': (2L, 1L), }", b"\x01\x02"))
    p("not_a_tuple.npy", npy_raw("{'descr': '|u1', 'fortran_order': False, 'shape': (2), }", b"\x01\x02"))
    p("zero_dim.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }"))
    p("scalar.npy", npy(np.float32(1.0)))
    p("object.npy", npy_raw("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\x00" * 8))
    p("structured.npy", npy(np.zeros(2, dtype=[("x", "<f4"), ("y", "<i4")])))
    p("nan.npy", npy(np.array([[1.0, np.nan]], dtype=np.float32)))
    p("f8_too_big.npy", npy(np.array([[1.0, 1e300]])))
    p("v2_bad_length.npy", b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}")
    p("short.npy", b"\x93NUMPY\x01")
    xs = np.arange(12, dtype=np.float32).reshape(3, 4)
    ys = np.array([2, 0, 1], dtype=np.int64)
    p("stored.npz", npz({"x": xs, "y": ys}, zipfile.ZIP_STORED))
    p("deflated.npz", npz({"x": xs, "y": ys, "pixels": grid.astype(np.uint8)}, zipfile.ZIP_DEFLATED))


def npy_fixtures():
    xs = np.arange(12, dtype=np.float32).reshape(3, 4) / 4
    ys = np.array([2, 0, 1], dtype=np.int64)
    pixels = np.arange(24, dtype=np.uint8).reshape(3, 2, 2, 2)
    for name, save in [("savez.npz", np.savez), ("savez_compressed.npz", np.savez_compressed)]:
        out = io.BytesIO()
        save(out, x=xs, y=ys, pixels=pixels)
        put(FIXTURES, name, out.getvalue())
    # np.load reads any zip; graphrun reads only its .npy members.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(zipfile.ZipInfo("notes.txt", date_time=(1980, 1, 1, 0, 0, 0)), "not an array")
        z.writestr(zipfile.ZipInfo("x.npy", date_time=(1980, 1, 1, 0, 0, 0)), npy(xs))
    put(FIXTURES, "text_member.npz", out.getvalue())


def cifar_record(label, seed):
    return bytes([label]) + bytes((seed * 31 + i) % 256 for i in range(3072))


def cifar_corpus():
    folder = os.path.join(CORPUS, "fuzz_cifar")
    p = lambda name, data: put(folder, name, data)
    p("one_record.bin", cifar_record(3, 1))
    p("two_records.bin", cifar_record(0, 2) + cifar_record(9, 3))
    p("label_10.bin", cifar_record(10, 4))
    p("second_label_255.bin", cifar_record(1, 5) + cifar_record(255, 6))
    p("truncated.bin", (cifar_record(2, 7) + cifar_record(4, 8))[:-100])
    p("cifar100_style.bin", bytes([5]) + cifar_record(42, 9))
    p("short.bin", bytes([1, 2, 3]))


def image_corpus():
    """Tiny PNG (grey, grey with alpha, RGB, RGBA, palette, 16-bit), JPEG (grey, RGB) and BMP
    images, and the same PNG cut short and with a header claiming 9000 x 9000 pixels."""
    from PIL import Image

    folder = os.path.join(CORPUS, "fuzz_image_folder")
    rng = np.random.default_rng(7)

    def encode(image, fmt, **options):
        out = io.BytesIO()
        image.save(out, fmt, **options)
        return out.getvalue()

    pixels = rng.integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    grey = Image.fromarray(pixels[:, :, 0], "L")
    rgb = Image.fromarray(pixels[:, :, :3], "RGB")
    put(folder, "grey.png", encode(grey, "PNG"))
    put(folder, "grey_alpha.png", encode(Image.fromarray(pixels[:, :, :2], "LA"), "PNG"))
    put(folder, "rgb.png", encode(rgb, "PNG"))
    put(folder, "rgba.png", encode(Image.fromarray(pixels, "RGBA"), "PNG"))
    put(folder, "palette.png", encode(rgb.convert("P"), "PNG"))
    put(folder, "grey16.png", encode(Image.fromarray(pixels[:, :, 0].astype(np.uint16) * 257, "I;16"), "PNG"))
    put(folder, "grey.jpg", encode(grey, "JPEG", quality=90))
    put(folder, "rgb.jpg", encode(rgb, "JPEG", quality=90))
    put(folder, "rgb_progressive.jpg", encode(rgb, "JPEG", quality=75, progressive=True))
    put(folder, "rgb.bmp", encode(rgb, "BMP"))
    put(folder, "grey.bmp", encode(grey, "BMP"))
    png = encode(rgb, "PNG")
    put(folder, "truncated.png", png[: len(png) // 2])
    # IHDR's width and height (bytes 16..23), then its CRC recomputed so only the size is wrong.
    import zlib as z
    huge = bytearray(png)
    huge[16:24] = struct.pack(">II", 9000, 9000)
    huge[29:33] = struct.pack(">I", z.crc32(bytes(huge[12:29])) & 0xFFFFFFFF)
    put(folder, "huge.png", bytes(huge))


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["images"]:
        image_corpus()
    else:
        npy_corpus()
        npy_fixtures()
        cifar_corpus()
        image_corpus()
