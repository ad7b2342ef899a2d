"""ONNX backend node test cases run through `tinyq run`.

The cases ship as Python code in the onnx package (`onnx.backend.test.case.node`); the wheel has
no pre-generated data/node folder, so the selected cases are written to a temporary directory once
per session.

Selected: every node (including nodes of subgraphs) is an ai.onnx op that `tinyq ops --json` lists
with the model's opset inside its since..until range, and every graph input and output is a
float32 tensor. A selected case with several inputs also yields `<name>__const_inputs`, the same
case with every input but the first stored as an initializer (tinyq takes weights as constants).

`onnx_node_passlist.txt` names the cases that must pass (one parametrized test each); the summary
test runs every selected case, prints the count and the failing ones with a one-line reason.

Script mode: `python tests/oracle/test_node_conformance.py --write-passlist` rewrites the pass
list from the current binary (sorted); without the flag it only prints the summary.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest

import oracle_lib

PASSLIST = oracle_lib.ORACLE_DIR / "onnx_node_passlist.txt"
RTOL = 1e-3
ATOL = 1e-4
PASSLIST_HEADER = """\
# ONNX backend node test cases that tinyq's float engine must pass (test_node_conformance.py).
# One case name per line; '#' starts a comment. Regenerate from the current binary with
#   .venv/bin/python tests/oracle/test_node_conformance.py --write-passlist
# and review the diff: a name that disappears is a regression.
"""


def read_passlist(path: Path = PASSLIST) -> list[str]:
    if not path.exists():
        return []
    names = []
    for line in path.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return names


def collect_all_cases():
    """Every node test case of the installed onnx package (silences the generators' warnings)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return collect_testcases("")


def _graph_nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graph_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graph_nodes(g)


def _is_float_tensor(value_info: onnx.ValueInfoProto) -> bool:
    t = value_info.type
    return t.HasField("tensor_type") and t.tensor_type.elem_type == onnx.TensorProto.FLOAT


def selection_reason(case, ops: dict[str, tuple[int, int]]) -> str | None:
    """None when the case is selected, else why not."""
    model = case.model
    opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    opset = opsets[0] if opsets else None
    for node in _graph_nodes(model.graph):
        if node.domain not in ("", "ai.onnx"):
            return f"domain {node.domain}"
        if node.op_type not in ops:
            return f"op {node.op_type} not in tinyq ops"
        since, until = ops[node.op_type]
        if opset is None or not since <= opset <= until:
            return f"op {node.op_type} at opset {opset} outside tinyq's {since}..{until}"
    initializers = {t.name for t in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in initializers]
    if not inputs:
        return "no graph inputs"
    if not all(_is_float_tensor(vi) for vi in [*inputs, *model.graph.output]):
        return "non-float32 input or output"
    for case_inputs, case_outputs in case.data_sets:
        if len(case_inputs) != len(inputs) or len(case_outputs) != len(model.graph.output):
            return "data set does not match graph inputs/outputs"
        arrays = [*case_inputs, *case_outputs]
        if not all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in arrays):
            return "non-float32 data"
    return None


CONST_SUFFIX = "__const_inputs"


@dataclass
class DerivedCase:
    name: str
    model: onnx.ModelProto
    data_sets: list


def with_constant_inputs(case) -> DerivedCase | None:
    """The case with every graph input but the first turned into an initializer.

    tinyq wants weights as constants (TFLite style), while many node cases feed W, B or the second
    operand as graph inputs; this variant still checks the op's numerics.
    """
    initializers = {t.name for t in case.model.graph.initializer}
    inputs = [vi for vi in case.model.graph.input if vi.name not in initializers]
    if len(inputs) < 2 or len(case.data_sets) != 1:
        return None
    (values, outputs), = case.data_sets
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    keep = inputs[0].name
    del model.graph.input[:]
    model.graph.input.extend([inputs[0]])
    for vi, value in zip(inputs[1:], values[1:]):
        model.graph.initializer.append(onnx.numpy_helper.from_array(value, vi.name))
    assert keep == model.graph.input[0].name
    return DerivedCase(case.name + CONST_SUFFIX, model, [([values[0]], outputs)])


@dataclass
class MaterializedCase:
    name: str
    model: Path
    input_names: list[str]
    data_sets: list[tuple[Path, list[np.ndarray]]]  # (inputs npz, expected outputs)


def materialize(case, root: Path) -> MaterializedCase:
    folder = root / case.name
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "model.onnx"
    onnx.save(case.model, str(model_path))
    initializers = {t.name for t in case.model.graph.initializer}
    names = [vi.name for vi in case.model.graph.input if vi.name not in initializers]
    data_sets = []
    for i, (inputs, outputs) in enumerate(case.data_sets):
        npz = folder / f"inputs_{i}.npz"
        np.savez(npz, **dict(zip(names, inputs)))
        data_sets.append((npz, list(outputs)))
    return MaterializedCase(case.name, model_path, names, data_sets)


