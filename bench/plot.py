"""accuracy_vs_latency.png: ms per crop (x) against whole-body AP (y); marker = runtime, colour = precision."""
from __future__ import annotations

import os
from pathlib import Path

from dwpose_edge.bench.derive import largest_batch

MARKERS = {"torch": "o", "onnxruntime": "s", "openvino": "^", "ncnn": "D", "litert": "v"}
COLOURS = {"fp32": "#1f77b4", "fp16": "#ff7f0e", "int8": "#2ca02c"}
SHORT = {"torch": "torch", "onnxruntime": "ORT", "openvino": "OV", "ncnn": "ncnn", "litert": "LiteRT"}


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both lower latency and higher AP, sorted by latency."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def _points(report: dict, key: str) -> list[dict]:
    pts = []
    for r in report["rows"]:
        ap = (r.get(key) or {}).get("wholebody")
        lb = largest_batch(r) if r.get("status") == "ok" else None
        if ap is None or lb is None or ap < 0:
            continue
        pts.append({"x": lb[1], "y": ap, "batch": lb[0][1:], **{k: r[k] for k in ("model", "runtime", "precision")},
                    "device": r.get("device", "cpu"), "reference": r.get("reference", False)})
    return pts


def plot_accuracy_vs_latency(report: dict, path: str | os.PathLike) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    panels = [("ap_gt", "AP vs ground truth (whole body)"), ("ap_vs_ref", "AP vs reference keypoints (whole body)")]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6), dpi=110, constrained_layout=True)
    multi_model = len(report.get("models") or {}) > 1
    batches = sorted({p["batch"] for key, _ in panels for p in _points(report, key)}, key=int)
    labelled: list = []
    for ax, (key, title) in zip(axes, panels):
        pts = _points(report, key)
        ax.set_title(title, fontsize=12)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xlabel(f"inference latency, ms per crop at batch {'/'.join(batches) or '-'} (median)", fontsize=10)
        ax.set_ylabel("AP", fontsize=10)
        if not pts:
            ax.text(0.5, 0.5, "no AP in this report\n(no ground truth, or xtcocotools missing)", ha="center",
                    va="center", transform=ax.transAxes, fontsize=11, color="grey")
            continue
        for p in pts:
            ax.scatter(p["x"], p["y"], marker=MARKERS.get(p["runtime"], "x"), s=110 if p["reference"] else 80,
                       c=COLOURS.get(p["precision"], "grey"), edgecolors="black", linewidths=1.4 if p["reference"]
                       else 0.6, zorder=3)
        front = pareto_front([(p["x"], p["y"]) for p in pts])
        if len(front) > 1:
            ax.plot(*zip(*front), "--", color="dimgrey", lw=1.2, zorder=2, drawstyle="steps-post")
        ax.scatter(*zip(*front), s=260, facecolors="none", edgecolors="dimgrey", lw=1.0, zorder=2)
        xs = [p["x"] for p in pts]
        xlo, xhi = min(xs), max(xs)
        if xhi / max(xlo, 1e-9) > 6:
            ax.set_xscale("log")
            ax.set_xlim(xlo / 1.4, xhi * 1.4)
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(ax.get_xlabel() + ", log scale", fontsize=10)
        else:
            span = (xhi - xlo) or xhi or 1.0
            ax.set_xlim(max(0, xlo - 0.15 * span), xhi + 0.15 * span)
        lo, hi = min(p["y"] for p in pts), max(p["y"] for p in pts)
        pad = max(0.05, (hi - lo) * 0.2)
        ax.set_ylim(max(0.0, lo - pad) - 0.01, min(1.0, hi + pad) + 0.01)
        labelled.append((ax, pts))
    if any("random" in str(m.get("weights", "")) for m in (report.get("models") or {}).values()):
        axes[0].set_title(axes[0].get_title(), fontsize=12, pad=20)
        axes[0].text(0.5, 1.01, "UNTRAINED (random) weights: this AP is meaningless", transform=axes[0].transAxes,
                     ha="center", va="bottom", color="#c00000", fontsize=9.5, fontweight="bold")
    runtimes = [r for r in MARKERS if any(x.get("runtime") == r for x in report["rows"] if x.get("status") == "ok")]
    precisions = [p for p in COLOURS if any(x.get("precision") == p for x in report["rows"] if x.get("status") == "ok")]
    handles = [Line2D([], [], marker=MARKERS[r], ls="", color="white", markeredgecolor="black", markersize=9,
                      label=r) for r in runtimes]
    handles += [Line2D([], [], marker="o", ls="", color=COLOURS[p], markersize=9, label=p) for p in precisions]
    handles += [Line2D([], [], ls="--", color="dimgrey", label="Pareto front (circled)")]
    fig.legend(handles=handles, loc="outside right center", fontsize=10, frameon=False)
    m = report.get("machine") or {}
    models = ", ".join(report.get("models") or {})
    threads = _threads(report["settings"].get("threads"))
    fig.suptitle(f"{models}: accuracy vs latency on {m.get('cpu', '?')} ({threads})", fontsize=12)
    fig.canvas.draw()  # run the constrained layout once, then freeze it so label positions stay valid
    fig.set_layout_engine("none")
    for ax, pts in labelled:
        _label_points(fig, ax, pts, multi_model)
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


