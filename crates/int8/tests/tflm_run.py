"""Runs a .tflite model in the TFLM reference interpreter (the `tflite-micro` wheel), one sample
at a time.

    python tflm_run.py MODEL INPUT.npy OUTPUT.npy
        INPUT holds N samples stacked along a new first axis, each with as many elements as the
        model's input 0; OUTPUT receives output 0 of every sample, stacked the same way.

    python tflm_run.py --all-tensors MODEL INPUT.npy OUTPUT_DIR
        Runs with kPreserveAllTensors and writes, for sample s and every int8 tensor i of
        subgraph 0, OUTPUT_DIR/s{s}_t{i}.npy (flat), plus OUTPUT_DIR/names.txt (one tensor name
        a line, by index).
"""

import os
import sys

import numpy as np
from tflite_micro.python.tflite_micro import runtime


def interpreter(model_bytes, preserve_all=False):
    if preserve_all:
        config = runtime.InterpreterConfig.kPreserveAllTensors
        return runtime.Interpreter.from_bytes(model_bytes, intrepreter_config=config)
    return runtime.Interpreter.from_bytes(model_bytes)


def outputs(model_path, input_path, output_path):
    with open(model_path, "rb") as f:
        it = interpreter(f.read())
    shape = tuple(it.get_input_details(0)["shape"])
    results = []
    for sample in np.load(input_path):
        it.set_input(np.ascontiguousarray(sample).reshape(shape), 0)
        it.invoke()
        results.append(np.array(it.get_output(0), copy=True))
    np.save(output_path, np.stack(results))


def all_tensors(model_path, input_path, output_dir):
    with open(model_path, "rb") as f:
        model_bytes = f.read()
    it = interpreter(model_bytes, preserve_all=True)
    tensors = runtime.convert_bytearray_to_object(bytearray(model_bytes)).subgraphs[0].tensors
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "names.txt"), "w", encoding="utf-8") as f:
        for t in tensors:
            f.write(t.name.decode("utf-8") + "\n")
    shape = tuple(it.get_input_details(0)["shape"])
    for s, sample in enumerate(np.load(input_path)):
        it.set_input(np.ascontiguousarray(sample).reshape(shape), 0)
        it.invoke()
        for i in range(len(tensors)):
            data = np.asarray(it.GetTensor(i, 0)["tensor_data"])
            if data.dtype == np.int8:
                np.save(os.path.join(output_dir, f"s{s}_t{i}.npy"), data.reshape(-1))


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "--all-tensors":
        all_tensors(*args[1:])
    elif len(args) == 3:
        outputs(*args)
    else:
        sys.exit(__doc__)
