"""tinyq: squeeze trained neural networks into microcontrollers, from Python.

    import numpy as np, tinyq
    fp32 = tinyq.load("model.onnx")
    int8 = tinyq.quantize(fp32, calib=x_calib, data=x_test, y=y_test)
    int8.save("model_int8.tflite")
    print(int8.metrics, int8.report(device="nucleo-f446re")["arena_bytes"])

Every call runs the same code as the `tinyq` command line (a file written here is byte for byte
the file `tinyq quantize` writes). Arrays are numpy arrays; data can also be a file path (.npz,
.npy, IDX, an image folder). Errors raise :class:`TinyqError` with tinyq's message. Long work
releases the GIL and shows a progress bar when ``tqdm`` is installed (``progress=False`` turns it
off).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _tinyq
from ._tinyq import TinyqError

__version__ = _tinyq.__version__
__all__ = ["load", "quantize", "debug", "train", "Model", "DebugReport", "TinyqError", "supported_onnx_ops"]

PathLike = Union[str, "os.PathLike[str]"]
ArrayLike = Any

# The name in-memory data carries in messages.
_ARRAYS = "<arrays>"


def _raw(a: np.ndarray):
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder not in ("=", "|"):
        a = a.astype(a.dtype.newbyteorder("="))
    return (str(a.dtype), list(a.shape), a.tobytes())


def _array(raw) -> np.ndarray:
    dtype, shape, data = raw
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _is_path(v: Any) -> bool:
    return isinstance(v, (str, os.PathLike))


def _data(x: Any, y: Any = None, name: str = _ARRAYS):
    """(Data, input keys, labels key) for a path, an array, a sequence of arrays (one per model
    input) or a mapping of named arrays; `y` is a labels array or, for a file, its key."""
    if _is_path(x):
        if y is not None and not isinstance(y, str):
            raise TinyqError("with data from a file, y names the labels array in it (e.g. y='y')")
        return _tinyq.Data.file(os.fspath(x)), [], (y or "y")
    if isinstance(x, Mapping):
        arrays = [(k, *_raw(np.asarray(v))) for k, v in x.items()]
        keys = list(x.keys())
    elif isinstance(x, (list, tuple)):
        arrays = [(f"x{k}", *_raw(np.asarray(v))) for k, v in enumerate(x)]
        keys = [a[0] for a in arrays]
    else:
        arrays = [("x", *_raw(np.asarray(x)))]
        keys = ["x"]
    label_key = None
    if y is not None:
        if isinstance(y, str):
            raise TinyqError("with arrays in memory, y is the labels array itself")
        label_key = "__y__"
        arrays.append((label_key, *_raw(np.asarray(y))))
    return _tinyq.Data.arrays(name, arrays), keys, label_key


class _Bars:
    """Progress callback: tqdm bars when tqdm is installed, else nothing."""

    def __init__(self):
        self.bar = None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self.tqdm = tqdm

    def __call__(self, event: str, stage: str, n: int) -> None:
        if self.tqdm is None:
            return
        if event == "begin":
            self.close()
            self.bar = self.tqdm(total=n, desc=stage, unit="sample", leave=False)
        elif event == "advance" and self.bar is not None:
            self.bar.update(n - self.bar.n)
        elif event == "end":
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _progress(on: bool):
    return _Bars() if on else None


class Model:
    """A model: float (.onnx / .tflite) or INT8 (.tflite, loaded or made by :func:`quantize`)."""

    def __init__(self, native: "_tinyq.Model", outcome: Optional[Dict[str, Any]] = None):
        self._m = native
        self._summary = json.loads(native.summary_json())
        #: For a model made by :func:`quantize`: what ``tinyq quantize --json`` reports
        #: (ranges, flash split, metrics, budget steps), else None.
        self.outcome = outcome

    @property
    def path(self) -> str:
        """The file the model came from (or the name it carries)."""
        return self._m.path

    @property
    def inputs(self) -> List[Dict[str, Any]]:
        """The model inputs: ``{"name", "shape", "dtype"}`` each."""
        return self._summary["inputs"]

    @property
    def outputs(self) -> List[Dict[str, Any]]:
        """The model outputs: ``{"name", "shape", "dtype"}`` each."""
        return self._summary["outputs"]

    @property
    def layers(self) -> List[Dict[str, Any]]:
        """The layers as ``tinyq inspect`` lists them (name, op, output shape, MACs, parameters)."""
        return self._summary["layers"]

    @property
    def metrics(self) -> Optional[Dict[str, Any]]:
        """FP32 and INT8 metric of a quantized model scored on ``data`` (None otherwise)."""
        return None if self.outcome is None else self.outcome.get("metrics")

    def run(self, x: ArrayLike, progress: bool = True) -> Union[np.ndarray, List[np.ndarray]]:
        """Runs a batch (or one sample) through the model: float data for a float model, int8 data
        or float data (quantized as TFLite does) for an INT8 one. Returns the output array, or a
        list of them for a model with several outputs — the arrays ``tinyq run`` writes."""
        data, keys, _ = _data(x)
        out = [_array(r) for r in self._m.run(data, keys, _progress(progress))]
        return out[0] if len(out) == 1 else out

    def eval(self, x: ArrayLike, y: Any = None, metric: Optional[str] = None, progress: bool = True) -> Dict[str, Any]:
        """The metric (top1, rmse or auc; default from the labels) on a labelled set:
        ``{"metric", "value", "samples"}``, as ``tinyq eval``."""
        data, keys, label_key = _data(x, y)
        if label_key is None:
            raise TinyqError("eval needs the labels: y=array (or, for a file, the name of its labels array)")
        name, value, samples = self._m.eval(data, keys, label_key, metric, _progress(progress))
        return {"metric": name, "value": value, "samples": samples}

    def to_bytes(self) -> bytes:
        """The .tflite file's bytes."""
        return self._m.to_bytes()

    def save(self, path: PathLike) -> None:
        """Writes the .tflite file."""
        self._m.save(os.fspath(path))

    def report(
        self,
        device: Optional[str] = None,
        ram_budget: Optional[str] = None,
        flash_budget: Optional[str] = None,
        pointer_width: int = 32,
        kernels: str = "reference",
    ) -> Dict[str, Any]:
        """Flash, TFLM arena, MACs and per-layer footprint, and the fit on a board or budgets:
        the dict ``tinyq report --json`` prints (``fits``, ``overruns``)."""
        return json.loads(self._m.report_json(pointer_width, kernels, device, ram_budget, flash_budget))

    def export_c(self, dir: PathLike, name: Optional[str] = None, pointer_width: int = 32, kernels: str = "reference") -> List[str]:
        """C sources for TFLite Micro (model data, op resolver, arena size, examples) in ``dir``,
        as ``tinyq export``; returns the files written."""
        return self._m.export_c(os.fspath(dir), name, pointer_width, kernels)

    def __repr__(self) -> str:
        return f"<tinyq.Model {self.path}: {len(self.layers)} layers>"


