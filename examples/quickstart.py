"""tinyq from Python in five minutes: the demo MNIST model quantized to INT8, evaluated, debugged
and exported as C sources for TensorFlow Lite Micro. Nothing is trained.

    python examples/quickstart.py [OUTPUT_FOLDER]     # default: target/quickstart
"""

import sys
from pathlib import Path

import numpy as np

import tinyq

repo = Path(__file__).resolve().parent.parent
out = Path(sys.argv[1]) if len(sys.argv) > 1 else repo / "target" / "quickstart"
out.mkdir(parents=True, exist_ok=True)

# 1. The FP32 model and 200 MNIST test images (x: [200,1,28,28] float32, y: labels, x_calib: 100
#    other images for calibration).
fp32 = tinyq.load(repo / "fixtures" / "mnist_dscnn" / "model.onnx")
data = np.load(repo / "fixtures" / "mnist_dscnn" / "mnist_test_200.npz")
x, y = data["x"], data["y"]
print(f"model: {fp32.inputs[0]['shape']} -> {fp32.outputs[0]['shape']}, {len(fp32.layers)} layers")

# 2. Quantize: calibrated on x_calib, FP32 and INT8 scored side by side on (x, y).
int8 = tinyq.quantize(fp32, calib=data["x_calib"], data=x, y=y)
m = int8.metrics
print(f"{m['metric']}: FP32 {m['fp32']:.4f} -> INT8 {m['int8']:.4f} on {m['samples']} images")
int8.save(out / "mnist_int8.tflite")

# 3. Run and evaluate the INT8 model as TFLite Micro computes it (float input is quantized the
#    way TFLite's QUANTIZE does).
logits = int8.run(x[:8])
print("predicted:", logits.argmax(axis=1), "labels:", y[:8])
print("INT8 eval:", int8.eval(x, y))

# 4. Does it fit a board? Flash, the TFLM arena and the check against the board's memories.
r = int8.report(device="Nano 33 BLE Sense")
print(f"flash {r['flash_bytes']} B, arena {r['arena_bytes']} B, fits: {r['fits']}")

# 5. Which layers lose accuracy: per-layer SQNR, worst first, and the HTML report with plots.
report = tinyq.debug(fp32, int8, x[:100])
for name in report.ranking[:3]:
    row = next(layer for layer in report.layers if layer["tensor"] == name)
    print(f"  {name}: SQNR {row['sqnr_db']:.1f} dB")
report.to_html(out / "debug.html")

# 6. C sources for TFLite Micro / Arduino, with the exact arena size.
files = int8.export_c(out / "mnist_c", name="mnist")
print(f"wrote {out / 'mnist_int8.tflite'}, {out / 'debug.html'} and {len(files)} files in {out / 'mnist_c'}")
