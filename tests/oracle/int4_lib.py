"""Int4 weights in a `.tflite` file, written here independently of tinyq's writer: TFLite's
`TensorType.INT4` (17), values in row-major order two per byte, the even-indexed value in the low
nibble (TFLM's `tensor_utils::UnpackDenseInt4IntoInt8`), symmetric scales (zero points 0).

`to_int4` rewrites an int8 model's CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED weights as int4:
each channel's real weights re-quantized to the 4-bit grid and the bias re-quantized to
input scale × new weight scale (TFLM checks that product for per-tensor fully connected layers).
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np

INT4 = 17  # TensorType.INT4
INT32 = 2  # TensorType.INT32
# CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and the axis of their per-channel weight scales
WEIGHT_AXIS = {3: 0, 4: 3, 9: 0}


def pack_int4(values: np.ndarray) -> np.ndarray:
    """Row-major int4 values (in -8..=7) packed two per byte, low nibble first."""
    v = np.asarray(values, dtype=np.int8).reshape(-1)
    assert v.size == 0 or (v.min() >= -8 and v.max() <= 7)
    if v.size % 2:
        v = np.concatenate([v, np.zeros(1, np.int8)])
    nib = (v.astype(np.int16) & 0x0F).astype(np.uint8)
    return (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8)


def unpack_int4(packed: np.ndarray, n: int) -> np.ndarray:
    b = np.asarray(packed, dtype=np.uint8)
    lo = ((b << 4).astype(np.int8) >> 4).astype(np.int8)
    hi = (b.astype(np.int8) >> 4).astype(np.int8)
    return np.stack([lo, hi], axis=1).reshape(-1)[:n]


def _per_channel(arr: np.ndarray, axis: int, values) -> np.ndarray:
    shape = [1] * arr.ndim
    shape[axis] = -1
    return np.asarray(values, dtype=np.float64).reshape(shape)


def to_int4(src: Path, dst: Path, rng: np.random.Generator) -> dict:
    """Writes `src` (an int8 model) with int4 weights to `dst`; returns what was chosen. About a
    third of the layers use the full range -8..=7 (scale max|w|/8), the rest -7..=7."""
    from tflite_micro.python.tflite_micro import runtime

    model = runtime.convert_bytearray_to_object(bytearray(src.read_bytes()))
    sg = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    chosen = {"layers": 0, "full_range": 0}
    for op in sg.operators:
        code = codes[op.opcodeIndex]
        if code not in WEIGHT_AXIS:
            continue
        x, w = sg.tensors[op.inputs[0]], sg.tensors[op.inputs[1]]
        if w.type != 9:  # INT8
            continue
        q = w.quantization
        shape = [int(d) for d in w.shape]
        q8 = np.frombuffer(bytes(model.buffers[w.buffer].data), dtype=np.int8).reshape(shape).astype(np.float64)
        scales = np.asarray(q.scale, dtype=np.float64)
        zps = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(scales), dtype=np.float64)
        axis = WEIGHT_AXIS[code] if len(scales) > 1 else 0
        if len(scales) > 1:
            real = (q8 - _per_channel(q8, axis, zps)) * _per_channel(q8, axis, scales)
            peak = np.abs(np.moveaxis(real, axis, 0).reshape(len(scales), -1)).max(axis=1)
        else:
            real = (q8 - zps[0]) * scales[0]
            peak = np.array([np.abs(real).max()])
        full = bool(rng.random() < 0.33)
        steps = 8.0 if full else 7.0
        s4 = np.where(peak > 0, peak / steps, 1.0).astype(np.float32)
        s4_b = _per_channel(q8, axis, s4) if len(s4) > 1 else float(s4[0])
        q4 = np.clip(np.round(real / s4_b), -8 if full else -7, 7).astype(np.int8)
        model.buffers[w.buffer].data = pack_int4(q4)
        w.type = INT4
        q.scale = s4.tolist()
        q.zeroPoint = [0] * len(s4)
        q.quantizedDimension = axis if len(s4) > 1 else 0
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = sg.tensors[op.inputs[2]]
            assert b.type == INT32
            bq = np.frombuffer(bytes(model.buffers[b.buffer].data), dtype=np.int32).astype(np.float64)
            real_b = bq * np.asarray(b.quantization.scale, dtype=np.float64)
            in_scale = float(x.quantization.scale[0])
            new_scale = (np.float32(in_scale) * s4).astype(np.float32)
            nb = np.clip(np.round(real_b / new_scale.astype(np.float64)), -(2**31), 2**31 - 1).astype(np.int32)
            model.buffers[b.buffer].data = np.frombuffer(nb.tobytes(), dtype=np.uint8)
            b.quantization.scale = new_scale.tolist()
            b.quantization.zeroPoint = [0] * len(new_scale)
        chosen["layers"] += 1
        chosen["full_range"] += int(full)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))
    return chosen
