"""Manual oracle check (not run by CI): every shared .tflite is read and re-written by tinyq, and
the written file must load and give the same outputs as the original in LiteRT and in TFLM.

    cargo build -p tinyq-tflite --example tflite_roundtrip
    .venv/bin/python crates/tflite/scripts/oracle_check.py [../shared/models]
"""
import glob, os, subprocess, sys, tempfile
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tflite_micro.python.tflite_micro import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
EXE = os.path.join(ROOT, "target", "debug", "examples", "tflite_roundtrip")
MODELS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "models")


def sample_inputs(detail, n, rng):
    shape, dtype = detail["shape"], detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return [rng.integers(info.min, info.max + 1, size=shape).astype(dtype) for _ in range(n)]
    return [rng.uniform(0, 6.28, size=shape).astype(dtype) for _ in range(n)]


def run_litert(path, xs):
    it = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    outs = []
    for x in xs:
        it.set_tensor(i["index"], x)
        it.invoke()
        outs.append(it.get_tensor(o["index"]).copy())
    return outs


def run_tflm(path, xs):
    it = runtime.Interpreter.from_bytes(open(path, "rb").read())
    outs = []
    for x in xs:
        it.set_input(x, 0)
        it.invoke()
        outs.append(it.get_output(0).copy())
    return outs


def main():
    rng = np.random.default_rng(0)
    failures = 0
    files = sorted(glob.glob(os.path.join(MODELS, "*", "*.tflite")))
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            name = os.path.relpath(f, MODELS)
            out = os.path.join(tmp, name.replace("/", "_"))
            r = subprocess.run([EXE, f, out], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{name}: tinyq refused: {r.stderr.strip()}")
                continue
            xs = sample_inputs(Interpreter(model_path=f).get_input_details()[0], 8, rng)
            for runtime_name, run in (("LiteRT", run_litert), ("TFLM", run_tflm)):
                try:
                    want, got = run(f, xs), run(out, xs)
                except Exception as e:  # a runtime refusing the original is not our failure
                    print(f"{name}: {runtime_name}: error: {e}")
                    failures += 1
                    continue
                same = all(np.array_equal(a, b) for a, b in zip(want, got))
                print(f"{name}: {runtime_name}: {'identical outputs' if same else 'OUTPUTS DIFFER'} on {len(xs)} inputs")
                failures += not same
    print(f"{failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
