"""Convert a pose ONNX file to OpenVINO IR, fp32 or fp16 weights, precision always explicit."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from dwpose_edge.errors import ExportError, InputError
from dwpose_edge.onnx_file import check_onnx_file
from dwpose_edge.runtimes.base import require


def export_openvino(onnx_path: str | os.PathLike, xml_path: str | os.PathLike, precision: str = "fp32") -> Path:
    """Write `xml_path` (+ .bin). fp16 stores fp16 weights (`compress_to_fp16`); fp32 keeps them exact.

    OpenVINO's `save_model` compresses to fp16 unless told not to, so the flag is always passed.
    """
    ov = require("openvino", "dwpose-edge[openvino]")
    if precision not in ("fp32", "fp16"):
        raise InputError(f"OpenVINO IR precision must be fp32 or fp16 (int8 goes through NNCF), got {precision!r}")

    check_onnx_file(onnx_path)
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        model = ov.convert_model(os.fspath(onnx_path))
        ov.save_model(model, os.fspath(xml_path), compress_to_fp16=(precision == "fp16"))
    except Exception as exc:
        raise ExportError(f"OpenVINO conversion of {onnx_path} failed: {exc}") from exc
    return xml_path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--out", required=True, help="output .xml path")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    args = ap.parse_args(argv)
    print(export_openvino(args.onnx, args.out, args.precision))


if __name__ == "__main__":
    main()
