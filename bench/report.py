"""Write a benchmark report (report.md/.json/.csv, accuracy_vs_latency.png); read pytest-benchmark JSON."""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from dwpose_edge.bench.plot import plot_accuracy_vs_latency
from dwpose_edge.errors import InputError

PARTS = ("wholebody", "body", "foot", "face", "lefthand", "righthand")


def _f(v, fmt: str = "{:.2f}", none: str = "-") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return none
    return fmt.format(v)


def _pct(v) -> str:
    return _f(None if v is None else 100 * v, "{:.1f}%")


def _lat(row: dict, key: str) -> str:
    s = (row.get("latency") or {}).get(key)
    return "-" if not s else f"{s['median_ms']:.2f} ±{s['iqr_ms']:.2f}"


def batch_keys(report: dict) -> list[str]:
    keys = {k for r in report["rows"] for k in (r.get("latency") or {})}
    return sorted(keys, key=lambda k: int(k[1:]))


def person_keys(report: dict) -> list[str]:
    keys = {k for r in report["rows"] for k in (r.get("scaling") or {})}
    return sorted(keys, key=int)


def _label(row: dict) -> str:
    dev = "" if row.get("device", "cpu") == "cpu" else f" ({row['device']})"
    ref = " **(ref)**" if row.get("reference") else ""
    return f"{row['runtime']}{dev}{ref}"