# label positions tried in order, (dx, dy) in points from the marker, with the text alignment they need
_CANDIDATES = [(0, 9, "center", "bottom"), (0, -9, "center", "top"), (9, 0, "left", "center"),
               (-9, 0, "right", "center"), (8, 10, "left", "bottom"), (8, -10, "left", "top"),
               (-8, 10, "right", "bottom"), (-8, -10, "right", "top"), (0, 24, "center", "bottom"),
               (0, -24, "center", "top"), (0, 40, "center", "bottom"), (0, -40, "center", "top"),
               (24, 24, "left", "bottom"), (24, -24, "left", "top"), (-24, 24, "right", "bottom"),
               (-24, -24, "right", "top"), (0, 56, "center", "bottom"), (0, -56, "center", "top")]


def _threads(n) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def _label_points(fig, ax, pts: list[dict], multi_model: bool) -> None:
    """Greedy placement: each label takes the first candidate position whose box overlaps no marker, no
    earlier label and stays inside the axes (else the least overlapping one); far labels get a leader line."""
    renderer = fig.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    px = fig.dpi / 72.0
    obstacles = []
    for q in pts:
        x, y = ax.transData.transform((q["x"], q["y"]))
        r = 7 * px
        obstacles.append((x - r, y - r, x + r, y + r))
    for q in sorted(pts, key=lambda q: (q["x"], -q["y"])):
        text = ((f"{q['model']} " if multi_model else "") + f"{SHORT.get(q['runtime'], q['runtime'])} "
                f"{q['precision']}" + (f" {q['device']}" if q["device"] != "cpu" else "") +
                (" (ref)" if q["reference"] else ""))
        best = None
        for dx, dy, ha, va in _CANDIDATES:
            ann = ax.annotate(text, (q["x"], q["y"]), xytext=(dx, dy), textcoords="offset points", fontsize=8.5,
                              ha=ha, va=va, zorder=4)
            bb = ann.get_window_extent(renderer).expanded(1.06, 1.15)
            box = (bb.x0, bb.y0, bb.x1, bb.y1)
            cost = sum(_overlap(box, o) for o in obstacles)
            if not (axes_box.x0 <= bb.x0 and bb.x1 <= axes_box.x1 and axes_box.y0 <= bb.y0 and bb.y1 <= axes_box.y1):
                cost += 1e6
            ann.remove()
            if best is None or cost < best[0]:
                best = (cost, dx, dy, ha, va, box)
            if cost == 0:
                break
        _, dx, dy, ha, va, box = best
        far = abs(dx) > 12 or abs(dy) > 12
        ax.annotate(text, (q["x"], q["y"]), xytext=(dx, dy), textcoords="offset points", fontsize=8.5, ha=ha,
                    va=va, zorder=4, arrowprops={"arrowstyle": "-", "lw": 0.7, "color": "dimgrey", "shrinkA": 0,
                                                 "shrinkB": 6} if far else None)
        obstacles.append(box)


def _overlap(a: tuple, b: tuple) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0