def load(model: Union[PathLike, bytes], input_shapes: Optional[Mapping[str, Sequence[int]]] = None) -> Model:
    """Loads a model from a .onnx / .tflite file or from .tflite bytes. ``input_shapes`` fixes
    dynamic input axes, e.g. ``{"x": [1, 3, 224, 224]}``."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return Model(_tinyq.Model.from_bytes(bytes(model), "<bytes>.tflite"))
    shapes = [(k, list(v)) for k, v in (input_shapes or {}).items()]
    return Model(_tinyq.Model.load(os.fspath(model), shapes))


def _int8_name(model: Model) -> str:
    stem = os.path.splitext(os.path.basename(model.path))[0]
    return f"{stem}_int8.tflite"


def quantize(
    model: Union[Model, PathLike],
    calib: ArrayLike,
    data: Optional[ArrayLike] = None,
    y: Any = None,
    *,
    calibration: str = "auto",
    per_tensor: Union[bool, str] = False,
    io: str = "int8",
    metric: Optional[str] = None,
    max_drop: Optional[float] = None,
    tune: Optional[ArrayLike] = None,
    tune_y: Any = None,
    allow_float: bool = False,
    int16: Union[bool, Sequence[str]] = (),
    keep_float: Sequence[str] = (),
    bias_correction: bool = False,
    equalize: bool = False,
    corrections: bool = True,
    adaround: bool = False,
    weights: str = "int8",
    kernels: Optional[str] = None,
    calib_samples: Optional[int] = None,
    max_candidates: int = 24,
    progress: bool = True,
) -> Model:
    """Post-training quantization to a fully-integer INT8 .tflite, as ``tinyq quantize``.

    ``calib``: calibration samples (array, arrays per input, or a file). ``data``/``y``: a labelled
    set to score FP32 against INT8 (``.metrics``) and for ``max_drop``, the largest allowed drop
    (points for top1/auc, % of FP32 for rmse), searched with per-tensor calibration, int16
    activations (``int16=False`` turns that off) and, with ``allow_float``, float layers.
    ``per_tensor``: True/"all" or "dense". ``int16``: layer names, or "all"/True to run every layer
    that can with int16 activations. ``corrections=False`` is ``--no-corrections`` (by default
    equalization, AdaRound and bias correction are each kept only where they lower the output
    error on the calibration set); ``adaround`` forces AdaRound. ``weights``: "int8", "int4" (conv,
    depthwise and fully connected weights as TFLite INT4, AdaRound on unless ``corrections=False``)
    or "mixed" (int4 per layer where ``max_drop`` allows it, as ``--weights mixed``). ``kernels``:
    the TFLM kernels the file is for, "reference" or "cmsis-nn" (as ``--kernels``: by default int4
    layers CMSIS-NN would compute differently keep int8 weights). The result's
    ``.outcome`` holds what ``--json`` reports."""
    if not isinstance(model, Model):
        model = load(model)
    cdata, ckeys, _ = _data(calib, name="<calib>")
    pt = {False: None, True: "all"}.get(per_tensor, per_tensor) if isinstance(per_tensor, bool) else per_tensor
    search_int16 = int16 is not False
    layers16 = ["all"] if int16 is True else ([] if int16 is False else list(int16))
    if max_drop is not None and layers16:
        raise TinyqError("int16 names layers for plain quantization; with max_drop the search picks them (int16=False turns it off)")
    eval_data, eval_x, eval_y = None, "x", "y"
    if data is not None:
        if not _is_path(data) and not isinstance(data, np.ndarray) and not hasattr(data, "__array__"):
            raise TinyqError("data: one array (or a file): the labelled set of a one-input model")
        eval_data, keys, eval_y = _data(data, y, name="<data>")
        if eval_y is None:
            raise TinyqError("data needs its labels: y=array (or, for a file, the name of its labels array)")
        eval_x = keys[0] if keys else "x"
    tune_data = None
    if tune is not None:
        tune_data, _, tune_key = _data(tune, tune_y, name="<tune>")
        if not _is_path(tune) and tune_key != eval_y:
            raise TinyqError("tune: give its labels as tune_y")
    native, outcome = _tinyq.quantize(
        model._m, cdata, ckeys, calib_samples, calibration, pt, io, bias_correction, equalize,
        corrections, adaround, weights, kernels, list(keep_float), layers16, eval_data, eval_x, eval_y, metric, max_drop, tune_data,
        allow_float, search_int16, max_candidates, _int8_name(model), _progress(progress),
    )
    return Model(native, json.loads(outcome))


class DebugReport:
    """Per-layer error of an INT8 model against its float original, as ``tinyq debug``."""

    def __init__(self, native: "_tinyq.DebugReport"):
        self._r = native
        self._data = json.loads(native.to_json())

    def to_dict(self) -> Dict[str, Any]:
        """Everything ``tinyq debug --json`` prints."""
        return self._data

    @property
    def layers(self) -> List[Dict[str, Any]]:
        """One row per layer (tensor, op, SQNR, cosine, errors in LSB, clipping, …), in execution order."""
        return self._data["layers"]

    @property
    def ranking(self) -> List[str]:
        """Tensor names, the layers that hurt most first."""
        return self._data["ranking"]

    @property
    def output_sqnr_db(self) -> float:
        return self._data["output_sqnr_db"]

    @property
    def findings(self) -> List[str]:
        return self._data["findings"]

    def to_pandas(self):
        """The per-layer table as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("to_pandas needs pandas (pip install pandas); .layers has the same rows as dicts") from e
        return pd.DataFrame(self.layers)

    def to_html(self, path: PathLike) -> None:
        """Writes the self-contained HTML report with plots (``tinyq debug --html``)."""
        self._r.to_html(os.fspath(path))