def markdown(report: dict) -> str:
    m = report["machine"]
    s = report["settings"]
    lines = ["# dwpose-edge benchmark: accuracy vs latency", ""]
    for note in report.get("notes", []):
        lines += [f"> **NOTE:** {note}", ""]
    lines += [f"- CPU: {m.get('cpu')} ({', '.join(m.get('cpu_flags') or []) or 'no flag info'}), "
              f"{m.get('usable_cores')} usable of {m.get('logical_cores')} logical cores, {s.get('threads')} "
              f"thread{'' if s.get('threads') == 1 else 's'} per runtime; load average {m.get('loadavg')} at "
              f"start, {m.get('loadavg_end')} at end",
              f"- OS: {m.get('os')}, Python {m.get('python')}"]
    if report.get("cuda"):
        lines.append(f"- GPU: {report['cuda']['gpu']} (CUDA {report['cuda']['cuda']})")
    lines.append("- Packages: " + ", ".join(f"{k} {v}" for k, v in (m.get("packages") or {}).items()))
    d = report.get("data") or {}
    lines.append(f"- Data: {d.get('description', '-')} ({d.get('ann_file', '-')})")
    checked = [r for r in report.get("rows", []) if r.get("device_check")]
    if checked:
        lines.append("- Device check (each export's gate re-run on this CPU when opened): " + ", ".join(
            f"{r['runtime']}/{r['precision']} {'pass' if r['device_check']['passed'] else 'FAIL'} "
            f"{r['device_check']['got']:.1%}" for r in checked))
    if report.get("source"):
        lines.append(f"- From pytest-benchmark JSON {report['source']}: batches {s.get('batches')}, persons "
                     f"{s.get('persons')}; created {report.get('created')}")
    else:
        lines.append(f"- Settings: batches {s.get('batches')}, {s.get('warmup')} warm-up + {s.get('repeats')} timed "
                     f"calls, persons {s.get('persons')} x {s.get('scaling_repeats')} calls"
                     + (f", at most {s['max_time_s']:g} s per measurement (3 calls minimum)" if s.get("max_time_s")
                        else "") + "; created "
                     f"{report.get('created')}, took {report.get('duration_s', '-')} s")
    for model, info in report["models"].items():
        lines += ["", f"## {model}", "",
                  f"Weights: {info.get('weights')}; reference: **{info.get('reference')}**; "
                  f"{info.get('n_crops')} crops {tuple(info.get('input_size') or ())} (WxH), "
                  f"sha256 `{str(info.get('crops_sha256', ''))[:16]}...`", ""]
        rows = [r for r in report["rows"] if r["model"] == model]
        bks = batch_keys(report)
        lines.append("### Latency and memory")
        lines.append("")
        has = {k: any(r.get(k) is not None for r in rows)
               for k in ("peak_rss_mb", "e2e_ms_per_person", "speedup_vs_torch", "speedup_vs_rtmlib")}
        cols = [("runtime", _label), ("precision", lambda r: r["precision"]), ("status", _status),
                ("MB", lambda r: _f(r.get("model_mb"), "{:.1f}")),
                ("load ms", lambda r: _f(r.get("load_ms"), "{:.0f}"))]
        if has["peak_rss_mb"]:
            cols.append(("peak RSS MB", lambda r: _f(r.get("peak_rss_mb"), "{:.0f}")))
        cols += [(f"batch {k[1:]} ms/crop ±IQR", lambda r, k=k: _lat(r, k)) for k in bks]
        if has["e2e_ms_per_person"]:
            cols.append((f"end-to-end ms/person @{_goal_persons(report, model)}",
                         lambda r: _f(r.get("e2e_ms_per_person"))))
        if has["speedup_vs_torch"]:
            cols.append((f"x torch (batch {bks[-1][1:]})", lambda r: _f(r.get("speedup_vs_torch"), "{:.2f}x")))
        if has["speedup_vs_rtmlib"]:
            cols.append(("x rtmlib (end-to-end)", lambda r: _f(r.get("speedup_vs_rtmlib"), "{:.2f}x")))
        lines += _table([c[0] for c in cols], [[fn(r) for _, fn in cols] for r in rows])
        lines += ["", "### Accuracy", "",
                  "Agreement: argmax keypoints vs the reference on the same crops (crop pixels). "
                  "AP vs ref: COCO-WholeBody AP with the reference's keypoints as ground truth. "
                  "AP (GT): against the data's annotations.", ""]
        head = ["runtime", "precision", "within 1px", "2px", "5px", "mean px", "max logit diff", "AP vs ref"] + \
               [f"AP (GT) {p}" if p == "wholebody" else p for p in PARTS]
        ok = [r for r in rows if r.get("status") == "ok"]
        lines += _table(head, [[_label(r), r["precision"], _pct(_ag(r, "within_1px")), _pct(_ag(r, "within_2px")),
                                _pct(_ag(r, "within_5px")), _f(_ag(r, "mean_px_error"), "{:.3f}"),
                                _f(_ag(r, "max_logit_diff"), "{:.2e}"),
                                _f((r.get("ap_vs_ref") or {}).get("wholebody"), "{:.3f}")] +
                               [_f((r.get("ap_gt") or {}).get(p), "{:.3f}") for p in PARTS] for r in ok])
        notes = sorted({r["ap_note"] for r in ok if r.get("ap_note")})
        lines += [f"\n{n}" for n in notes]
        lines += _peers_md(report, model)
        lines += _auto_md(report, model)
        lines += _cold_start_md(report, model)
        lines += _scaling_md(report, rows)
    lines += ["", "## Method", ""] + [f"- **{k}**: {v}" for k, v in (report.get("method") or {}).items()]
    if report.get("cases"):
        lines += ["", "## pytest-benchmark cases", ""]
        lines += _table(["case", "batch", "persons", "ms/call", "ms/crop ±IQR", "rounds"],
                        [[c["name"], c["batch"], c["persons"], f"{c['ms_per_call']:.2f}",
                          f"{c['ms_per_crop']:.2f} ±{c['iqr_ms_per_crop']:.2f}", c["rounds"]] for c in report["cases"]])
    if report.get("int8_vs_fp32"):
        lines += ["", "## INT8 vs fp32 (same runtime, same held-out crops, interleaved passes)", ""]
        lines += _table(["runtime", "batch", "fp32 ms/crop", "int8 ms/crop", "speed-up", "int8 within 2 px of torch",
                         "fp layers"],
                        [[e["runtime"], e["batch"], _f(e["fp32_ms_per_crop"]), _f(e["int8_ms_per_crop"]),
                          f"{e['speedup']:.2f}x", _pct(e.get("int8_within_2px_vs_torch")), e.get("fp_layers", "-")]
                         for e in report["int8_vs_fp32"]])
    skipped = [r for r in report["rows"] if r.get("status", "ok") != "ok"]
    if skipped:
        lines += ["", "## Skipped and failed rows", ""]
        lines += [f"- {r['model']} {r['runtime']} {r['precision']} ({r.get('device', 'cpu')}): {r['status']}"
                  for r in skipped]
    return "\n".join(lines) + "\n"


