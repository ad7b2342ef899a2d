"""Float kernels of single ops against onnxruntime (ONNX) and LiteRT (.tflite), at 1e-5 relative.

The ONNX cases are the random single-op models of `tflm_lib` (the same generators the TFLM
bit-exactness test quantizes), run in float: `tinyq run model.onnx` must equal onnxruntime on
every evaluation sample. The .tflite cases are float files written in the TFLite converter's form
(`fixtures/exporters/make_fixtures.py`'s builder) for ops that arrive in `.tflite` files.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import oracle_lib
import tflm_lib
from test_max_drop import ok

CASES = 40
REL = 1e-5
# op kinds whose float kernel is checked here (kinds of tflm_lib)
KINDS = ("prelu", "resize", "reduce_max", "elu", "abs", "reduce_sum", "batch_norm", "max", "min", "slice", "split", "gather", "log_softmax", "mirror_pad", "resize_bilinear")


def onnxruntime_run(model, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    n = len(next(iter(feeds.values())))
    return np.stack([sess.run(None, {k: v[i] for k, v in feeds.items()})[0] for i in range(n)])


@pytest.mark.parametrize("kind", KINDS)
def test_float_single_op_equals_onnxruntime(kind, run_tinyq, tmp_path):
    worst = 0.0
    for i in range(CASES):
        case = tflm_lib.build_case(kind, 1000 + i, tmp_path)
        ev = oracle_lib.load_npz(case.dir / "eval_float.npz")
        out = case.dir / "float.npz"
        ok(run_tinyq("run", case.dir / "model.onnx", "--data", case.dir / "eval_float.npz",
                     "--x", ",".join(case.input_names), "-o", out))
        ours = np.load(out)["y"]
        theirs = onnxruntime_run(case.dir / "model.onnx", {k: ev[k] for k in case.input_names})
        d = oracle_lib.rel_max_diff(ours.reshape(theirs.shape), theirs)
        assert d <= REL, f"{case.id} {case.params}: relative difference {d:.3g}"
        worst = max(worst, d)
    print(f"{kind}: {CASES} random float models, worst relative difference {worst:.3g}")


def litert_run(model, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(model), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    outs = []
    for xi in x:
        it.set_tensor(inp["index"], xi[None])
        it.invoke()
        outs.append(it.get_tensor(outp["index"])[0].copy())
    return np.stack(outs)


def tflite_prelu(path, rng) -> tuple[list[int], dict]:
    """A float PRELU as MediaPipe's files have it: NHWC input, a [1, 1, C] (or [C], [H, W, C])
    alpha constant."""
    sys.path.insert(0, str(oracle_lib.REPO / "fixtures" / "exporters"))
    from make_fixtures import B, T, Tfl

    shape = [1, int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 9))]
    mode = str(rng.choice(["1x1xC", "C", "HxWxC"]))
    ashape = {"1x1xC": [1, 1, shape[3]], "C": [shape[3]], "HxWxC": shape[1:]}[mode]
    f = Tfl()
    x = f.tensor("input", shape, T.FLOAT32)
    a = f.tensor("alpha", ashape, T.FLOAT32, rng.uniform(-0.5, 1.5, ashape).astype(np.float32))
    y = f.tensor("prelu", shape, T.FLOAT32)
    f.op(B.PRELU, [x, a], [y])
    f.g.inputs, f.g.outputs = [x], [y]
    path.write_bytes(f.bytes())
    return shape, dict(x=shape, alpha=ashape)


def test_tflite_prelu_equals_litert(run_tinyq, tmp_path):
    rng = np.random.default_rng(54)
    for i in range(20):
        model = tmp_path / f"prelu{i}.tflite"
        shape, params = tflite_prelu(model, rng)
        x = (rng.standard_normal((4, *shape[1:])) * 3).astype(np.float32)
        np.savez(tmp_path / "x.npz", x=x)
        out = tmp_path / "y.npz"
        ok(run_tinyq("run", model, "--data", tmp_path / "x.npz", "-o", out))
        ours, theirs = np.load(out)["y"], litert_run(model, x)
        assert oracle_lib.rel_max_diff(ours.reshape(theirs.shape), theirs) <= REL, params


def tflite_resize(path, rng) -> tuple[list[int], dict]:
    """RESIZE_NEAREST_NEIGHBOR as Keras UpSampling2D and tf.image.resize write it."""
    sys.path.insert(0, str(oracle_lib.REPO / "fixtures" / "exporters"))
    from make_fixtures import B, O, T, Tfl, opts, s

    shape = [1, int(rng.integers(1, 7)), int(rng.integers(1, 7)), int(rng.integers(1, 5))]
    size = [int(rng.integers(1, 13)), int(rng.integers(1, 13))]
    align, half = [(False, False), (True, False), (False, True)][int(rng.integers(3))]
    f = Tfl()
    x = f.tensor("input", shape, T.FLOAT32)
    sz = f.i32("size", size)
    y = f.tensor("resized", [1, *size, shape[3]], T.FLOAT32)
    f.op(B.RESIZE_NEAREST_NEIGHBOR, [x, sz], [y], O.ResizeNearestNeighborOptions,
         opts(s.ResizeNearestNeighborOptionsT, alignCorners=align, halfPixelCenters=half), version=3 if half else 1)
    f.g.inputs, f.g.outputs = [x], [y]
    path.write_bytes(f.bytes())
    return shape, dict(x=shape, size=size, align_corners=align, half_pixel_centers=half)


def test_tflite_resize_nearest_equals_litert(run_tinyq, tmp_path):
    rng = np.random.default_rng(97)
    for i in range(30):
        model = tmp_path / f"resize{i}.tflite"
        shape, params = tflite_resize(model, rng)
        x = rng.standard_normal((3, *shape[1:])).astype(np.float32)
        np.savez(tmp_path / "x.npz", x=x)
        out = tmp_path / "y.npz"
        ok(run_tinyq("run", model, "--data", tmp_path / "x.npz", "-o", out))
        ours, theirs = np.load(out)["y"], litert_run(model, x)
        assert np.array_equal(ours.reshape(theirs.shape), theirs), params
