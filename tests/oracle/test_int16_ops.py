"""Int16 ADD, MAX_POOL_2D, AVERAGE_POOL_2D, MEAN, RESHAPE and PAD/PADV2, checked bit for bit
against TFLM.

`tinyq quantize --int16` does not emit these ops yet, so each case's TFLite file is written here
with the flatbuffer object API of the `tflite-micro` package: random shapes, scales, options
(fused activations, SAME/VALID padding, strides, filter sizes, broadcast shapes, MEAN axes with
and without keep_dims, RESHAPE targets, paddings and PADV2 constants), every int16 tensor
symmetric (zero point 0), the op versions LiteRT's `op_version.cc` gives int16 (ADD 3 with
`pot_scale_int16 = false`, pools 3, MEAN 3, RESHAPE 1, PAD/PADV2 3, QUANTIZE 2).

`tinyq run` takes int8 or float model inputs only, so each int16 operand `x` of the op under test
is made inside the model from two int8 inputs: `x = ADD16(QUANTIZE16(hi), QUANTIZE16(lo))`, with
`lo` on a scale 64-300 times finer than `hi`, so `x` covers the int16 range densely rather than
256 values. `x` itself is a model output too, so every int16 tensor of the model (the operands
and the op's output) is compared with TFLM, value for value. An ADD operand may instead be a
constant int16 tensor holding arbitrary values.

Environment: TINYQ_INT16_OPS_CASES_PER_KIND (default 110; 7 kinds).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

import oracle_lib
import tflm_lib

CASES_PER_KIND = int(os.environ.get("TINYQ_INT16_OPS_CASES_PER_KIND", "110"))
SEED = 20261127
SAMPLES = 3
KINDS = ("add", "add_broadcast", "max_pool", "avg_pool", "mean", "reshape", "pad")

BO = schema.BuiltinOperator
TT = schema.TensorType
ACTIVATIONS = (0, 1, 2, 3)  # NONE, RELU, RELU_N1_TO_1, RELU6


def _logu(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _activation(rng):
    return int(rng.choice(ACTIVATIONS, p=[0.4, 0.3, 0.1, 0.2]))


class ModelBuilder:
    """A one-subgraph TFLite model built tensor by tensor with the object API."""

    def __init__(self):
        self.tensors: list = []
        self.buffers: list = [schema.BufferT()]  # buffer 0: the empty sentinel
        self.ops: list = []
        self.codes: list[tuple[int, int]] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.int8_inputs: list[tuple[str, list[int]]] = []

    def tensor(self, name, shape, ttype, scale=None, zero_point=0, data: np.ndarray | None = None) -> int:
        t = schema.TensorT()
        t.name, t.shape, t.type = name.encode(), np.array(shape, dtype=np.int32), ttype
        if scale is not None:
            q = schema.QuantizationParametersT()
            q.scale, q.zeroPoint = np.array([scale], dtype=np.float32), np.array([zero_point], dtype=np.int64)
            t.quantization = q
        if data is not None:
            b = schema.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code, version, inputs, outputs, options_type=0, options=None):
        if (code, version) not in self.codes:
            self.codes.append((code, version))
        o = schema.OperatorT()
        o.opcodeIndex = self.codes.index((code, version))
        o.inputs, o.outputs = np.array(inputs, dtype=np.int32), np.array(outputs, dtype=np.int32)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.ops.append(o)

    def add(self, a, b, out, activation):
        opts = schema.AddOptionsT()
        opts.fusedActivationFunction, opts.potScaleInt16 = activation, False
        self.op(BO.ADD, 3, [a, b], [out], schema.BuiltinOptions.AddOptions, opts)

    def int16_operand(self, rng, name, shape, scale) -> int:
        """An int16 tensor `name` of `shape` and `scale` computed from two int8 model inputs; it
        is also a model output."""
        amp = rng.choice([0.05, 0.5, 1.0, 1.6])  # real range ±amp · 32767 · scale (> 1 saturates)
        s_hi = float(amp) * 32767 * scale / 127
        s_lo = s_hi / rng.uniform(64, 300)
        parts = []
        for part, s8 in (("hi", s_hi), ("lo", s_lo)):
            zp = int(rng.integers(-20, 21))
            x8 = self.tensor(f"{name}_{part}", shape, TT.INT8, s8, zp)
            self.inputs.append(x8)
            self.int8_inputs.append((f"{name}_{part}", list(shape)))
            x16 = self.tensor(f"{name}_{part}16", shape, TT.INT16, s8 / rng.uniform(1, 200))
            self.op(BO.QUANTIZE, 2, [x8], [x16], schema.BuiltinOptions.QuantizeOptions, schema.QuantizeOptionsT())
            parts.append(x16)
        x = self.tensor(name, shape, TT.INT16, scale)
        self.add(parts[0], parts[1], x, 0)
        self.outputs.append(x)
        return x

    def finish(self) -> bytes:
        sg = schema.SubGraphT()
        sg.tensors, sg.operators = self.tensors, self.ops
        sg.inputs, sg.outputs = np.array(self.inputs, dtype=np.int32), np.array(self.outputs, dtype=np.int32)
        sg.name = b"main"
        m = schema.ModelT()
        m.version, m.description, m.subgraphs, m.buffers = 3, b"tinyq int16 op oracle", [sg], self.buffers
        m.operatorCodes = []
        for code, version in self.codes:
            c = schema.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), version
            m.operatorCodes.append(c)
        b = flatbuffers.Builder(4096)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def _nhwc(rng, hmax=12):
    return [int(rng.integers(1, 3)), int(rng.integers(1, hmax + 1)), int(rng.integers(1, hmax + 1)), int(rng.integers(1, 9))]


def _any_shape(rng):
    rank = int(rng.choice([1, 2, 3, 4, 5], p=[0.1, 0.2, 0.2, 0.4, 0.1]))
    return [int(rng.integers(1, 7)) for _ in range(rank)]


def _broadcast_partner(rng, shape):
    """A shape numpy-broadcasting with `shape` to `shape`, of equal or lower rank."""
    mode = str(rng.choice(["scalar", "last", "unit_dims", "lower_rank"]))
    if mode == "scalar":
        return [] if rng.random() < 0.5 else [1], mode
    if mode == "last":
        return [shape[-1]], mode
    if mode == "unit_dims":
        out = [d if rng.random() < 0.5 else 1 for d in shape]
        return out, mode
    k = int(rng.integers(1, len(shape) + 1))
    return [d if rng.random() < 0.6 else 1 for d in shape[-k:]], mode


def build_add(rng, b: ModelBuilder, broadcast: bool) -> dict:
    shape = _any_shape(rng)
    other, mode = _broadcast_partner(rng, shape) if broadcast else (list(shape), "same")
    if broadcast and other == shape:
        other = [1] * len(shape)
    s1, s2 = _logu(rng, 1e-4, 1e-1), _logu(rng, 1e-4, 1e-1)
    x1 = b.int16_operand(rng, "a", shape, s1)
    if rng.random() < 0.2:
        data = rng.integers(-32768, 32768, size=other, dtype=np.int64).astype(np.int16)
        x2 = b.tensor("c", other, TT.INT16, s2, data=data)
        mode += "+const"
    else:
        x2 = b.int16_operand(rng, "b", other, s2)
    swap = bool(rng.random() < 0.4)
    if swap:
        x1, x2 = x2, x1
    s_out = (max(s1, s2) + min(s1, s2) * rng.uniform(0, 1)) * _logu(rng, 0.3, 3)
    out_shape = list(np.broadcast_shapes(tuple(shape), tuple(other)))
    act = _activation(rng)
    y = b.tensor("y", out_shape, TT.INT16, s_out)
    b.add(x1, x2, y, act)
    b.outputs.insert(0, y)
    return dict(shape=shape, other=other, mode=mode, swap=swap, activation=act, scales=[s1, s2, s_out])


def build_pool(rng, b: ModelBuilder, code: int) -> dict:
    shape = _nhwc(rng)
    fh, fw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    padding = int(rng.integers(0, 2))  # SAME, VALID
    if padding == 1:
        shape[1], shape[2] = max(shape[1], fh), max(shape[2], fw)
    n, h, w, c = shape
    if padding == 0:
        oh, ow = -(-h // sh), -(-w // sw)
    else:
        oh, ow = (h - fh) // sh + 1, (w - fw) // sw + 1
    scale = _logu(rng, 1e-4, 1e-1)
    x = b.int16_operand(rng, "x", shape, scale)
    y = b.tensor("y", [n, oh, ow, c], TT.INT16, scale)
    opts = schema.Pool2DOptionsT()
    act = _activation(rng)
    opts.padding, opts.strideH, opts.strideW, opts.filterHeight, opts.filterWidth = padding, sh, sw, fh, fw
    opts.fusedActivationFunction = act
    b.op(code, 3, [x], [y], schema.BuiltinOptions.Pool2DOptions, opts)
    b.outputs.insert(0, y)
    return dict(x=shape, filter=[fh, fw], stride=[sh, sw], padding=["SAME", "VALID"][padding], activation=act)


def build_mean(rng, b: ModelBuilder) -> dict:
    shape = _nhwc(rng, hmax=16) if rng.random() < 0.7 else _any_shape(rng)
    rank = len(shape)
    if rank == 4 and rng.random() < 0.5:
        axes = [1, 2]
    else:
        k = int(rng.integers(1, rank + 1))
        axes = sorted(int(a) for a in rng.choice(rank, size=k, replace=False))
    keep = bool(rng.random() < 0.5)
    out_shape = [1 if a in axes else d for a, d in enumerate(shape)] if keep else [d for a, d in enumerate(shape) if a not in axes]
    written_axes = [a - rank if rng.random() < 0.3 else a for a in axes]
    s_in = _logu(rng, 1e-4, 1e-1)
    s_out = s_in * _logu(rng, 0.25, 4)
    x = b.int16_operand(rng, "x", shape, s_in)
    ax = b.tensor("axes", [len(axes)], TT.INT32, data=np.array(written_axes, dtype=np.int32))
    y = b.tensor("y", out_shape, TT.INT16, s_out)
    opts = schema.ReducerOptionsT()
    opts.keepDims = keep
    b.op(BO.MEAN, 3, [x, ax], [y], schema.BuiltinOptions.ReducerOptions, opts)
    b.outputs.insert(0, y)
    return dict(x=shape, axes=written_axes, keep_dims=keep, scales=[s_in, s_out])


def build_reshape(rng, b: ModelBuilder) -> dict:
    shape = _any_shape(rng)
    total = int(np.prod(shape))
    target = []
    rest = total
    for _ in range(int(rng.integers(0, 4))):
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        d = int(rng.choice(divisors))
        target.append(d)
        rest //= d
    target.append(rest)
    scale = _logu(rng, 1e-4, 1e-1)
    x = b.int16_operand(rng, "x", shape, scale)
    st = b.tensor("shape", [len(target)], TT.INT32, data=np.array(target, dtype=np.int32))
    y = b.tensor("y", target, TT.INT16, scale)
    opts = schema.ReshapeOptionsT()
    opts.newShape = np.array(target, dtype=np.int32)
    b.op(BO.RESHAPE, 1, [x, st], [y], schema.BuiltinOptions.ReshapeOptions, opts)
    b.outputs.insert(0, y)
    return dict(x=shape, to=target)


def build_pad(rng, b: ModelBuilder) -> dict:
    shape = _any_shape(rng)[:4]
    pads = [[int(rng.integers(0, 3)), int(rng.integers(0, 3))] for _ in shape]
    out_shape = [d + lo + hi for d, (lo, hi) in zip(shape, pads)]
    scale = _logu(rng, 1e-4, 1e-1)
    x = b.int16_operand(rng, "x", shape, scale)
    pt = b.tensor("paddings", [len(shape), 2], TT.INT32, data=np.array(pads, dtype=np.int32))
    y = b.tensor("y", out_shape, TT.INT16, scale)
    if rng.random() < 0.5:
        b.op(BO.PAD, 3, [x, pt], [y], schema.BuiltinOptions.PadOptions, schema.PadOptionsT())
        value = None
    else:
        value = int(rng.choice([-32768, 32767, int(rng.integers(-32768, 32768))]))
        c = b.tensor("constant_values", [], TT.INT16, scale, data=np.array([value], dtype=np.int16))
        b.op(BO.PADV2, 3, [x, pt, c], [y], schema.BuiltinOptions.PadV2Options, schema.PadV2OptionsT())
    b.outputs.insert(0, y)
    return dict(x=shape, pads=pads, value=value)


def build_case(kind: str, index: int, root: Path) -> tuple[Path, list[tuple[str, list[int]]], dict]:
    rng = np.random.default_rng([SEED, KINDS.index(kind), index])
    b = ModelBuilder()
    if kind in ("add", "add_broadcast"):
        params = build_add(rng, b, broadcast=kind == "add_broadcast")
    elif kind in ("max_pool", "avg_pool"):
        params = build_pool(rng, b, BO.MAX_POOL_2D if kind == "max_pool" else BO.AVERAGE_POOL_2D)
    elif kind == "mean":
        params = build_mean(rng, b)
    elif kind == "pad":
        params = build_pad(rng, b)
    else:
        params = build_reshape(rng, b)
    d = root / f"{kind}-{index:03d}"
    d.mkdir(parents=True, exist_ok=True)
    path = d / "m.tflite"
    path.write_bytes(b.finish())
    data = {name: rng.integers(-128, 128, size=[SAMPLES, *shape], dtype=np.int64).astype(np.int8)
            for name, shape in b.int8_inputs}
    # extremes on some samples, so saturation and the int16 ends are reached
    for v in data.values():
        v[0].flat[:: max(1, v[0].size // 3)] = 127
        v[-1].flat[:: max(1, v[-1].size // 4)] = -128
    np.savez(d / "data.npz", **data)
    params["inputs"] = [name for name, _ in b.int8_inputs]
    return path, b.int8_inputs, params


def run_tflm(path: Path, inputs: list[tuple[str, list[int]]], data) -> list[np.ndarray]:
    it = runtime.Interpreter.from_bytes(path.read_bytes(), arena_size=tflm_lib.TFLM_ARENA_BYTES)
    n_out = len(runtime.convert_bytearray_to_object(bytearray(path.read_bytes())).subgraphs[0].outputs)
    outs: list[list[np.ndarray]] = [[] for _ in range(n_out)]
    for i in range(SAMPLES):
        for k, (name, _) in enumerate(inputs):
            it.set_input(data[name][i], k)
        it.invoke()
        for k in range(n_out):
            outs[k].append(np.array(it.get_output(k), copy=True))
    return [np.stack(o) for o in outs]


def check_case(tinyq_bin: Path, kind: str, index: int, root: Path) -> dict:
    path, inputs, params = build_case(kind, index, root)
    out = path.parent / "tinyq.npz"
    proc = oracle_lib.run_tinyq(tinyq_bin, "run", path, "--data", path.parent / "data.npz",
                                "--x", ",".join(n for n, _ in inputs), "-o", out)
    return {"path": path, "inputs": inputs, "params": params, "proc": proc, "out": out}


def compare(rec: dict) -> dict:
    proc = rec["proc"]
    assert proc.returncode == 0 and "panicked" not in proc.stderr, (rec["params"], oracle_lib.describe_failure(proc))
    with np.load(rec["path"].parent / "data.npz") as z:
        data = {k: z[k] for k in z.files}
    theirs = run_tflm(rec["path"], rec["inputs"], data)
    ours = np.load(rec["out"])
    keys = ["y"] + [f"y_{k}" for k in range(1, len(theirs))]
    compared = mismatched = op_values = 0
    first = None
    for k, (key, ref) in enumerate(zip(keys, theirs)):
        assert key in ours.files, (rec["path"], key, ours.files)
        got = ours[key]
        assert ref.dtype == np.int16 and got.dtype == np.int16, (rec["path"], key, got.dtype, ref.dtype)
        assert got.size == ref.size, (rec["path"], key, got.shape, ref.shape)
        got = got.reshape(ref.shape)
        bad = int((got != ref).sum())
        if bad and first is None:
            i = tuple(int(v) for v in np.argwhere(got != ref)[0])
            first = f"{key}{list(i)}: tinyq {int(got[i])} vs TFLM {int(ref[i])}"
        compared += ref.size
        mismatched += bad
        if k == 0:
            op_values += ref.size
    return {"compared": compared, "op_values": op_values, "mismatched": mismatched, "first": first}


@pytest.mark.parametrize("kind", KINDS)
def test_int16_ops_match_tflm(kind, tinyq_bin, tmp_path):
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        recs = list(pool.map(lambda i: check_case(tinyq_bin, kind, i, tmp_path), range(CASES_PER_KIND)))
    results = [compare(r) for r in recs]
    bad = [(r, res) for r, res in zip(recs, results) if res["mismatched"]]
    compared = sum(res["compared"] for res in results)
    print(f"\nint16 {kind}: {len(results)} cases, {compared} int16 values compared "
          f"({sum(res['op_values'] for res in results)} of them outputs of the op under test), "
          f"{sum(res['mismatched'] for res in results)} differ from TFLM in {len(bad)} cases")
    for r, res in bad[:10]:
        print(f"  {r['path'].parent.name}: {res['mismatched']}/{res['compared']} differ, first {res['first']}; params {r['params']}")
    assert not bad, f"{len(bad)} {kind} cases differ from TFLM"
    assert len(results) >= 100 or "TINYQ_INT16_OPS_CASES_PER_KIND" in os.environ


def test_int16_refusals_name_the_node(tinyq_bin, tmp_path):
    """Int16 SUB and MUL, mismatched pool scales, non-zero int16 zero points and an int16 PADV2
    constant on another scale (TFLM would pad with its raw value) are errors that name the node or
    the tensor, never panics."""
    rng = np.random.default_rng(7)

    def model(edit) -> Path:
        b = ModelBuilder()
        x = b.int16_operand(rng, "x", [1, 4, 4, 2], 0.001)
        edit(b, x)
        path = tmp_path / f"refused_{len(list(tmp_path.iterdir()))}.tflite"
        path.write_bytes(b.finish())
        np.savez(tmp_path / "d.npz", **{n: np.zeros([1, *s], dtype=np.int8) for n, s in b.int8_inputs})
        return path, ",".join(n for n, _ in b.int8_inputs)

    def binary(code):
        def edit(b, x):
            y = b.tensor("y", [1, 4, 4, 2], TT.INT16, 0.002)
            b.op(code, 4 if code == BO.MUL else 3, [x, x], [y])
            b.outputs.insert(0, y)
        return edit

    def pool_scale(b, x):
        y = b.tensor("y", [1, 2, 2, 2], TT.INT16, 0.002)
        opts = schema.Pool2DOptionsT()
        opts.padding, opts.strideH, opts.strideW, opts.filterHeight, opts.filterWidth = 1, 2, 2, 2, 2
        b.op(BO.MAX_POOL_2D, 3, [x], [y], schema.BuiltinOptions.Pool2DOptions, opts)
        b.outputs.insert(0, y)

    def mean_zero_point(b, x):
        ax = b.tensor("axes", [2], TT.INT32, data=np.array([1, 2], dtype=np.int32))
        y = b.tensor("y", [1, 2], TT.INT16, 0.001, zero_point=5)
        b.op(BO.MEAN, 3, [x, ax], [y], schema.BuiltinOptions.ReducerOptions, schema.ReducerOptionsT())
        b.outputs.insert(0, y)

    def padv2_scale(b, x):
        pt = b.tensor("paddings", [4, 2], TT.INT32, data=np.zeros([4, 2], dtype=np.int32))
        c = b.tensor("y_value", [], TT.INT16, 0.5, data=np.array([7], dtype=np.int16))
        y = b.tensor("y", [1, 4, 4, 2], TT.INT16, 0.001)
        b.op(BO.PADV2, 3, [x, pt, c], [y], schema.BuiltinOptions.PadV2Options, schema.PadV2OptionsT())
        b.outputs.insert(0, y)

    # (model edit, words of the message, the place it names: the node when the engine refuses, the
    # operator when the reader does)
    for edit, words, place in [(binary(BO.SUB), "ADD only", "`y`"), (binary(BO.MUL), "ADD only", "`y`"),
                               (pool_scale, "pool output", "`y`"), (mean_zero_point, "zero point 5", "`y`"),
                               (padv2_scale, "output's quantization", "operator 3 (PADV2)")]:
        path, keys = model(edit)
        proc = oracle_lib.run_tinyq(tinyq_bin, "run", path, "--data", tmp_path / "d.npz", "--x", keys,
                                    "-o", tmp_path / "o.npz")
        assert proc.returncode == 1 and proc.stderr.startswith("error:"), oracle_lib.describe_failure(proc)
        assert "panicked" not in proc.stderr and words in proc.stderr and place in proc.stderr, proc.stderr