def _goal_persons(report: dict, model: str) -> int:
    return (report.get("goal") or {}).get(model, {}).get("persons", report["settings"].get("peer_persons", 8))


def _status(row: dict) -> str:
    st = row.get("status", "ok")
    if st != "ok":
        return st.split(":")[0]
    if (row.get("export_validation") or {}).get("gate_passed") is False:
        return "ok (int8 gate FAILED)"
    ip = str(row.get("inference_precision") or "")
    if row["precision"] == "fp16" and ip and "16" not in ip:
        return f"ok (computes {ip})"  # e.g. OpenVINO on a CPU without native fp16: fp16 weights, f32 maths
    return "ok"


def _ag(row: dict, key: str):
    return (row.get("agreement") or {}).get(key)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _peers_md(report: dict, model: str) -> list[str]:
    p = report.get("peers", {}).get(model)
    if not p:
        return []
    lines = ["", "### Peers (same ONNX file, image and boxes)", ""]
    if p.get("status", "ok") != "ok":
        return lines + [f"Peers {p['status']}"]
    n = p["persons"]
    ours = p["ours"]["per_person"]["median_ms"]
    lines.append(f"{n} persons on {p['image']}; end-to-end ms per person (median ±IQR); each implementation in its "
                 f"own process, {p.get('rounds', 1)} alternating round(s), all with {p['ours'].get('threads')} "
                 "onnxruntime intra-op "
                 "thread(s) (rtmlib's session rebuilt with that count; its own code unchanged).")
    lines.append("")
    rows = [["dwpose_edge Estimator (onnxruntime fp32, batched)",
             f"{ours:.2f} ±{p['ours']['per_person']['iqr_ms']:.2f}",
             "1.00x", "-", "-", "-"]]
    for name, peer in p["peers"].items():
        if peer.get("status") != "ok":
            rows.append([name, peer["status"], "-", "-", "-", "-"])
            continue
        pp = peer["per_person"]
        if name in ("ours_openvino", "ours_openvino_bf16", "ours_torch_bf16"):
            a = peer["agreement"]
            label = {"ours_openvino": "OpenVINO fp32", "ours_openvino_bf16": "OpenVINO bf16",
                     "ours_torch_bf16": "torch bf16"}[name]
            rows.append([f"dwpose_edge Estimator ({label} on the same weights, batched)",
                         f"{pp['median_ms']:.2f} ±{pp['iqr_ms']:.2f}", f"{pp['median_ms'] / ours:.2f}x",
                         f"{a['mean_px_error']:.3f}", _pct(a["within_1px"]), f"{a['mean_abs_score_diff']:.4f}"])
        elif name == "rtmlib":
            for mode, key in (("rtmlib, BGR frame (as documented)", "agreement_bgr_input"),
                              ("rtmlib, fed RGB (cv2.cvtColor first)", "agreement_rgb_input")):
                a = peer[key]
                timing = [f"{pp['median_ms']:.2f} ±{pp['iqr_ms']:.2f}", f"{pp['median_ms'] / ours:.2f}x"] \
                    if key == "agreement_bgr_input" else ["(same call)", ""]
                rows.append([mode] + timing + [f"{a['mean_px_error']:.3f}", _pct(a["within_1px"]),
                                               f"{a['mean_abs_score_diff']:.4f}"])
        else:
            a = peer["agreement"]
            rows.append(["plain onnxruntime loop (float64 crops, batch 1)",
                         f"{pp['median_ms']:.2f} ±{pp['iqr_ms']:.2f}",
                         f"{pp['median_ms'] / ours:.2f}x", f"{a['mean_px_error']:.3f}", _pct(a["within_1px"]),
                         f"{a['mean_abs_score_diff']:.4f}"])
    lines += _table(["implementation", "ms/person", "time vs ours", "mean px vs ours (image)", "within 1px",
                     "mean |score diff|"], rows)
    goal = (report.get("goal") or {}).get(model)
    if goal:
        lines.append("")
        if "ratio" in goal:
            lines.append(f"**Goal** {goal['target']}: measured exactly as rtmlib (this table, alternating rounds), "
                         f"our best identical-keypoint implementation **{goal['best']}** "
                         f"{goal['best_ms_per_person']:.2f} ms/person vs rtmlib {goal['rtmlib_ms_per_person']:.2f} "
                         f"-> **{goal['ratio']:.2f}x ({goal['status']})**; from the runtime rows' end-to-end column: "
                         f"{goal.get('row_best', '-')} {goal.get('row_ratio', '-')}x; rtmlib fed RGB gives the "
                         f"same keypoints for {_pct(goal.get('rtmlib_rgb_within_1px'))} within 1 px.")
        else:
            lines.append(f"**Goal** {goal['target']}: {goal['status']}")
    accurate = (report.get("goal_accurate") or {}).get(model)
    if accurate:
        lines.append("")
        if "ratio" in accurate:
            lines.append(f"**Goal** {accurate['target']}: fastest such implementation **{accurate['best']}** "
                         f"({_pct(accurate['within_2px'])} within 2 px) {accurate['best_ms_per_person']:.2f} "
                         f"ms/person vs rtmlib {accurate['rtmlib_ms_per_person']:.2f} -> "
                         f"**{accurate['ratio']:.2f}x ({accurate['status']})**.")
        else:
            lines.append(f"**Goal** {accurate['target']}: {accurate['status']}")
    lines += ["", "rtmlib 0.0.16 diverges from mmpose in two known ways: it normalizes the BGR frame with RGB "
              "mean/std (BGR fed as RGB: keypoints move), and scores a keypoint with the mean of the x/y maxima "
              "(mmpose: the min), hence the score difference even when fed RGB."]
    return lines


