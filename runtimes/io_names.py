"""Read a pose model's input size and output order from its declared shapes instead of hard-coding names."""
from __future__ import annotations

from collections.abc import Sequence

from dwpose_edge.errors import ModelFileError


def input_size_from_shape(shape: Sequence, source: str, fallback: tuple[int, int] | None) -> tuple[int, int]:
    """(W, H) from an NCHW input shape whose H and W may be symbolic (then `fallback` is required)."""
    if len(shape) != 4:
        raise ModelFileError(f"{source}: input has rank {len(shape)}, expected NCHW")
    h, w = shape[2], shape[3]
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        if fallback is not None and tuple(fallback) != (w, h):
            raise ModelFileError(f"{source}: model input is {w}x{h} (WxH) but {fallback[0]}x{fallback[1]} was expected "
                                 "(a file for another model size?)")
        return w, h
    if fallback is None:
        raise ModelFileError(f"{source}: input H/W are dynamic; pass input_size=(W, H)")
    return tuple(fallback)  # type: ignore[return-value]


def order_outputs(names: Sequence[str], last_dims: Sequence[int | None], input_size: tuple[int, int]) -> tuple[int, int]:
    """Indices of (simcc_x, simcc_y) among the outputs: by name when named so, else by bin count 2W vs 2H."""
    if len(names) != 2:
        raise ModelFileError(f"a SimCC pose model has 2 outputs, this one has {len(names)}: {list(names)}")
    lower = [n.lower() for n in names]
    if "simcc_x" in lower and "simcc_y" in lower:
        return lower.index("simcc_x"), lower.index("simcc_y")
    w, h = input_size
    if last_dims[0] == 2 * w and last_dims[1] == 2 * h:
        return 0, 1
    if last_dims[0] == 2 * h and last_dims[1] == 2 * w:
        return 1, 0
    return 0, 1  # mmdeploy's order when shapes are dynamic and names differ