def debug(fp32: Union[Model, PathLike], int8: Union[Model, PathLike], data: ArrayLike, limit: Optional[int] = None) -> DebugReport:
    """Per-layer error of ``int8`` against its float original ``fp32`` on ``data``."""
    fp32 = fp32 if isinstance(fp32, Model) else load(fp32)
    int8 = int8 if isinstance(int8, Model) else load(int8)
    d, keys, _ = _data(data)
    return DebugReport(_tinyq.debug(fp32._m, int8._m, d, keys, limit))


def train(
    model: Union[Model, PathLike],
    data: ArrayLike,
    y: Any = None,
    *,
    epochs: int,
    distill: bool = False,
    val: Optional[ArrayLike] = None,
    val_y: Any = None,
    batch_size: int = 32,
    lr: Optional[float] = None,
    optimizer: str = "adam",
    momentum: float = 0.9,
    schedule: str = "cosine",
    loss: Optional[str] = None,
    temperature: float = 1.0,
    ranges: str = "learned",
    seed: int = 0,
    metric: Optional[str] = None,
    calib: Optional[ArrayLike] = None,
    calib_samples: int = 500,
    calibration: str = "auto",
    per_tensor: Union[bool, str] = False,
    weights: str = "int8",
    io: str = "int8",
    limit: Optional[int] = None,
    save_fp32: Optional[PathLike] = None,
    progress: bool = True,
) -> Model:
    """Quantization-aware training, as ``tinyq train``: fine-tunes with INT8 rounding simulated,
    on labels ``y`` or, with ``distill=True``, by matching the float model's own outputs; the best
    epoch on ``val``/``val_y`` is kept. Returns the INT8 model; its ``.outcome`` is the training
    report (per-epoch rows, FP32 / PTQ / best validation figures). ``save_fp32`` also writes the
    fine-tuned float model as ONNX. ``weights="int4"`` trains with int4 conv, depthwise and fully
    connected weights simulated as the file stores them. The same seed and options give the same
    file."""
    if not isinstance(model, Model):
        model = load(model)
    d, keys, label_key = _data(data, None if distill else y, name="<data>")
    if distill:
        label_key = None
    elif label_key is None:
        raise TinyqError("train needs labels: y=array (or, for a file, the name of its labels array), or distill=True")
    cdata = _data(calib, name="<calib>")[0] if calib is not None else None
    vdata, vkeys, vy = (None, ["x"], "y")
    if val is not None:
        vdata, vkeys, vy = _data(val, val_y, name="<val>")
        if vy is None:
            raise TinyqError("val needs its labels: val_y=array (or, for a file, the name of its labels array)")
    pt = ("all" if per_tensor else None) if isinstance(per_tensor, bool) else per_tensor
    native, report = _tinyq.train(
        model._m, d, keys, label_key, limit, cdata, calib_samples, vdata, (vkeys or ["x"])[0], vy,
        epochs, batch_size, lr, optimizer, momentum, schedule, loss, temperature, ranges, seed,
        calibration, pt, weights, io, metric, _int8_name(model),
        None if save_fp32 is None else os.fspath(save_fp32), _progress(progress),
    )
    return Model(native, json.loads(report))


def supported_onnx_ops() -> List[Dict[str, Any]]:
    """The ONNX ops tinyq imports, with their opset range."""
    return [{"op": o, "since": s, "until": u} for o, s, u in _tinyq.supported_onnx_ops()]