def _auto_md(report: dict, model: str) -> list[str]:
    auto = (report.get("auto") or {}).get(model)
    if not auto:
        return []
    lines = ["", "### runtime='auto', precision='auto'", ""]
    if "runtime" not in auto:
        return lines + [f"auto {auto.get('status')}"]
    lines.append(f"Chooses **{auto['runtime']} {auto['precision']}**: the fastest candidate passing its accuracy "
                 f"gate, timed at batch {auto['batch']} on the bundled photo crops (measured {auto['measured_at']}; "
                 "cached per CPU flags, package versions, weights).")
    lines.append("")
    rows = [[f"{t['runtime']} {t['precision']}", _f(t.get("ms_per_crop")), _pct(t.get("within_1px")),
             _pct(t.get("within_2px")), t.get("error") or "ok"] for t in auto["trials"]]
    return lines + _table(["candidate", "ms/crop", "within 1px of fp32", "2px", "status"], rows)


def _cold_start_md(report: dict, model: str) -> list[str]:
    table = (report.get("cold_start") or {}).get(model)
    if not table:
        return []
    threads = (report.get("settings") or {}).get("threads")
    lines = ["", f"### Cold start (fresh process, one person, {threads} thread(s); medians)", ""]
    rows = []
    for runtime, r in table.items():
        if r.get("status") != "ok":
            rows.append([runtime, r.get("status", "-")] + ["-"] * 6)
            continue
        rows.append([runtime, "ok", _f(r["import_s"], "{:.2f}"), _f(r["load_s"], "{:.2f}"), _f(r["first_s"], "{:.2f}"),
                     _f(r["total_s"], "{:.2f}"), _f(r["peak_rss_mb"], "{:.0f}"), "yes" if r["torch_loaded"] else "no"])
    return lines + _table(["runtime", "status", "import s", "load s", "first keypoints s", "total s (from launch)",
                           "peak RSS MB", "torch loaded"], rows)


