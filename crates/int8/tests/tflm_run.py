"""Runs a .tflite model in the TFLM reference interpreter (the `tflite-micro` wheel), one sample
at a time: `python tflm_run.py MODEL INPUT.npy OUTPUT.npy`. INPUT holds N samples stacked along a
new first axis, each with as many elements as the model's input 0; OUTPUT receives output 0 stacked the same
way, in its own dtype."""

import sys

import numpy as np
from tflite_micro.python.tflite_micro import runtime


def main(model_path, input_path, output_path):
    with open(model_path, "rb") as f:
        interpreter = runtime.Interpreter.from_bytes(f.read())
    shape = tuple(interpreter.get_input_details(0)["shape"])
    samples = np.load(input_path)
    outputs = []
    for sample in samples:
        interpreter.set_input(np.ascontiguousarray(sample).reshape(shape), 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0), copy=True))
    np.save(output_path, np.stack(outputs))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: tflm_run.py MODEL INPUT.npy OUTPUT.npy")
    main(*sys.argv[1:])
