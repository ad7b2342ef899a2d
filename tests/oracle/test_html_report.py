"""`tinyq debug --html`: the report opens in headless Chromium with no console message and nothing
in its error box, and every plot is drawn as an SVG with marks, one per Vega-Lite spec; the plots
match the `--json` report (one histogram per layer with the INT8 range drawn on it, a weight plot
per conv/dense layer, a confusion matrix per class output). Fixtures anywhere, every shared ONNX
model where ../shared exists. Skipped with the reason when Chromium is not installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

import oracle_lib

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not found (Debian package `chromium`; .ci/run installs it)"
)
SPECS_OPEN = '<script type="application/json" id="report-specs">'


class Dom(HTMLParser):
    """What the rendered page holds: per plot container its SVG, its data marks and the role of
    each mark group; the status element's attributes; the recorded errors."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None]] = []  # (tag, id of the plot container it is in)
        self.plots: dict[int, dict] = {}
        self.status: dict[str, str] = {}
        self.errors: list[str] = []
        self.in_error_item = False
        self.sections: dict[str, list[int]] = {}  # anchor id (act-3, w-3) -> its plots
        self.anchor: str | None = None

    VOID = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "wbr", "source", "path", "line", "rect", "circle"}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        plot = self.stack[-1][1] if self.stack else None
        if tag == "div" and re.fullmatch(r"plot-\d+", a.get("id") or ""):
            plot = a["id"]
            self.plots[int(plot[5:])] = {"rendered": a.get("data-rendered"), "svg": 0, "marks": {}, "class": a.get("class", "")}
            if self.anchor:
                self.sections.setdefault(self.anchor, []).append(int(plot[5:]))
        # A plot's anchor (act-3, w-3) is the element just around it.
        self.anchor = a["id"] if tag == "div" and re.fullmatch(r"(act|w)-\d+", a.get("id") or "") else None
        if tag == "div" and a.get("id") == "report-status":
            self.status = a
        if tag == "li" and self.stack and any(t == "div#report-errors" for t, _ in self.stack):
            self.in_error_item = True
            self.errors.append("")
        if plot is not None:
            p = self.plots[int(plot[5:])]
            if tag == "svg":
                p["svg"] += 1
            cls = a.get("class") or ""
            group = next((t for t, _ in reversed(self.stack) if t.startswith("g.mark-")), None)
            if group and "role-mark" in group and tag in ("path", "line", "text", "rect", "circle"):
                p["marks"][group] = p["marks"].get(group, 0) + 1
            if tag == "g" and cls.startswith("mark-"):
                tag = "g." + cls.replace(" ", ".")
        if tag == "div" and a.get("id") == "report-errors":
            tag = "div#report-errors"
        if tag not in self.VOID:
            self.stack.append((tag, plot))

    def handle_endtag(self, tag):
        if tag == "li":
            self.in_error_item = False
        if tag in self.VOID:
            return
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0].split(".")[0].split("#")[0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        if self.in_error_item:
            self.errors[-1] += data


def specs_in(page: str) -> list[dict]:
    start = page.index(SPECS_OPEN) + len(SPECS_OPEN)
    return json.loads(page[start : page.index("</script>", start)])


def render(page: Path, tmp: Path) -> tuple[Dom, list[str]]:
    """Opens `page` in headless Chromium, lets its scripts run, and returns the DOM and the console
    lines the browser logged."""
    proc = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-extensions", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp / 'chromium-profile'}",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, f"chromium exit {proc.returncode}: {proc.stderr[-2000:]}"
    dom = Dom()
    dom.feed(proc.stdout)
    console = [ln for ln in proc.stderr.splitlines() if re.search(r":CONSOLE[:(]", ln)]
    return dom, console


def check_rendered(page: Path, tmp: Path) -> tuple[Dom, list[dict]]:
    """The page rendered completely: every spec drawn as an SVG with marks in its own container,
    no console message, nothing in the page's error box."""
    specs = specs_in(page.read_text(encoding="utf-8"))
    dom, console = render(page, tmp)
    assert not console, "the browser console logged:\n" + "\n".join(console)
    assert not dom.errors, "the page recorded:\n" + "\n".join(dom.errors)
    assert dom.status.get("data-done") == "true", f"the page did not finish rendering: {dom.status}"
    assert int(dom.status["data-plots"]) == len(specs) == len(dom.plots), (dom.status, len(specs), len(dom.plots))
    assert int(dom.status["data-rendered"]) == len(specs), dom.status
    for i, spec in enumerate(specs):
        p = dom.plots[i]
        title = spec["title"]["text"]
        assert p["rendered"] == "true" and p["svg"] == 1, f"plot {i} ({title}): {p}"
        assert sum(p["marks"].values()) > 0, f"plot {i} ({title}) has no data marks: {p}"
    return dom, specs


def run_debug(run_tinyq, fp32: Path, int8: Path, data: Path, html: Path, x_key="x", limit=300) -> dict:
    proc = run_tinyq("debug", fp32, int8, "--data", data, "--x", x_key, "--limit", str(limit), "--json", "--html", html)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return json.loads(proc.stdout)


def quantize(run_tinyq, model: Path, calib: Path, out: Path):
    proc = run_tinyq("quantize", model, "--calib", calib, "-o", out)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)