def _scaling_md(report: dict, rows: list[dict]) -> list[str]:
    pks = person_keys(report)
    ok = [r for r in rows if r.get("scaling")]
    if not ok or not pks:
        return []
    lines = ["", "### Persons per image (end-to-end ms per image: batched (batch 16) / looped (batch 1), gain)", ""]
    body = []
    for r in ok:
        cells = [_label(r), r["precision"]]
        for k in pks:
            e = r["scaling"].get(k)
            if not e:
                cells.append("-")
                continue
            b, lo = e["batched"]["per_image"]["median_ms"], e["looped"]["per_image"]["median_ms"]
            cells.append(f"{b:.1f} / {lo:.1f} ({lo / b:.2f}x)")
        body.append(cells)
    return lines + _table(["runtime", "precision"] + [f"{k} persons" for k in pks], body)


CSV_BASE = ("model", "runtime", "precision", "device", "status", "reference", "threads", "model_mb", "load_ms",
            "rss_before_load_mb", "peak_rss_mb", "inference_precision", "e2e_ms_per_person", "speedup_vs_torch",
            "speedup_vs_rtmlib")
AGREEMENT = ("within_1px", "within_2px", "within_5px", "mean_px_error", "max_logit_diff")


def csv_rows(report: dict) -> tuple[list[str], list[dict]]:
    bks, pks = batch_keys(report), person_keys(report)
    cols = list(CSV_BASE)
    for k in bks:
        cols += [f"{k}_ms_per_crop", f"{k}_iqr_ms"]
    cols += list(AGREEMENT) + ["ap_vs_ref"] + [f"ap_gt_{p}" for p in PARTS]
    for k in pks:
        cols += [f"p{k}_batched_ms_per_image", f"p{k}_looped_ms_per_image"]
    out = []
    for r in report["rows"]:
        d = {c: r.get(c) for c in CSV_BASE}
        for k in bks:
            s = (r.get("latency") or {}).get(k) or {}
            d[f"{k}_ms_per_crop"], d[f"{k}_iqr_ms"] = s.get("median_ms"), s.get("iqr_ms")
        for a in AGREEMENT:
            d[a] = _ag(r, a)
        d["ap_vs_ref"] = (r.get("ap_vs_ref") or {}).get("wholebody")
        for p in PARTS:
            d[f"ap_gt_{p}"] = (r.get("ap_gt") or {}).get(p)
        for k in pks:
            e = (r.get("scaling") or {}).get(k) or {}
            for mode in ("batched", "looped"):
                d[f"p{k}_{mode}_ms_per_image"] = (e.get(mode) or {}).get("per_image", {}).get("median_ms")
        out.append(d)
    return cols, out


