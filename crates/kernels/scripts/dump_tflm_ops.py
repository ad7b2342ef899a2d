"""Run int8 .tflite models in the TFLM interpreter and dump every operator's inputs, outputs,
quantization and builtin options, so that `cargo run -p tinyq-kernels --example tflm_replay`
can re-run each op with this crate's kernels and compare bytes.

This is a spot check, not the project's conformance suite. Usage (from the workspace root):

    .venv/bin/python crates/kernels/scripts/dump_tflm_ops.py OUT.txt MODEL.tflite [MODEL.tflite ...]
    cargo run -p tinyq-kernels --example tflm_replay -- OUT.txt

Line format, whitespace separated:
    OP <model> <index> <BUILTIN_NAME>
    OPT <name> i <int>   |   OPT <name> f <f32 bits as hex>
    T <in|out> <slot> <dtype> <rank> <dims..> <n_scales> <scale bits..> <n_zps> <zps..> <qdim> <n> <values..>
    END
Absent optional inputs are written as `T in <slot> none`.
"""

import struct
import sys

import numpy as np
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

OP_NAMES = {v: k for k, v in schema.BuiltinOperator.__dict__.items() if not k.startswith("_")}
TYPE_NAMES = {9: "i8", 2: "i32", 0: "f32", 7: "i16", 4: "i64"}


def f32_bits(x):
    return "%08x" % struct.unpack("<I", struct.pack("<f", float(x)))[0]


def tensor_line(role, slot, tensor, data):
    q = tensor.quantization
    scales = [] if q is None or q.scale is None else list(q.scale)
    zps = [] if q is None or q.zeroPoint is None else list(q.zeroPoint)
    qdim = 0 if q is None else q.quantizedDimension
    shape = [] if tensor.shape is None else [int(d) for d in tensor.shape]
    values = np.asarray(data).reshape(-1)
    if values.dtype == np.float32:
        values = [f32_bits(v) for v in values]
    else:
        values = [str(int(v)) for v in values]
    parts = ["T", role, str(slot), TYPE_NAMES.get(tensor.type, "t%d" % tensor.type), str(len(shape))]
    parts += [str(d) for d in shape]
    parts += [str(len(scales))] + [f32_bits(s) for s in scales]
    parts += [str(len(zps))] + [str(int(z)) for z in zps]
    parts += [str(qdim), str(len(values))] + values
    return " ".join(parts)


def dump_model(path, out, seed=0):
    model_bytes = open(path, "rb").read()
    model = runtime.convert_bytearray_to_object(model_bytes)
    graph = model.subgraphs[0]
    interpreter = runtime.Interpreter.from_bytes(
        model_bytes, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors
    )
    rng = np.random.default_rng(seed)
    for i in range(len(graph.inputs)):
        details = interpreter.get_input_details(i)
        info = np.iinfo(details["dtype"]) if np.issubdtype(details["dtype"], np.integer) else None
        if info is None:
            data = rng.standard_normal(details["shape"]).astype(details["dtype"])
        else:
            data = rng.integers(info.min, info.max + 1, size=details["shape"]).astype(details["dtype"])
        interpreter.set_input(data, i)
    interpreter.invoke()
    for index, op in enumerate(graph.operators):
        code = runtime.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
        out.write("OP %s %d %s\n" % (path.replace(" ", "_"), index, OP_NAMES[code]))
        if op.builtinOptions is not None:
            for name, value in vars(op.builtinOptions).items():
                if isinstance(value, (bool, np.bool_)):
                    out.write("OPT %s i %d\n" % (name, int(value)))
                elif isinstance(value, (int, np.integer)):
                    out.write("OPT %s i %d\n" % (name, value))
                elif isinstance(value, (float, np.floating)):
                    out.write("OPT %s f %s\n" % (name, f32_bits(value)))
        for role, indices in (("in", op.inputs), ("out", op.outputs)):
            for slot, t in enumerate(indices):
                if t < 0:
                    out.write("T %s %d none\n" % (role, slot))
                    continue
                data = interpreter.GetTensor(int(t), 0)["tensor_data"]
                out.write(tensor_line(role, slot, graph.tensors[t], data) + "\n")
        out.write("END\n")


def main():
    with open(sys.argv[1], "w") as out:
        for seed, path in enumerate(sys.argv[2:]):
            dump_model(path, out, seed)


if __name__ == "__main__":
    main()
