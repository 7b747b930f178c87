"""INT8 export for onnxruntime, OpenVINO, ncnn and LiteRT that keeps accuracy: calibrate, protect, gate.

One `Int8Export` per `export_model` call, shared by the runtimes:

1. calibration data (`calibration.load_calibration`): `n_calib` crops for calibration and a disjoint
   held-out set (other images) for the gate, both through `crop_boxes` like inference;
2. per-layer sensitivity (`int8_sensitivity.layer_sensitivity`) on the calibration crops, computed once;
3. per runtime, quantize with the `k` most sensitive layers kept in fp32 for k = 0, 1, 2, 3, 4, 6, 8, ...
   until the model agrees with the fp32 reference on the calibration probe crops (>= gate + margin),
   never more than `max_fp_layers`;
4. the gate, on the held-out crops only: >= 95 % of keypoints within 2 px (input space) of the fp32
   reference and, when the data has ground truth, whole-body AP no more than 1.0 point below fp32.
   A failure raises ParityError with the figures, unless `allow_accuracy_loss=True`: then the
   artifact is written with `gate.passed = false` and the failures listed in the manifest.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

from dwpose_edge.errors import CalibrationError, InputError, ParityError
from dwpose_edge.evaluation.metric import evaluate_predictions
from dwpose_edge.export.calibration import CalibrationData, CropSet, load_calibration
from dwpose_edge.export.int8_ncnn import NcnnCalibrator, open_int8
from dwpose_edge.export.int8_onnxruntime import quantize_onnxruntime
from dwpose_edge.export.int8_openvino import quantize_openvino
from dwpose_edge.export.int8_sensitivity import layer_sensitivity, weight_matrices
from dwpose_edge.export.validate import THRESHOLDS, Agreement, agreement, run_batched, validation_crops
from dwpose_edge.postprocess import decode_simcc
from dwpose_edge.runtimes.litert_runtime import LiteRtRuntime
from dwpose_edge.runtimes.ncnn_runtime import read_param
from dwpose_edge.runtimes.onnxruntime_runtime import OnnxRuntime
from dwpose_edge.runtimes.openvino_runtime import OpenVinoRuntime
from dwpose_edge.runtimes.precisions import runtimes_of

GATE_RADIUS_PX, GATE_FRACTION = THRESHOLDS["int8"]
GATE_AP_DROP = 1.0  # whole-body AP points (AP x 100)
SELECTION_MARGIN = 0.02  # the probe crops must beat the gate by this much before the held-out gate runs
FP_STEPS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
RUNTIMES = runtimes_of("int8", files_only=True)  # the one table: runtimes/precisions.py


@dataclass
class Int8Options:
    """Knobs of the INT8 export (defaults are what the gate was designed and measured with)."""

    n_calib: int = 256
    n_holdout: int = 64
    seed: int = 0
    n_probe: int = 64                       # calibration crops used for sensitivity and selection
    max_fp_layers: int = 16
    allow_accuracy_loss: bool = False
    ort_activation_type: str = "QUInt8"     # see int8_onnxruntime (measured: u8 is the fast path on x86)
    ort_preprocess: bool = True
    ncnn_method: str = "absmax"             # measured best here; "mse" and "kl" (ncnn2table default) too
    openvino_preset: str = "MIXED"
    openvino_scope: str = "all"             # or "spatial": int8 only in kxk convolutions (see int8_openvino)
    fixed_fp_layers: tuple[str, ...] | None = None  # skip the search: exactly these ONNX nodes stay fp32

    @classmethod
    def from_any(cls, value: Any) -> "Int8Options":
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                raise InputError(f"unknown int8 options {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
            return cls(**value)
        raise InputError(f"int8 options must be an Int8Options or a dict, got {type(value).__name__}")


@dataclass
class GateResult:
    agreement: Agreement
    ap: dict[str, Any] | None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": self.failures, "heldout": self.agreement.as_dict(),
                "required": {"within_px": GATE_RADIUS_PX, "fraction": GATE_FRACTION, "max_ap_drop": GATE_AP_DROP},
                "ap": self.ap}


class Int8Export:
    """Shared state of the INT8 exports of one fp32 ONNX model (see module doc)."""

    def __init__(self, fp32_onnx: str | os.PathLike, input_size: tuple[int, int],
                 reference: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], calib: Any,
                 calib_images: str | os.PathLike | None = None, options: Any = None, threads: int | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.options = Int8Options.from_any(options)
        o = self.options
        self.fp32_onnx = Path(fp32_onnx)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.reference, self.threads, self.log = reference, threads, log
        self.data: CalibrationData = load_calibration(calib, calib_images, self.input_size, n_calib=o.n_calib,
                                                      n_holdout=o.n_holdout, seed=o.seed)
        overlap = set(self.data.calib.image_ids.tolist()) & set(self.data.holdout.image_ids.tolist())
        if overlap:  # by construction impossible; checked because the gate is worthless otherwise
            raise CalibrationError(f"calibration and held-out crops share images {sorted(overlap)[:5]}")
        self.probe: CropSet = self.data.calib.subset(min(o.n_probe, len(self.data.calib)))
        t0 = time.perf_counter()
        self.ref_probe = run_batched(reference, self.probe.crops)
        self.ref_holdout = run_batched(reference, self.data.holdout.crops)
        self._sensitivity = None
        self._ncnn = None
        self._ap_ref: dict | None = None
        log(f"int8: {len(self.data.calib)} calibration crops, {len(self.data.holdout)} held-out crops "
            f"({len(self.data.holdout_image_ids)} other images), reference in {time.perf_counter() - t0:.1f} s")

    # ------------------------------------------------------------------ shared

    @property
    def sensitivity(self):
        if self._sensitivity is None:
            t0 = time.perf_counter()
            self._sensitivity = layer_sensitivity(self.fp32_onnx, self.data.calib.crops, self.probe.crops[:32],
                                                  threads=self.threads, log=self.log)
            top = ", ".join(f"{s.node} ({s.mean_px_error:.2f} px)" for s in self._sensitivity[:4])
            self.log(f"int8: sensitivity of {len(self._sensitivity)} layers in {time.perf_counter() - t0:.1f} s; "
                     f"most sensitive: {top}")
        return self._sensitivity

    def info(self) -> dict[str, Any]:
        """Export-level facts for the manifest (calibration data, sensitivity ranking)."""
        out: dict[str, Any] = {"calibration": self.data.info(),
                               "gate": {"within_px": GATE_RADIUS_PX, "fraction": GATE_FRACTION,
                                        "max_ap_drop": GATE_AP_DROP, "on": "held-out crops (images not used "
                                                                             "for calibration)"}}
        if self._sensitivity is not None:
            out["sensitivity"] = {"probe_crops": min(32, len(self.probe)),
                                  "layers": [s.as_dict() for s in self._sensitivity]}
        return out

    # ------------------------------------------------------------------ per runtime

    def export(self, runtime: str, out_dir: str | os.PathLike, stem: str,
               ncnn_fp32: Callable[[], tuple[Path, Path]] | None = None,
               litert_fp32: Callable[[], Path] | None = None) -> tuple[dict[str, str], dict, dict]:
        """Quantize for `runtime` into `out_dir`; returns (files role -> name, validation, extra).

        Raises ParityError when the gate fails (unless allow_accuracy_loss)."""
        if runtime not in RUNTIMES:
            raise InputError(f"INT8 export supports {RUNTIMES}, not {runtime!r}")
        out_dir = Path(out_dir)
        t0 = time.perf_counter()
        build, files, candidates, quant_info = self._builder(runtime, out_dir, stem, ncnn_fp32, litert_fp32)
        o = self.options
        attempts = []
        if o.fixed_fp_layers is not None:
            steps = [list(o.fixed_fp_layers)]
        else:
            ks = [k for k in FP_STEPS if k <= min(o.max_fp_layers, len(candidates))]
            steps = [candidates[:k] for k in ks]
        runner = gate = None
        for i, fp in enumerate(steps):
            runner, info = build(fp)
            a = agreement(self.ref_probe, run_batched(runner.infer, self.probe.crops))
            attempts.append({"fp_layers": len(fp), "probe_within_2px": round(a.within_2px, 6),
                             "probe_mean_px": round(a.mean_px_error, 4)})
            quant_info.update(info)
            self.log(f"int8 {runtime}: {len(fp)} layers in fp32 -> {a.within_2px:.2%} of probe keypoints within "
                     f"{GATE_RADIUS_PX:g} px (mean {a.mean_px_error:.3f} px)")
            last = i == len(steps) - 1
            if a.within_2px < min(0.999, GATE_FRACTION + SELECTION_MARGIN) and not last:
                continue
            # the probe says enough: the held-out gate decides; failing it, keep the next, larger float set
            # (each step keeps strictly more layers in float: a monotone search, not a pick among gate results)
            gate = self.gate(runner.infer)
            attempts[-1]["gate_passed"] = gate.passed
            if gate.passed or last:
                break
            self.log(f"int8 {runtime}: the held-out gate fails with {len(fp)} layers in fp32 "
                     f"({'; '.join(gate.failures)}); keeping more in float")
        fp_layers = list(fp)
        what = f"{runtime}/int8 export"
        self.log(f"int8 {runtime}: gate on {gate.agreement.n_crops} held-out crops: "
                 f"{gate.agreement.within_2px:.2%} within {GATE_RADIUS_PX:g} px"
                 + (f", whole-body AP {gate.ap['fp32']:.2f} -> {gate.ap['int8']:.2f}" if gate.ap and
                    gate.ap.get("fp32") is not None else "")
                 + ("" if gate.passed else f"  FAILED: {'; '.join(gate.failures)}")
                 + f" ({time.perf_counter() - t0:.1f} s)")
        if not gate.passed and not o.allow_accuracy_loss:
            raise ParityError(f"{what} fails the accuracy gate with {len(fp_layers)} layers kept in fp32 "
                              f"({', '.join(fp_layers) or 'none'}): {'; '.join(gate.failures)}. Keep more layers "
                              "in fp32 (int8 option max_fp_layers), calibrate on data closer to yours, or accept "
                              "the loss with allow_accuracy_loss=True (CLI --allow-accuracy-loss)")
        extra = {"fp_layers": fp_layers, "gate": gate.as_dict(), "accuracy_loss_allowed": bool(o.allow_accuracy_loss),
                 "inference_precision": str(getattr(runner, "inference_precision", "")),
                 "selection": attempts, "quantization": quant_info,
                 "bundled_crops_not_gated": self._bundled_agreement(runner.infer)}
        validation = {**gate.agreement.as_dict(), "gate_passed": gate.passed}
        return files, validation, extra

    def gate(self, infer: Callable) -> GateResult:
        got = run_batched(infer, self.data.holdout.crops)
        a = agreement(self.ref_holdout, got)
        failures = []
        if a.within_2px < GATE_FRACTION:
            failures.append(f"{a.within_2px:.2%} of held-out keypoints within {GATE_RADIUS_PX:g} px of fp32 "
                            f"(needs >= {GATE_FRACTION:.0%}; mean error {a.mean_px_error:.3f} px over "
                            f"{a.n_crops} crops)")
        ap = None
        if self.data.ann_file is not None:
            ap = self._ap_compare(got)
            if ap.get("drop") is not None and ap["drop"] > GATE_AP_DROP:
                failures.append(f"whole-body AP {ap['fp32']:.2f} (fp32) -> {ap['int8']:.2f} (int8), a drop of "
                                f"{ap['drop']:.2f} points (allowed {GATE_AP_DROP:g})")
        return GateResult(a, ap, failures)

    def _ap_compare(self, got: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
        try:
            if self._ap_ref is None:
                self._ap_ref = self._ap(self.ref_holdout)
            ref, q = self._ap_ref, self._ap(got)
        except ImportError as exc:  # xtcocotools missing / built for another numpy
            self.log(f"int8: AP gate skipped, COCO evaluation unavailable: {str(exc).splitlines()[0]}")
            return {"fp32": None, "int8": None, "drop": None, "skipped": str(exc).splitlines()[0][:200]}
        return {"fp32": round(ref["wholebody"] * 100, 3), "int8": round(q["wholebody"] * 100, 3),
                "drop": round((ref["wholebody"] - q["wholebody"]) * 100, 3),
                "parts_fp32": {k: round(v * 100, 3) for k, v in ref.items()},
                "parts_int8": {k: round(v * 100, 3) for k, v in q.items()},
                "images": len(self.data.holdout_image_ids), "instances": len(self.data.holdout)}

    def _ap(self, logits: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
        h = self.data.holdout
        kpts, scores = decode_simcc(logits[0], logits[1], h.centers, h.scales, self.input_size)
        preds = [{"image_id": int(h.image_ids[i]), "id": int(h.ann_ids[i]), "keypoints": kpts[i],
                  "keypoint_scores": scores[i], "area": float(h.scales[i, 0] * h.scales[i, 1])}
                 for i in range(len(h))]
        res = evaluate_predictions(self.data.ann_file, preds, image_ids=self.data.holdout_image_ids)
        return {part: float(v["AP"]) for part, v in res.items()}

    def _bundled_agreement(self, infer: Callable) -> dict:
        """Agreement on the bundled real-photo crops every export is validated on (recorded, not gated)."""
        crops = validation_crops(self.input_size)
        return agreement(run_batched(self.reference, crops), run_batched(infer, crops)).as_dict()

    # ------------------------------------------------------------------ builders

    def _builder(self, runtime: str, out_dir: Path, stem: str, ncnn_fp32, litert_fp32=None):
        ranking = [s.node for s in self.sensitivity] if self.options.fixed_fp_layers is None else []
        o = self.options
        if runtime == "onnxruntime":
            path = out_dir / f"{stem}.onnx"

            def build(fp):
                info = quantize_onnxruntime(self.fp32_onnx, path, self.data.calib.crops, fp,
                                            activation_type=o.ort_activation_type, preprocess=o.ort_preprocess)
                return OnnxRuntime(path, threads=self.threads, input_size=self.input_size, precision="int8"), info

            return build, {"model": path.name}, ranking, {}
        if runtime == "openvino":
            xml = out_dir / f"{stem}.xml"
            outputs = self._onnx_outputs()

            def build(fp):
                info = quantize_openvino(self.fp32_onnx, xml, self.data.calib.crops, fp, outputs,
                                         preset=o.openvino_preset, scope=o.openvino_scope)
                return OpenVinoRuntime(xml, threads=self.threads, input_size=self.input_size, precision="int8"), info

            return build, {"xml": xml.name, "bin": xml.with_suffix(".bin").name}, ranking, {}
        if runtime == "litert":
            return self._litert_builder(out_dir, stem, litert_fp32, ranking)
        # ncnn

        if ncnn_fp32 is None:
            raise InputError("ncnn INT8 needs the fp32 ncnn model (ncnn_fp32=)")
        if self._ncnn is None:
            param, bin_ = ncnn_fp32()
            weights = weight_matrices(onnx.load(str(self.fp32_onnx)))
            self._ncnn = NcnnCalibrator(param, bin_, weights, read_param(param).input_blob, self.threads)
        cal = self._ncnn
        mapped = set(cal.onnx_names.values())
        candidates = [n for n in ranking if n in mapped]  # the others (e.g. q.k MatMuls) are fp32 in ncnn anyway
        param_out, bin_out = out_dir / f"{stem}.ncnn.param", out_dir / f"{stem}.ncnn.bin"  # apart from the IR .bin

        def build(fp):
            plan = cal.plan(self.data.calib.crops, fp, o.ncnn_method)
            cal.write(plan, param_out, bin_out)
            info = {"method": f"python ncnn2table/ncnn2int8 ({o.ncnn_method} activation thresholds, per-channel "
                              "weights)", "int8_layers": len(plan.int8),
                    "fp32_layers": {k: v for k, v in plan.kept_fp32.items()},
                    "thresholds": {k: round(v["threshold"], 6) for k, v in plan.int8.items() if "threshold" in v},
                    "n_calib": len(self.data.calib)}
            return open_int8(param_out, bin_out, self.input_size, self.threads), info

        return build, {"param": param_out.name, "bin": bin_out.name}, candidates, {}

    def _litert_builder(self, out_dir: Path, stem: str, litert_fp32, ranking: list[str]):
        """LiteRT: static int8 of the fp32 .tflite (export/to_litert.py), ONNX-named layers kept fp32."""
        from dwpose_edge.export.to_litert import LiteRtQuantizer  # torch + litert-torch: only on this path

        if litert_fp32 is None:
            raise InputError("LiteRT INT8 needs the fp32 .tflite (litert_fp32=)")
        quantizer = LiteRtQuantizer(litert_fp32(), weight_matrices(onnx.load(str(self.fp32_onnx))),
                                    self.data.calib.crops, self.threads)
        mapped = set(quantizer.onnx_names[op] for op in quantizer.candidates)
        candidates = [n for n in ranking if n in mapped]  # the others stay fp32 in the LiteRT file anyway
        path = out_dir / f"{stem}.tflite"

        def build(fp):
            info = quantizer.quantize(path, fp)
            return LiteRtRuntime(path, input_size=self.input_size, threads=self.threads, precision="int8"), info

        return build, {"tflite": path.name}, candidates, {}

    def _onnx_outputs(self) -> dict[str, list[str]]:
        proto = onnx.load(str(self.fp32_onnx), load_external_data=False)
        return {n.name: list(n.output) for n in proto.graph.node}


def export_int8(fp32_onnx, out_dir, stem: str, runtimes, input_size, reference, calib, calib_images=None,
                options: Any = None, threads: int | None = None, ncnn_fp32=None,
                log: Callable[[str], None] = print) -> tuple[list[tuple[str, dict, dict, dict]], dict]:
    """Convenience wrapper: INT8 for several runtimes; returns ([(runtime, files, validation, extra)], info)."""
    job = Int8Export(fp32_onnx, input_size, reference, calib, calib_images, options, threads, log)
    results = [(r, *job.export(r, out_dir, stem, ncnn_fp32)) for r in runtimes]
    return results, job.info()


__all__ = ["Int8Export", "Int8Options", "GateResult", "export_int8", "GATE_AP_DROP", "GATE_FRACTION",
           "GATE_RADIUS_PX"]