def write_report(report: dict, out_dir: str | os.PathLike, plot: bool = True) -> dict[str, Path]:
    """Write report.json, report.md, report.csv and (plot=True) accuracy_vs_latency.png; return their paths.

    The paths also go into `report['files']` (so report.json lists what was written next to it).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "report.md", "json": out / "report.json", "csv": out / "report.csv"}
    if plot:
        try:
            import matplotlib  # noqa: F401

            paths["png"] = out / "accuracy_vs_latency.png"
        except ImportError:
            print("accuracy_vs_latency.png not written: matplotlib is missing (pip install 'dwpose-edge[bench]')")
    report["files"] = {k: os.fspath(p) for k, p in paths.items()}
    paths["md"].write_text(markdown(report))
    cols, rows = csv_rows(report)
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    if "png" in paths:
        plot_accuracy_vs_latency(report, paths["png"])
    paths["json"].write_text(json.dumps(report, indent=2, default=str))
    return paths


# ----------------------------------------------------------------------------- pytest-benchmark

def from_pytest_benchmark(path: str | os.PathLike) -> dict:
    """Turn a `pytest bench/benchmarks/ --benchmark-json FILE` result into the report dict `write_report` takes.

    One row per (model, runtime, precision, device); the latency of batch b is the case with b
    persons (else the most persons) at batch b, per crop; every case also goes to `cases`.
    """
    doc = json.loads(Path(path).read_text())
    # test_infer_crops cases carry runtime + persons; test_bench_int8 cases carry the int8/fp32 timings
    benches = [b for b in doc.get("benchmarks", []) if {"runtime", "persons"} <= set(b.get("extra_info") or {})]
    int8 = [dict(b["extra_info"], name=b["name"]) for b in doc.get("benchmarks", [])
            if "int8_ms_per_crop" in (b.get("extra_info") or {})]
    if not benches:
        raise InputError(f"{path} holds no dwpose-edge benchmark (run: pytest bench/benchmarks/ --benchmark-json {path})")
    first = benches[0]["extra_info"]
    mi = doc.get("machine_info") or {}
    machine = dict(first.get("machine") or {})
    machine.setdefault("cpu", (mi.get("cpu") or {}).get("brand_raw"))
    machine.setdefault("python", mi.get("python_version"))
    rows: dict[tuple, dict] = {}
    cases = []
    for b in benches:
        e = b["extra_info"]
        st = b["stats"]
        persons, batch = int(e["persons"]), int(e["batch"])
        key = (e["model"], e["runtime"], e["precision"], e.get("device", "cpu"))
        row = rows.setdefault(key, {"model": key[0], "runtime": key[1], "precision": key[2], "device": key[3],
                                    "status": "ok", "reference": bool(e.get("reference")), "threads": e.get("threads"),
                                    "latency": {}, "_persons": {}})
        for k in ("load_ms", "model_mb", "agreement", "ap_gt", "ap_vs_ref", "inference_precision"):
            if e.get(k) is not None:
                row[k] = e[k]
        per = {"median_ms": round(st["median"] * 1000 / persons, 4), "iqr_ms": round(st["iqr"] * 1000 / persons, 4),
               "min_ms": round(st["min"] * 1000 / persons, 4), "n": int(st["rounds"])}
        cases.append({"name": b["name"], "model": key[0], "runtime": key[1], "precision": key[2], "batch": batch,
                      "persons": persons, "ms_per_call": round(st["median"] * 1000, 4), "ms_per_crop": per["median_ms"],
                      "iqr_ms_per_crop": per["iqr_ms"], "rounds": int(st["rounds"])})
        k = f"b{batch}"
        best = row["_persons"].get(k)
        if best is None or persons == batch or (best != batch and persons > best):
            row["latency"][k] = per
            row["_persons"][k] = persons
    out_rows = []
    for row in rows.values():
        row.pop("_persons")
        out_rows.append(row)
    for r in out_rows:  # speed-up vs torch fp32 on CPU at the largest batch, as run_bench
        torch_cpu = next((t for t in out_rows if t["model"] == r["model"] and t["runtime"] == "torch"
                          and t["precision"] == "fp32" and t["device"] == "cpu"), None)
        if torch_cpu and r["latency"]:
            k = max(r["latency"], key=lambda x: int(x[1:]))
            if k in torch_cpu["latency"]:
                r["speedup_vs_torch"] = round(torch_cpu["latency"][k]["median_ms"] / r["latency"][k]["median_ms"], 2)
    models = {}
    for b in benches:
        e = b["extra_info"]
        models.setdefault(e["model"], {"weights": e.get("weights"), "input_size": e.get("input_size"),
                                       "n_crops": e.get("n_crops"), "crops_sha256": e.get("crops_sha256"),
                                       "reference": e.get("reference_name")})
    notes = list(dict.fromkeys(n for b in benches for n in (b["extra_info"].get("notes") or [])))
    return {"format": "dwpose-edge-bench/1", "created": doc.get("datetime"), "source": os.fspath(path),
            "machine": machine, "cuda": first.get("cuda"),
            "settings": {"batches": sorted({c["batch"] for c in cases}), "threads": first.get("threads"),
                         "persons": sorted({c["persons"] for c in cases}), "repeats": "pytest-benchmark rounds",
                         "warmup": "pytest-benchmark", "scaling_repeats": "-", "peer_persons": None},
            "data": first.get("data") or {}, "notes": notes, "models": models, "rows": out_rows, "peers": {},
            "cases": cases, "int8_vs_fp32": int8,
            "method": {"latency": "pytest-benchmark, in one process: Estimator.infer_crops on `persons` saved "
                                  "crops at batch size `batch`; ms per crop = median call time / persons"}}