def check_report(run_tinyq, fp32: Path, data: Path, tmp: Path, x_key="x", limit=300) -> tuple[dict, Dom]:
    int8 = tmp / "q.tflite"
    quantize(run_tinyq, fp32, data, int8)
    html = tmp / "report.html"
    r = run_debug(run_tinyq, fp32, int8, data, html, x_key, limit)
    dom, specs = check_rendered(html, tmp)
    weighted = [k for k, l in enumerate(r["layers"]) if l["weight_ranges"]]
    per_output = sum(1 + (o["confusion"] is not None) for o in r["outputs"])
    expected = 1 + per_output + len(r["layers"]) + len(weighted) + (2 if r["footprint"] else 0)
    assert len(specs) == expected, (len(specs), expected)
    for k, layer in enumerate(r["layers"]):
        (plot,) = dom.sections[f"act-{k}"]
        rules = {g: n for g, n in dom.plots[plot]["marks"].items() if g.startswith("g.mark-rule")}
        assert list(rules.values()) == [2], f"{layer['tensor']}: the INT8 range is not drawn: {dom.plots[plot]['marks']}"
        bars = sum(n for g, n in dom.plots[plot]["marks"].items() if g.startswith("g.mark-rect"))
        nonzero = sum(c > 0 for c in layer["histogram"]["counts"])
        assert bars >= nonzero > 0, f"{layer['tensor']}: {bars} bars for {nonzero} bins"
    for k in weighted:
        assert len(dom.sections[f"w-{k}"]) == 1
    text = html.read_text(encoding="utf-8")
    for layer in r["layers"]:
        assert layer["tensor"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in text
    return r, dom


@needs_chromium
def test_the_report_of_the_classifier_fixture_renders_every_plot(run_tinyq, tmp_path):
    fx = REPO / "fixtures" / "mnist_dscnn"
    r, _ = check_report(run_tinyq, fx / "model.onnx", fx / "mnist_test_200.npz", tmp_path, limit=200)
    (out,) = r["outputs"]
    assert out["confusion"] is not None and len(out["confusion"]) == 10
    assert sum(map(sum, out["confusion"])) == 200
    assert out["agreement"] > 0.95
    assert r["footprint"] and r["footprint"]["flash_bytes"] == (tmp_path / "q.tflite").stat().st_size


@needs_chromium
def test_the_report_of_the_regression_fixture_renders_every_plot(run_tinyq, tmp_path):
    fx = REPO / "fixtures" / "hello_world"
    r, _ = check_report(run_tinyq, fx / "model.onnx", fx / "sine.npz", tmp_path, limit=1000)
    (out,) = r["outputs"]
    assert out["confusion"] is None and out["error_histogram"]["count"] == 1000


def test_histograms_and_ranges_in_the_json_agree_with_the_model(run_tinyq, tmp_path):
    """Each layer's histogram counts every value of every sample, spans the observed values, and
    the INT8 range is the one the scale and zero point give."""
    fx = REPO / "fixtures" / "mnist_dscnn"
    int8 = tmp_path / "q.tflite"
    quantize(run_tinyq, fx / "model.onnx", fx / "mnist_test_200.npz", int8)
    proc = run_tinyq("debug", fx / "model.onnx", int8, "--data", fx / "mnist_test_200.npz", "--limit", "50", "--json")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    r = json.loads(proc.stdout)
    for layer in r["layers"]:
        h, s, zp = layer["histogram"], layer["scale"], layer["zero_point"]
        assert 64 <= len(h["counts"]) <= 128 or h["max"] - h["min"] < 128 * h["bin_width"], (layer["tensor"], len(h["counts"]))
        assert h["count"] == sum(h["counts"]) and h["count"] % 50 == 0, layer["tensor"]
        assert h["lo"] <= h["min"] and h["max"] < h["lo"] + len(h["counts"]) * h["bin_width"], layer["tensor"]
        assert layer["int8_range"] == pytest.approx([(-128 - zp) * s, (127 - zp) * s], rel=1e-6)
    convs = [l for l in r["layers"] if l["op"] in ("Conv2D", "DepthwiseConv2D", "FullyConnected")]
    assert convs and all(l["weight_ranges"] and len(l["weight_ranges"]["min"]) > 1 for l in convs)
    for l in convs:
        w = l["weight_ranges"]
        spread = max(max(abs(a), abs(b)) for a, b in zip(w["min"], w["max"])) / min(
            max(abs(a), abs(b)) for a, b in zip(w["min"], w["max"]) if max(abs(a), abs(b)) > 0
        )
        assert spread == pytest.approx(l["weight_spread"], rel=1e-5)


def test_bad_html_destinations_are_refused_before_any_work(run_tinyq, tmp_path):
    fx = REPO / "fixtures" / "hello_world"
    int8 = tmp_path / "q.tflite"
    quantize(run_tinyq, fx / "model.onnx", fx / "sine.npz", int8)
    before = int8.read_bytes()
    cases = {
        int8: "refusing to overwrite an input file",
        tmp_path / "missing" / "r.html": "does not exist",
        tmp_path / "report.txt": "must be an .html file",
    }
    for dest, message in cases.items():
        proc = run_tinyq("debug", fx / "model.onnx", int8, "--data", fx / "sine.npz", "--html", dest)
        assert proc.returncode == 1, oracle_lib.describe_failure(proc)
        assert proc.stderr.startswith("error: --html ") and message in proc.stderr, proc.stderr
        assert "panicked" not in proc.stderr
    assert int8.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.tflite"]


def _shared_onnx():
    shared = oracle_lib.shared_dir()
    found = [
        pytest.param((card, name), id=f"{card.parent.name}/{name}")
        for card in sorted(shared.glob("models/*/card.json"))
        for name, info in sorted(json.loads(card.read_text())["files"].items())
        if info.get("role") == "fp32_onnx"
    ]
    return found or [pytest.param(None, marks=pytest.mark.skip(reason="../shared not present"))]


@needs_chromium
@pytest.mark.parametrize("case", _shared_onnx())
def test_the_report_of_a_shared_model_renders_every_plot(case, run_tinyq, tmp_path):
    card_path, name = case
    card = json.loads(card_path.read_text())
    data = (card_path.parent / card["dataset"]["file"]).resolve()
    x_key = card["dataset"]["eval_arrays"][0]
    r, dom = check_report(run_tinyq, card_path.parent / name, data, tmp_path, x_key)
    size = (tmp_path / "report.html").stat().st_size
    print(f"{card_path.parent.name}/{name}: {len(dom.plots)} plots rendered, report {size} bytes")
