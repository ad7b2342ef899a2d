"""Generators of hostile inputs for test_malformed.py: crafted ONNX graphs (onnx.helper), edits of
a valid quantized .tflite (scales and zero points overwritten in place, truncations, byte flips),
.npy/.npz attacks (huge and overflowing shapes, ZIP bombs) and broken images.

Every generator writes into a folder and returns what the error must name.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IN_SHAPE = [1, 3, 8, 8]
CLASSES = 4


def _model(nodes, inits, inputs=None, outputs=None, opset=13) -> onnx.ModelProto:
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, IN_SHAPE)]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    g = helper.make_graph(nodes, "hostile", inputs, outputs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    return m


def _w(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def valid_model() -> onnx.ModelProto:
    """x [1,3,8,8] → Conv 3×3 → Relu → GlobalAveragePool → Flatten → Gemm → y [1,4]."""
    inits = [numpy_helper.from_array(_w([4, 3, 3, 3]), "w"), numpy_helper.from_array(_w([4], 1), "b"),
             numpy_helper.from_array(_w([CLASSES, 4], 2), "fc_w")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv0", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu0"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap0"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat0"),
             helper.make_node("Gemm", ["f", "fc_w"], ["y"], name="fc0", transB=1)]
    return _model(nodes, inits)


def _conv(name="conv_bad", **attrs):
    inits = [numpy_helper.from_array(_w([4, 3, 3, 3]), "w")]
    return _model([helper.make_node("Conv", ["x", "w"], ["y"], name=name, **attrs)], inits)


def _raw_init(name, dims, raw: bytes) -> TensorProto:
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    t.raw_data = raw
    return t


def _add_init(t: TensorProto) -> onnx.ModelProto:
    return _model([helper.make_node("Add", ["x", t.name], ["y"], name="add_bad")], [t])


def _pool(kernel, name="pool_bad", op="MaxPool", **attrs):
    return _model([helper.make_node(op, ["x"], ["y"], name=name, kernel_shape=kernel, **attrs)], [])


def onnx_models() -> dict[str, tuple[onnx.ModelProto | bytes, str]]:
    """name → (model or raw bytes, what the error names besides the file)."""
    big = 2**62
    m = {}
    m["dims_overflow"] = (_add_init(_raw_init("huge", [big + 1, 4], bytes(16))), "huge")
    m["dims_overflow_empty"] = (_add_init(_raw_init("huge", [4, big], b"")), "huge")
    m["dims_negative"] = (_add_init(_raw_init("neg", [-1, 4], bytes(16))), "neg")
    m["raw_too_short"] = (_add_init(_raw_init("short", [2, 4], bytes(12))), "short")
    m["raw_too_long"] = (_add_init(_raw_init("long", [1], bytes(40))), "long")
    m["init_32gb"] = (_add_init(_raw_init("vast", [1, 4_000_000_000], b"")), "vast")
    m["conv_pads_1e6"] = (_conv(pads=[10**6] * 4), "conv_bad")
    m["conv_pads_10k"] = (_conv(pads=[10_000] * 4), "conv_bad")
    m["conv_pads_2p62"] = (_conv(pads=[big] * 4), "conv_bad")
    m["conv_pads_negative"] = (_conv(pads=[-1, -1, -1, -1]), "conv_bad")
    m["conv_stride_0"] = (_conv(strides=[0, 0]), "conv_bad")
    m["conv_stride_negative"] = (_conv(strides=[-2, 1]), "conv_bad")
    m["conv_dilation_0"] = (_conv(dilations=[0, 1]), "conv_bad")
    m["conv_group_0"] = (_conv(group=0), "conv_bad")
    m["conv_pads_wrong_len"] = (_conv(pads=[1, 1]), "conv_bad")
    m["maxpool_kernel_0"] = (_pool([0, 0]), "pool_bad")
    m["maxpool_kernel_negative"] = (_pool([-3, 3]), "pool_bad")
    m["maxpool_kernel_huge"] = (_pool([big, big]), "pool_bad")
    m["maxpool_stride_0"] = (_pool([2, 2], strides=[0, 0]), "pool_bad")
    m["avgpool_kernel_0"] = (_pool([0, 2], op="AveragePool"), "pool_bad")
    shape = numpy_helper.from_array(np.array([1, 4_000_000_000], np.int64), "shape")
    m["constant_of_shape_4e9"] = (_model(
        [helper.make_node("ConstantOfShape", ["shape"], ["k"], name="cos_bad"),
         helper.make_node("Add", ["x", "k"], ["y"], name="add0")], [shape]), "cos_bad")
    shape = numpy_helper.from_array(np.array([big, big], np.int64), "shape")
    m["constant_of_shape_overflow"] = (_model(
        [helper.make_node("ConstantOfShape", ["shape"], ["k"], name="cos_bad"),
         helper.make_node("Add", ["x", "k"], ["y"], name="add0")], [shape]), "cos_bad")
    shape = numpy_helper.from_array(np.array([1, 3, 100_000, 100_000], np.int64), "shape")
    m["reshape_huge"] = (_model([helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape_bad")], [shape]),
                         "reshape_bad")
    pads = numpy_helper.from_array(np.array([0, 0, 10**6, 10**6, 0, 0, 10**6, 10**6], np.int64), "pads")
    m["pad_1e6"] = (_model([helper.make_node("Pad", ["x", "pads"], ["y"], name="pad_bad")], [pads]), "pad_bad")
    m["two_writers"] = (_model([helper.make_node("Relu", ["x"], ["y"], name="relu_a"),
                                helper.make_node("Sigmoid", ["x"], ["y"], name="sig_b")], []), "sig_b")
    nan_w = _w([4, 3, 3, 3])
    nan_w[1, 2, 0, 0] = np.nan
    m["nan_weights"] = (_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv0")],
                               [numpy_helper.from_array(nan_w, "w")]), "w")
    m["input_dims_huge"] = (_model([helper.make_node("Relu", ["x"], ["y"], name="relu0")], [],
                                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10**6, 10**6])]), "x")
    m["input_dims_2p62"] = (_model([helper.make_node("Relu", ["x"], ["y"], name="relu0")], [],
                                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, big, 4])]), "x")
    m["missing_input"] = (_model([helper.make_node("Add", ["x", "ghost"], ["y"], name="add_bad")], []), "ghost")
    m["output_never_computed"] = (_model([helper.make_node("Relu", ["x"], ["r"], name="relu0")], []), "y")
    fc = numpy_helper.from_array(_w([CLASSES, 7]), "fc_w")
    m["gemm_weights_mismatch"] = (_model([helper.make_node("Flatten", ["x"], ["f"], name="flat0"),
                                          helper.make_node("Gemm", ["f", "fc_w"], ["y"], name="fc_bad", transB=1)],
                                         [fc]), "fc_bad")
    m["opset_too_old"] = (_model([helper.make_node("Relu", ["x"], ["y"], name="relu0")], [], opset=3), "opset")
    m["unknown_domain"] = (_model([helper.make_node("Relu", ["x"], ["y"], name="relu_x", domain="com.evil")], []),
                           "relu_x")
    ext = _raw_init("outside", [4], b"")
    ext.data_location = TensorProto.EXTERNAL
    ext.external_data.add(key="location", value="../../etc/passwd")
    m["external_data_escapes"] = (_add_init(ext), "outside")
    valid = valid_model().SerializeToString()
    m["truncated_half"] = (valid[: len(valid) // 2], "")
    m["truncated_10"] = (valid[:10], "")
    m["random_bytes"] = (np.random.default_rng(7).integers(0, 256, 600, dtype=np.uint8).tobytes(), "")
    m["empty_file"] = (b"", "")
    m["no_graph"] = (onnx.ModelProto(ir_version=7).SerializeToString(), "")
    return m


def write_onnx(folder: Path, name: str, model) -> Path:
    path = folder / f"{name}.onnx"
    path.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
    return path


# ---- .tflite edits -------------------------------------------------------------------------------

def _replace_all(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new)
    assert old in data, "pattern not found in the file"
    return data.replace(old, new)


def tflite_variants(valid: bytes, scales: list[float], zero_points: list[int]) -> dict[str, bytes]:
    """Files made from `valid` by overwriting every occurrence of its activation scales (float32)
    and zero points (int64) in place, and by truncation."""
    out = {}
    for label, bad in [("zero", 0.0), ("negative", -0.5), ("nan", float("nan")), ("inf", float("inf")),
                       ("subnormal_negative", -1e-40)]:
        data = valid
        for s in scales:
            data = _replace_all(data, struct.pack("<f", s), struct.pack("<f", bad))
        out[f"scale_{label}"] = data
    for label, bad in [("1000", 1000), ("minus_1000", -1000), ("2p40", 2**40)]:
        data = valid
        for z in zero_points:
            data = _replace_all(data, struct.pack("<q", z), struct.pack("<q", bad))
        out[f"zero_point_{label}"] = data
    for cut in [0, 7, 8, 16, 64, len(valid) // 4, len(valid) // 2]:
        out[f"truncated_{cut}"] = valid[:cut]
    out["identifier_wrong"] = valid[:4] + b"XXXX" + valid[8:]
    out["root_offset_huge"] = struct.pack("<I", 0xFFFFFFF0) + valid[4:]
    out["root_offset_unaligned"] = struct.pack("<I", struct.unpack("<I", valid[:4])[0] + 1) + valid[4:]
    return out


# ---- data files ----------------------------------------------------------------------------------

def npy_header(shape, descr="<f4") -> bytes:
    d = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, repr(tuple(shape)))
    d += " " * (63 - (10 + len(d)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode()


def zip_bomb(path: Path, shape, claim_stored: bool = True):
    """An .npz whose `x` inflates to the whole array of `shape` float32 zeros (a few hundred KiB
    on disk). With claim_stored=False the header claims `shape` but the entry holds 1 MiB."""
    n = int(np.prod(shape)) * 4 if claim_stored else 1 << 20
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            f.write(npy_header(shape))
            chunk = bytes(1 << 22)
            while n > 0:
                f.write(chunk[: min(n, len(chunk))])
                n -= len(chunk)


def data_files(folder: Path) -> dict[str, Path]:
    """name → a hostile data file or folder for a model with input [1,3,8,8]."""
    f = {}

    def put(name, data: bytes):
        p = folder / name
        p.write_bytes(data)
        return p

    f["npy_huge_shape"] = put("huge.npy", npy_header((10**12, 3, 8, 8)) + bytes(64))
    f["npy_overflow_shape"] = put("overflow.npy", npy_header((2**40, 2**40)) + bytes(64))
    f["npy_truncated"] = put("trunc.npy", npy_header((4, 3, 8, 8)) + bytes(100))
    f["npy_bad_header"] = put("badhdr.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': 'zz'}\n")
    f["npy_negative_dim"] = put("negdim.npy", npy_header((4, 3, -8, 8)) + bytes(64))
    f["npy_header_length_huge"] = put("hdrlen.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{")
    f["npy_object_dtype"] = put("object.npy", npy_header((4,), "|O") + bytes(32))
    bomb = folder / "bomb.npz"
    zip_bomb(bomb, (30_000, 3, 32, 32))
    f["npz_zip_bomb"] = bomb
    liar = folder / "liar.npz"
    zip_bomb(liar, (10**7, 3, 8, 8), claim_stored=False)
    f["npz_lying_header"] = liar
    f["npz_not_zip"] = put("notzip.npz", b"PK\x03\x04" + bytes(60))
    valid = folder / "valid_for_cut.npz"
    np.savez(valid, x=np.zeros([4, 3, 8, 8], np.float32))
    f["npz_truncated"] = put("cut.npz", valid.read_bytes()[:300])
    nan = folder / "nan.npz"
    x = np.zeros([4, 3, 8, 8], np.float32)
    x[2, 1, 3, 3] = np.nan
    np.savez(nan, x=x, y=np.zeros(4, np.int64))
    f["npz_nan_values"] = nan
    wrong = folder / "wrong_shape.npz"
    np.savez(wrong, x=np.zeros([4, 5, 8, 8], np.float32), y=np.zeros(4, np.int64))
    f["npz_wrong_shape"] = wrong
    strings = folder / "strings.npz"
    np.savez(strings, x=np.array(["a", "b"]))
    f["npz_string_array"] = strings
    f["idx_huge"] = put("huge-images-idx3-ubyte", struct.pack(">BBBBIII", 0, 0, 8, 3, 2**31 - 1, 2**16, 2**16) + bytes(16))
    imgs = folder / "images_corrupt"
    (imgs / "cat").mkdir(parents=True)
    (imgs / "cat" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    f["image_corrupt_png"] = imgs
    imgs = folder / "images_bomb"
    (imgs / "cat").mkdir(parents=True)
    (imgs / "cat" / "a.png").write_bytes(_png_header(100_000, 100_000))
    f["image_png_huge_dims"] = imgs
    imgs = folder / "images_empty"
    (imgs / "cat").mkdir(parents=True)
    f["image_folder_empty"] = imgs
    return f


def _png_header(w, h) -> bytes:
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""))


def small_png(w=8, h=8) -> bytes:
    import zlib

    raw = b"".join(b"\0" + bytes((x * 30 + y) & 255 for x in range(w) for _ in range(3)) for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