def compare_output(got: np.ndarray | None, want: np.ndarray, key: str) -> str | None:
    """None when `got` matches `want` (exact shape, |got-want| <= atol + rtol*|want|)."""
    if got is None:
        return f"{key} missing from output npz"
    if got.shape != want.shape:
        return f"{key}: shape {list(got.shape)}, expected {list(want.shape)}"
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    same_nan = np.isnan(g) == np.isnan(w)
    if not np.all(same_nan):
        return f"{key}: NaN pattern differs ({int(np.sum(~same_nan))} elements)"
    finite = ~np.isnan(w)
    with np.errstate(invalid="ignore"):
        excess = np.abs(g - w) - (ATOL + RTOL * np.abs(w))
        equal_inf = np.isinf(w) & (g == w)
    bad = finite & (excess > 0) & ~equal_inf
    if np.any(bad):
        diff = np.abs(g - w)[finite & ~equal_inf]
        return (f"{key}: {int(np.sum(bad))}/{w.size} elements out of tolerance, "
                f"max|diff| {diff.max():.3g}")
    return None


def run_case(binary: Path, mc: MaterializedCase) -> str | None:
    """None when tinyq matches every data set of the case, else a one-line reason."""
    for i, (npz, expected) in enumerate(mc.data_sets):
        out = npz.with_name(f"out_{i}.npz")
        out.unlink(missing_ok=True)
        proc = oracle_lib.run_tinyq(
            binary, "run", mc.model, "--data", npz, "--x", ",".join(mc.input_names), "-o", out
        )
        if proc.returncode != 0 or "panicked" in proc.stderr:
            return oracle_lib.describe_failure(proc)
        if not out.exists():
            return "exit 0 but no output file"
        got = oracle_lib.output_arrays(oracle_lib.load_npz(out), len(expected))
        for k, (g, w) in enumerate(zip(got, expected)):
            problem = compare_output(g, w, "y" if k == 0 else f"y_{k}")
            if problem:
                return problem
    return None


class NodeSuite:
    """Selected cases, materialized on disk, with results computed lazily and cached."""

    def __init__(self, binary: Path, root: Path):
        self.binary = binary
        self.ops = oracle_lib.supported_onnx_ops(binary)
        self.excluded: dict[str, str] = {}
        self.selected: dict[str, MaterializedCase] = {}
        for case in collect_all_cases():
            reason = selection_reason(case, self.ops)
            if reason is not None:
                self.excluded[case.name] = reason
                continue
            self.selected[case.name] = materialize(case, root)
            derived = with_constant_inputs(case)
            if derived is not None:
                self.selected[derived.name] = materialize(derived, root)
        self._results: dict[str, str | None] = {}

    def result(self, name: str) -> str | None:
        if name not in self._results:
            self._results[name] = run_case(self.binary, self.selected[name])
        return self._results[name]

    def all_results(self) -> dict[str, str | None]:
        todo = [n for n in sorted(self.selected) if n not in self._results]
        with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2))) as pool:
            for name, res in zip(todo, pool.map(lambda n: run_case(self.binary, self.selected[n]), todo)):
                self._results[name] = res
        return {n: self._results[n] for n in sorted(self.selected)}


def summary_lines(results: dict[str, str | None], passlist: list[str]) -> list[str]:
    passed = [n for n, r in results.items() if r is None]
    lines = [f"ONNX node conformance: {len(passed)} of {len(results)} selected cases pass "
             f"({len(passlist)} in pass list)"]
    failing = {n: r for n, r in results.items() if r is not None}
    if failing:
        lines.append("selected but failing:")
        lines += [f"  {n}: {r}" for n, r in failing.items()]
    newly = sorted(set(passed) - set(passlist))
    if newly:
        lines.append(f"passing but not in the pass list ({len(newly)}): {' '.join(newly)}")
    return lines


@pytest.fixture(scope="session")
def node_suite(tinyq_bin, tmp_path_factory) -> NodeSuite:
    return NodeSuite(tinyq_bin, tmp_path_factory.mktemp("onnx_node"))


PASSLIST_NAMES = read_passlist()


@pytest.mark.parametrize("name", PASSLIST_NAMES)
def test_listed_case_passes(node_suite, name):
    if name not in node_suite.selected:
        why = node_suite.excluded.get(name, "no such case in this onnx package")
        pytest.fail(f"{name} is in the pass list but not selected: {why}")
    problem = node_suite.result(name)
    assert problem is None, f"{name}: {problem}"


def test_conformance_summary(node_suite):
    results = node_suite.all_results()
    assert results, "no ONNX node test case selected: does `tinyq ops --json` list any op?"
    for line in summary_lines(results, PASSLIST_NAMES):
        print(line)
    regressions = [f"{n}: {results[n]}" for n in PASSLIST_NAMES if results.get(n) is not None]
    unselected = [n for n in PASSLIST_NAMES if n not in results]
    assert not regressions and not unselected, (
        "pass-list cases failing:\n" + "\n".join(regressions + [f"{n}: not selected" for n in unselected])
    )


def main(argv: list[str]) -> int:
    binary = oracle_lib.tinyq_bin()
    if not binary.is_file():
        print(oracle_lib.missing_bin_message(binary), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tinyq_onnx_node_") as tmp:
        suite = NodeSuite(binary, Path(tmp))
        results = suite.all_results()
    for line in summary_lines(results, read_passlist()):
        print(line)
    if "--write-passlist" in argv:
        passed = sorted(n for n, r in results.items() if r is None)
        PASSLIST.write_text(PASSLIST_HEADER + "".join(f"{n}\n" for n in passed))
        print(f"wrote {len(passed)} names to {PASSLIST}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
