"""Write a small int8 .tflite whose ops all read graph inputs directly, to spot-check the kernels
the published models do not exercise (LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, MUL, SUB, ADD with
broadcast, QUANTIZE int8->int8, MEAN, MAX_POOL_2D, SOFTMAX).

    .venv/bin/python crates/kernels/scripts/make_sweep_model.py OUT.tflite SEED
    .venv/bin/python crates/kernels/scripts/dump_tflm_ops.py OPS.txt OUT.tflite
    cargo run -p tinyq-kernels --example tflm_replay -- OPS.txt

Input 0 holds every int8 value once ([1, 256]) when fed an arange; the dump script feeds random
values, so run it with several seeds.
"""

import sys

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

B = schema.BuiltinOperator
O = schema.BuiltinOptions


def main():
    out_path, seed = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(seed)
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    graph = schema.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs = [], [], [], []
    opcodes = {}

    def qparams(scale, zero_point):
        q = schema.QuantizationParametersT()
        q.scale = [float(np.float32(scale))]
        q.zeroPoint = [int(zero_point)]
        return q

    def random_q():
        return qparams(np.exp(rng.uniform(np.log(0.005), np.log(0.5))), rng.integers(-128, 128))

    def tensor(shape, q=None, dtype=schema.TensorType.INT8, data=None):
        t = schema.TensorT()
        t.shape = np.array(shape, dtype=np.int32)
        t.type = dtype
        t.name = ("t%d" % len(graph.tensors)).encode()
        t.quantization = q
        if data is None:
            t.buffer = 0
        else:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(np.asarray(data).tobytes(), dtype=np.uint8)
            model.buffers.append(buffer)
            t.buffer = len(model.buffers) - 1
        graph.tensors.append(t)
        return len(graph.tensors) - 1

    def op(code, inputs, out_shape, out_q, options_type=0, options=None):
        if code not in opcodes:
            opcodes[code] = len(opcodes)
        o = schema.OperatorT()
        o.opcodeIndex = opcodes[code]
        o.inputs = list(inputs)
        out = tensor(out_shape, out_q)
        o.outputs = [out]
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        graph.operators.append(o)
        graph.outputs.append(out)
        return out

    x = tensor([1, 256], random_q())
    y = tensor([1, 256], random_q())
    row = tensor([1, 1, 256], random_q())
    image = tensor([1, 5, 6, 8], random_q())
    graph.inputs = [x, y, row, image]

    op(B.LOGISTIC, [x], [1, 256], qparams(1 / 256, -128))
    op(B.TANH, [x], [1, 256], qparams(1 / 128, 0))
    hs_q = graph.tensors[x].quantization
    op(B.HARD_SWISH, [x], [1, 256], qparams(hs_q.scale[0] * rng.uniform(0.3, 1.2), rng.integers(-128, -60)))
    leaky = schema.LeakyReluOptionsT()
    leaky.alpha = float(rng.uniform(0.01, 0.5))
    op(B.LEAKY_RELU, [x], [1, 256], random_q(), O.LeakyReluOptions, leaky)
    for code, options_type, cls in ((B.ADD, O.AddOptions, schema.AddOptionsT),
                                    (B.SUB, O.SubOptions, schema.SubOptionsT),
                                    (B.MUL, O.MulOptions, schema.MulOptionsT)):
        options = cls()
        options.fusedActivationFunction = int(rng.integers(0, 2))
        op(code, [x, y], [1, 256], random_q(), options_type, options)
    channel_constant = tensor([8], random_q(), data=rng.integers(-128, 128, 8).astype(np.int8))
    op(B.ADD, [image, channel_constant], [1, 5, 6, 8], random_q(), O.AddOptions, schema.AddOptionsT())
    op(B.QUANTIZE, [x], [1, 256], random_q())
    softmax = schema.SoftmaxOptionsT()
    softmax.beta = 1.0
    op(B.SOFTMAX, [row], [1, 1, 256], qparams(1 / 256, -128), O.SoftmaxOptions, softmax)
    for axes, keep, shape in (([1, 2], True, [1, 1, 1, 8]), ([3], False, [1, 5, 6]), ([0, 2], False, [5, 8])):
        reducer = schema.ReducerOptionsT()
        reducer.keepDims = keep
        axis = tensor([len(axes)], None, schema.TensorType.INT32, np.array(axes, dtype=np.int32))
        op(B.MEAN, [image, axis], shape, random_q(), O.ReducerOptions, reducer)
    pool = schema.Pool2DOptionsT()
    pool.padding, pool.strideW, pool.strideH, pool.filterWidth, pool.filterHeight = 0, 2, 2, 3, 2
    pool.fusedActivationFunction = 1
    image_q = graph.tensors[image].quantization
    op(B.MAX_POOL_2D, [image], [1, 3, 3, 8], qparams(image_q.scale[0], image_q.zeroPoint[0]), O.Pool2DOptions, pool)
    pool2 = schema.Pool2DOptionsT()
    pool2.padding, pool2.strideW, pool2.strideH, pool2.filterWidth, pool2.filterHeight = 0, 2, 1, 3, 3
    op(B.AVERAGE_POOL_2D, [image], [1, 5, 3, 8], qparams(image_q.scale[0], image_q.zeroPoint[0]), O.Pool2DOptions, pool2)

    model.operatorCodes = []
    for code, _ in sorted(opcodes.items(), key=lambda kv: kv[1]):
        oc = schema.OperatorCodeT()
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
        oc.version = 1
        model.operatorCodes.append(oc)
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    open(out_path, "wb").write(builder.Output())


if __name__ == "__main__":
    main()
