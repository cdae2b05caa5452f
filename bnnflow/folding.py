"""Folding: how many processing elements (PE) and SIMD lanes each layer gets.

A layer with MW inputs (padded to a multiple of SIMD) and MH outputs takes
NF = MH / PE neuron folds and SF = MW_pad / SIMD synapse folds, so one vector
costs NF * SF cycles; the network runs at the rate of its slowest layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .packing import pad_to_multiple


class FoldingError(ValueError):
    """A folding that the engines cannot implement."""


@dataclass(frozen=True)
class LayerFolding:
    pe: int
    simd: int


def cycles_per_vector(in_features: int, out_features: int, fold: LayerFolding) -> int:
    """NF * SF for one layer."""
    return (out_features // fold.pe) * (pad_to_multiple(in_features, fold.simd) // fold.simd)


def validate(shapes: list[tuple[int, int]], folding: list[LayerFolding], source: str = "folding") -> None:
    """Raise :class:`FoldingError` naming the layer and field when a folding is impossible."""
    if len(folding) != len(shapes):
        raise FoldingError(f"{source}: {len(folding)} layer entries given, the network has {len(shapes)} layers")
    for i, ((mw, mh), f) in enumerate(zip(shapes, folding)):
        where = f"{source}: layer {i} (MW={mw}, MH={mh})"
        for name in ("pe", "simd"):
            value = getattr(f, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FoldingError(f"{where}: {name.upper()}={value!r} must be a positive integer")
        if mh % f.pe:
            raise FoldingError(f"{where}: PE={f.pe} does not divide MH={mh} (neurons are not padded)")
        if f.simd > mw:
            raise FoldingError(f"{where}: SIMD={f.simd} is wider than the {mw} inputs")


def largest_divisor_at_most(n: int, limit: int) -> int:
    """The largest divisor of ``n`` that is at most ``limit`` (a PE the engines accept)."""
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def default_folding(shapes: list[tuple[int, int]], max_simd: int = 32, max_pe: int = 16,
                    channels: list[int | None] | None = None) -> list[LayerFolding]:
    """A balanced default: each layer gets at most ``max_simd`` x ``max_pe``.

    SIMD is the largest power of two <= min(MW, max_simd) (inputs are padded),
    or for a convolution (``channels[i]``: its input channels) the largest
    divisor of its channels <= max_simd, since a word holds the channels of
    one window position; PE is the largest divisor of MH <= max_pe.
    """
    folding = []
    for i, (mw, mh) in enumerate(shapes):
        c = channels[i] if channels else None
        if c:
            simd = largest_divisor_at_most(c, max_simd)
        else:
            simd = 1
            while simd * 2 <= min(mw, max_simd):
                simd *= 2
        folding.append(LayerFolding(pe=largest_divisor_at_most(mh, max_pe), simd=simd))
    return folding


def load_folding(path: str | Path) -> list[LayerFolding]:
    """Read a folding file: ``{"layers": [{"pe": 16, "simd": 32}, ...]}`` or a bare list."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FoldingError(f"{path}: folding file not found") from None
    except json.JSONDecodeError as exc:
        raise FoldingError(f"{path}: not valid JSON ({exc})") from None
    entries = data.get("layers") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise FoldingError(f'{path}: expected {{"layers": [{{"pe": .., "simd": ..}}, ...]}}')
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) - {"pe", "simd"} or not {"pe", "simd"} <= set(entry):
            raise FoldingError(f'{path}: layer {i} must be an object with exactly "pe" and "simd", got {entry!r}')
        out.append(LayerFolding(pe=entry["pe"], simd=entry["simd"]))
    return out
