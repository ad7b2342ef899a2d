"""TFLM built natively for this host: the smallest arena a model needs on a 64-bit build.

Compiles a vendored TFLM tree (reference kernels; `../shared/vendor/tflm-ref`) with the host
g++, TFLM's core and every reference kernel, into `host_arena` (bench/host_tflm/host_arena.cc):
a plain `MicroAllocator` build, as a firmware build of the same sources on a 64-bit target. The
op resolver registers every `MicroMutableOpResolver::AddX()` that takes no argument, read from
the tree's header. Objects are cached (TINYQ_CACHE_DIR or ~/.cache/tinyq, keyed by the source's
path, size and mtime and the flags), so only the first build is slow.

    python bench/host_tflm.py --tflm DIR MODEL.tflite...   (one JSON object: model -> sizes)

Used by bench/arena_sweep.py (`--host-native DIR`) to compare `tinyq report --pointer-width 64
--tflm-build firmware` with what this build needs.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent / "host_tflm"
CORE_DIRS = [
    "tensorflow/lite/micro",
    "tensorflow/lite/micro/arena_allocator",
    "tensorflow/lite/micro/memory_planner",
    "tensorflow/lite/micro/tflite_bridge",
    "tensorflow/lite/micro/kernels",
    "tensorflow/lite/core/api",
    "tensorflow/lite/core/c",
    "tensorflow/lite/kernels",
    "tensorflow/lite/kernels/internal",
    "tensorflow/lite/kernels/internal/reference",
    "tensorflow/compiler/mlir/lite/core/api",
    "tensorflow/compiler/mlir/lite/schema",
]
# Test doubles and helpers not part of a firmware build.
SKIP = re.compile(r"(_test|test_helper\w*|fake_\w+|mock_\w+|kernel_runner|ethosu)\.cc$")
FLAGS = ["-std=c++17", "-O1", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics",
         "-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON"]


def cache_root() -> Path:
    base = os.environ.get("TINYQ_CACHE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "tinyq"


def includes(tree: Path):
    return [f"-I{tree / d}" for d in ("", "third_party", "third_party/gemmlowp",
                                      "third_party/flatbuffers/include", "third_party/ruy")] + [f"-I{HERE}"]


def sources(tree: Path):
    out = []
    for d in CORE_DIRS:
        out += sorted(p for p in (tree / d).glob("*.cc") if not SKIP.search(p.name))
    return out


def resolver_methods(tree: Path):
    """`AddX` methods of MicroMutableOpResolver that register a builtin operator (custom and
    signal operators are left out), read from the tree's header."""
    text = (tree / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    methods = set()
    for chunk in text.split("TfLiteStatus ")[1:]:
        m = re.match(r"(Add\w+)\(", chunk)
        params = chunk[m.end():].split(")")[0] if m else ""
        if m and "return AddBuiltin(" in chunk and (not params.strip() or re.search(r"=\s", params)):
            methods.add(m.group(1))
    return sorted(methods)


def compile_one(src: Path, tree: Path, objdir: Path):
    st = src.stat()
    key = hashlib.sha256(f"{src}|{st.st_size}|{st.st_mtime_ns}|{' '.join(FLAGS)}".encode()).hexdigest()[:16]
    obj = objdir / f"{src.stem}-{key}.o"
    if not obj.exists():
        tmp = obj.with_suffix(".tmp.o")
        r = subprocess.run(["g++", *FLAGS, *includes(tree), "-c", str(src), "-o", str(tmp)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{src}: {r.stderr[-3000:]}")
        tmp.rename(obj)
    return obj


def build(tree: Path, jobs: int = 2) -> Path:
    tree = tree.resolve()
    tag = hashlib.sha256(str(tree).encode()).hexdigest()[:12]
    root = cache_root() / f"host-tflm-{tag}"
    objdir = root / "obj"
    objdir.mkdir(parents=True, exist_ok=True)
    methods = resolver_methods(tree)
    body = "".join(f"  r.{m}();\n" for m in methods)
    text = (f"// Written by bench/host_tflm.py from micro_mutable_op_resolver.h.\n"
            f"constexpr unsigned kHostOps = {len(methods)};\n"
            f"template <typename R>\nvoid AddHostOps(R& r) {{\n{body}}}\n")
    inc_cached = root / "host_ops.inc"
    if not inc_cached.exists() or inc_cached.read_text() != text:
        inc_cached.write_text(text)
    srcs = sources(tree) + [HERE / "host_platform.cc"]
    with ThreadPoolExecutor(jobs) as pool:
        objs = list(pool.map(lambda s: compile_one(s, tree, objdir), srcs))
    main_obj = root / "host_arena.o"
    r = subprocess.run(["g++", *FLAGS, *includes(tree), f"-I{root}", "-c", str(HERE / "host_arena.cc"),
                        "-o", str(main_obj)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"host_arena.cc: {r.stderr[-3000:]}")
    exe = root / "host_arena"
    r = subprocess.run(["g++", "-o", str(exe), str(main_obj), *map(str, objs)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"link: {r.stderr[-3000:]}")
    return exe


def minimum(exe: Path, model) -> dict:
    r = subprocess.run([str(exe), str(model)], capture_output=True, text=True, timeout=600)
    if not r.stdout.strip():
        return {"min_arena": None, "arena_used": None, "error": r.stderr[-500:] or f"exit {r.returncode}"}
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tflm", required=True, help="a TFLM tree with reference kernels")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    exe = build(Path(a.tflm), a.jobs)
    print(json.dumps({str(m): minimum(exe, m) for m in a.models}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
