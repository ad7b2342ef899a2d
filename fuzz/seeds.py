"""Regenerates the seed corpora in fuzz/corpus/ from the repo's fixtures and small generated files.

Run from the repo root with the oracle venv, a built tinyq and the built fuzz targets:
    .venv/bin/python fuzz/seeds.py target/release/tinyq
"""
import io
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def small_conv():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(2, np.float32), "b")
    fc = numpy_helper.from_array(rng.standard_normal((3, 8)).astype(np.float32), "fc")
    shape = numpy_helper.from_array(np.array([1, 8], np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("Reshape", ["p", "shape"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1, name="dense"),
        helper.make_node("Softmax", ["y"], ["out"], axis=1, name="softmax"),
    ]
    g = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3])], [w, b, fc, shape])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def png(w, h, gray):
    ch = 1 if gray else 3
    raw = b"".join(b"\0" + bytes((x * 37 + y * 11 + c * 5) & 255 for x in range(w) for c in range(ch)) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if gray else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def bmp(w, h):
    row = (w * 3 + 3) & ~3
    pixels = b"".join(bytes((x * 40 + y) & 255 for x in range(w) for _ in range(3)).ljust(row, b"\0") for y in range(h))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def npz(**arrays):
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def main():
    tinyq = sys.argv[1]
    hello = os.path.join(ROOT, "fixtures", "hello_world", "model.onnx")
    put("onnx", "hello_world.onnx", open(hello, "rb").read())
    put("onnx", "small_conv.onnx", small_conv().SerializeToString())
    with tempfile.TemporaryDirectory() as tmp:
        conv = os.path.join(tmp, "conv.onnx")
        onnx.save(small_conv(), conv)
        calib = os.path.join(tmp, "calib.npz")
        np.savez(calib, x=np.random.default_rng(1).standard_normal((8, 1, 4, 4)).astype(np.float32))
        out = os.path.join(tmp, "conv.tflite")
        subprocess.run([tinyq, "quantize", conv, "--calib", calib, "-o", out], check=True, capture_output=True)
        put("tflite", "small_conv_int8.tflite", open(out, "rb").read())
        sine = os.path.join(ROOT, "fixtures", "hello_world", "sine.npz")
        out = os.path.join(tmp, "hello.tflite")
        subprocess.run([tinyq, "quantize", hello, "--calib", sine, "-o", out], check=True, capture_output=True)
        put("tflite", "hello_world_int8.tflite", open(out, "rb").read())
        out = os.path.join(tmp, "hello_f.tflite")
        subprocess.run([tinyq, "quantize", hello, "--calib", sine, "--io", "float", "-o", out], check=True, capture_output=True)
        put("tflite", "hello_world_float_io.tflite", open(out, "rb").read())
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    buf = io.BytesIO()
    np.save(buf, x)
    put("data", "f32.npy", buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, np.asfortranarray(np.arange(6, dtype=">i2").reshape(2, 3)))
    put("data", "fortran_be.npy", buf.getvalue())
    put("data", "xy.npz", npz(x=x, y=np.array([0, 1], np.int64)))
    buf = io.BytesIO()
    np.savez(buf, x=np.ones((2, 2), np.uint8))
    put("data", "stored.npz", buf.getvalue())
    idx = struct.pack(">BBBBIII", 0, 0, 8, 3, 2, 2, 2) + bytes(range(8))
    put("data", "images.idx3", idx)
    # Image seeds: the first byte selects extension (bits 0-1), grayscale (bit 2), resize (bit 3).
    put("image", "rgb.png", b"\x00" + png(3, 2, False))
    put("image", "gray_resize.png", b"\x0c" + png(4, 3, True))
    put("image", "rgb.bmp", b"\x02" + bmp(3, 2))
    seed_jpeg = os.path.join(ROOT, "fuzz", "target", "release", "seed_jpeg")
    if os.path.exists(seed_jpeg):  # built by `cargo afl build --release` in fuzz/
        put("image", "tiny.jpg", b"\x01" + subprocess.run([seed_jpeg], check=True, capture_output=True).stdout)


if __name__ == "__main__":
    main()
