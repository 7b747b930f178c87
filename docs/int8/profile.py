"""Per-layer OpenVINO profile of a DWPose model in fp32, bf16 and INT8 variants; rewrites the tables of
docs/int8/PROFILE.md (the text between the `profile:begin` / `profile:end` markers).

    .venv/bin/python docs/int8/profile.py [--onnx FILE] [--threads 1] [--batch 8] [--rounds 15]

Default model: the embedded dwpose-t ONNX; calibration and held-out crops: the embedded validation set
(256 / 64 crops, the INT8 export's defaults) or `--calib ANN --calib-images DIR`. The `int8 all` and
`int8 spatial` variants are quantised by `export.int8_openvino.quantize_openvino` with no layer kept in
floating point (the raw effect of each scope); `int8 export` is what `dwpose-edge export --precision int8`
writes for OpenVINO (`export.int8.Int8Export`: the most sensitive layers kept in floating point until the
held-out gate passes), run with its float layers in bf16 (what the runtime does on a bf16 CPU) and in f32.

Each variant is compiled twice on the CPU: with PERF_COUNT for the per-node times, without it for the
wall time. Rounds run the variants in turn (A, B, C, ..., A, B, C, ...) so that a machine shared with
other jobs slows all alike; each figure is the fastest round's (the least disturbed) and the medians are
printed too. Per-node times are grouped by layer kind, read from the original op of each executed node
(kernel size, groups, constant weights).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BEGIN, END = "<!-- profile:begin -->", "<!-- profile:end -->"

# (label, model: 'float' IR, a quantize_openvino scope with no float layer, or 'export'; INFERENCE_PRECISION_HINT)
VARIANTS = (("fp32", "float", "f32"), ("bf16", "float", "bf16"), ("int8 all", "all", "f32"),
            ("int8 all + bf16", "all", "bf16"), ("int8 spatial + bf16", "spatial", "bf16"),
            ("int8 export", "export", "f32"), ("int8 export + bf16", "export", "bf16"))
KIND_ORDER = ("conv 3x3", "conv 3x3 s2", "conv 7x7 (head)", "conv 1x1", "depthwise 5x5", "linear (head FC)",
              "matmul (GAU q.k, attn.v)", "quantize (FakeQuantize)", "reorder / convert", "elementwise",
              "concat / split", "pool / reduce")


def op_kind(op) -> str | None:
    """The layer kind of an original (pre-compilation) op that does the arithmetic, else None."""
    t = op.get_type_name()
    if t == "Convolution":
        kh, kw = list(op.input(1).get_partial_shape().to_shape())[2:]
        stride = max(op.get_attributes().get("strides", [1]))
        if (kh, kw) == (1, 1):
            return "conv 1x1"
        if kh == 7:
            return "conv 7x7 (head)"
        return f"conv {kh}x{kw}" + (f" s{stride}" if stride > 1 else "")
    if t == "GroupConvolution":
        kh, kw = list(op.input(1).get_partial_shape().to_shape())[-2:]
        return f"depthwise {kh}x{kw}"
    if t == "MatMul":
        src = op.input_value(1).get_node()
        while src.get_type_name() in ("Convert", "Multiply", "Subtract", "FakeQuantize", "Reshape", "Transpose"):
            src = src.input_value(0).get_node()
        return "linear (head FC)" if src.get_type_name() == "Constant" else "matmul (GAU q.k, attn.v)"
    return None


def node_kind(layer_type: str, originals: list[str], by_name: dict) -> str:
    """Kind of an executed node: that of the arithmetic op fused into it, else from its runtime type."""
    for name in originals:
        op = by_name.get(name)
        if op is not None and (kind := op_kind(op)):
            return kind
    if layer_type == "FakeQuantize":
        return "quantize (FakeQuantize)"
    if layer_type in ("Reorder", "Convert"):
        return "reorder / convert"
    if layer_type in ("Concat", "Split", "VariadicSplit"):
        return "concat / split"
    if layer_type in ("MaxPool", "AvgPool", "ReduceMean", "ReduceL2", "ReduceSum", "ReduceMax"):
        return "pool / reduce"
    if layer_type in ("Parameter", "Result", "Reshape", "Constant", "Squeeze", "Unsqueeze", "Transpose"):
        return "no-op (reshape, I/O)"
    return "elementwise"


class Variant:
    """One compiled model: wall-time request, profiling request, and the kind of each executed node."""

    def __init__(self, core, path: Path, hint: str, threads: int, batch: int, input_size) -> None:
        model = core.read_model(str(path))
        model.reshape({model.inputs[0].get_any_name(): [batch, 3, input_size[1], input_size[0]]})
        by_name = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
        config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        self.wall = core.compile_model(model, "CPU", config).create_infer_request()
        profiled = core.compile_model(model, "CPU", {**config, "PERF_COUNT": True})
        self.prof = profiled.create_infer_request()
        self.kinds = {}
        for op in profiled.get_runtime_model().get_ordered_ops():
            info = {k: str(getattr(v, "value", v)) for k, v in op.get_rt_info().items()}  # OVAny -> str
            originals = [n.strip() for n in info["originalLayersNames"].split(",") if n.strip()]
            self.kinds[op.get_friendly_name()] = node_kind(info["layerType"], originals, by_name)
        self.wall_ms: list[float] = []
        self.node_ms: dict[str, list[float]] = defaultdict(list)
        self.exec_types: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def outputs(self, crops: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for i in range(0, len(crops) - batch + 1, batch):
            self.wall.infer({0: crops[i:i + batch]})
            xs.append(self.wall.get_output_tensor(0).data.copy())
            ys.append(self.wall.get_output_tensor(1).data.copy())
        return np.concatenate(xs), np.concatenate(ys)

    def round(self, x: np.ndarray) -> None:
        t0 = time.perf_counter()
        self.wall.infer({0: x})
        self.wall_ms.append((time.perf_counter() - t0) * 1000 / len(x))
        self.prof.infer({0: x})
        for p in self.prof.get_profiling_info():
            ms = p.real_time.total_seconds() * 1000 / len(x)
            self.node_ms[p.node_name].append(ms)
            self.exec_types[self.kinds.get(p.node_name, "elementwise")][p.exec_type] += ms

    def per_kind(self) -> dict[str, float]:
        """ms per crop of each kind: per node, its fastest round (as the wall time), summed."""
        out: dict[str, float] = defaultdict(float)
        for node, times in self.node_ms.items():
            out[self.kinds.get(node, "elementwise")] += min(times)
        return out

    def main_exec(self, kind: str) -> str:
        types = self.exec_types.get(kind)
        if not types:
            return ""
        total = sum(types.values())
        best = max(types, key=types.get)
        return best + ("" if types[best] > 0.8 * total else " +")


def quantise(onnx_path: Path, out: Path, data, scope: str, threads: int) -> tuple[Path, str]:
    """The int8 IR of one variant and a note on what it keeps in floating point."""
    from dwpose_edge.export.int8_openvino import quantize_openvino

    if scope != "export":
        xml = out / f"int8_{scope}.xml"
        quantize_openvino(onnx_path, xml, data.calib.crops, scope=scope)
        return xml, ""
    from dwpose_edge.export.int8 import Int8Export
    from dwpose_edge.runtimes.onnxruntime_runtime import OnnxRuntime

    reference = OnnxRuntime(onnx_path, threads=threads)
    job = Int8Export(onnx_path, reference.input_size, reference.infer, data, None, {"allow_accuracy_loss": True},
                     threads, log=lambda m: None)
    files, validation, extra = job.export("openvino", out, "int8_export")
    return out / files["xml"], (f"{len(extra['fp_layers'])} layers in float ({', '.join(extra['fp_layers'])}), "
                                f"held-out gate {'passed' if extra['gate']['passed'] else 'FAILED'}")


def run(onnx_path: Path, threads: int, batch: int, rounds: int, n_calib: int, n_holdout: int,
        calib: str | None, calib_images: str | None) -> str:
    import openvino as ov

    from dwpose_edge.embedded import embedded_val_set
    from dwpose_edge.export.calibration import load_calibration
    from dwpose_edge.export.validate import THRESHOLDS, agreement
    from dwpose_edge.manifest import tool_versions
    from dwpose_edge.runtimes.cpu_features import cpu_flags

    core = ov.Core()
    probe = core.read_model(str(onnx_path))
    shape = probe.inputs[0].get_partial_shape()
    input_size = (shape[3].get_length(), shape[2].get_length())
    ann, images = (calib, calib_images) if calib else embedded_val_set()
    data = load_calibration(ann, images, input_size, n_calib=n_calib, n_holdout=n_holdout, seed=0)
    holdout = np.ascontiguousarray(data.holdout.crops)
    notes = {}
    with tempfile.TemporaryDirectory(prefix="dwpose-int8-profile-") as tmp:
        files = {"float": onnx_path}
        for scope in dict.fromkeys(s for _, s, _ in VARIANTS if s != "float"):
            t0 = time.perf_counter()
            files[scope], notes[scope] = quantise(onnx_path, Path(tmp), data, scope, threads)
            print(f"quantised {scope} in {time.perf_counter() - t0:.0f} s {notes[scope]}", file=sys.stderr)
        variants = {label: Variant(core, files[scope], hint, threads, batch, input_size)
                    for label, scope, hint in VARIANTS}
        ref = variants["fp32"].outputs(holdout, batch)
        agree = {label: agreement(ref, v.outputs(holdout, batch)) for label, v in variants.items()}
        x = np.ascontiguousarray(holdout[:batch])
        for v in variants.values():
            v.round(x)  # warm-up
            v.wall_ms.clear(), v.node_ms.clear(), v.exec_types.clear()
        for _ in range(rounds):
            for v in variants.values():
                v.round(x)
    radius, fraction = THRESHOLDS["int8"]
    wall = {label: min(v.wall_ms) for label, v in variants.items()}
    flags = ", ".join(sorted(f for f in cpu_flags() if re.match(r"avx512|amx|avx_vnni", f)))
    lines = [f"Model `{onnx_path.name}`, batch {batch}, {threads} thread(s), {rounds} interleaved rounds (fastest "
             f"round; medians in brackets). CPU flags: {flags}. "
             f"{', '.join(f'{k} {v}' for k, v in tool_versions(('openvino', 'nncf')).items())}. "
             f"Agreement: share of the {agree['fp32'].n_keypoints // 133} held-out crops' keypoints within "
             f"{radius:g} px of fp32 (the INT8 gate needs {fraction:.0%}). `int8 all`/`spatial`: no layer kept "
             f"in floating point; `int8 export`: {notes.get('export', '')}.", "",
             "| variant | ms per crop | vs fp32 | vs bf16 | within 2 px | within 1 px |",
             "|---|---|---|---|---|---|"]
    for label, v in variants.items():
        a = agree[label]
        lines.append(f"| {label} | {wall[label]:.2f} ({np.median(v.wall_ms):.2f}) | "
                     f"{wall['fp32'] / wall[label]:.2f}x | {wall['bf16'] / wall[label]:.2f}x | {a.within_2px:.1%} | "
                     f"{a.within_1px:.1%} |")
    per_kind = {label: v.per_kind() for label, v in variants.items()}
    kinds = [k for k in KIND_ORDER if any(per_kind[label].get(k, 0) > 0.0005 for label in variants)]
    kinds += sorted({k for p in per_kind.values() for k in p} - set(kinds) - {"no-op (reshape, I/O)"})
    lines += ["", "Per layer kind, ms per crop (sum over the kind's nodes of OpenVINO's per-node time), and the "
              "kernel that ran most of it (`+`: others too):", "",
              "| layer kind | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for kind in kinds:
        cells = [f"{per_kind[label].get(kind, 0):.3f} `{variants[label].main_exec(kind)}`" for label in variants]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    totals = [f"**{sum(per_kind[label].values()):.3f}**" for label in variants]
    lines.append("| **sum of nodes** | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", default=None, help="pose ONNX file (default: the embedded dwpose-t)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--n-calib", type=int, default=256)
    ap.add_argument("--n-holdout", type=int, default=64)
    ap.add_argument("--calib", default=None, help="COCO-WholeBody json of the calibration / held-out crops")
    ap.add_argument("--calib-images", default=None, help="image folder of --calib")
    ap.add_argument("--out", default=str(HERE / "PROFILE.md"), help="markdown file whose tables are replaced")
    ap.add_argument("--print", action="store_true", help="print the tables instead of writing --out")
    args = ap.parse_args(argv)
    os.environ.setdefault("CI", "true")
    sys.path.insert(0, str(ROOT))
    from dwpose_edge.embedded import default_onnx

    onnx_path = Path(args.onnx) if args.onnx else default_onnx("dwpose-t")
    tables = run(onnx_path, args.threads, args.batch, args.rounds, args.n_calib, args.n_holdout, args.calib,
                 args.calib_images)
    title = f"{onnx_path.name}, {args.threads} thread(s)"
    section = f"{BEGIN}\n### {title}\n\n{tables}\n{END}"
    if args.print:
        print(section)
        return 0
    out = Path(args.out)
    text = out.read_text() if out.is_file() else f"# INT8 profile\n\n{BEGIN}\n{END}\n"
    marker = re.compile(re.escape(BEGIN) + r"\n### " + re.escape(title) + r"\n.*?" + re.escape(END), re.S)
    if marker.search(text):
        text = marker.sub(lambda m: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
