"""Choose each layer's PE and SIMD for a device, a clock and a target: ``bnnflow fold``.

The pipeline runs at the pace of its slowest layer, so lanes spent on a layer
that is already faster than the slowest one are wasted. Given a target number
of cycles per image C, every layer gets its cheapest folding with NF*SF <= C
(cheapest by the yosys-measured model of :mod:`bnnflow.costs`), which puts every
layer close to C. C comes from ``--target-fps`` at the clock, or is the smallest
C whose cheapest foldings fit the LUT / flip-flop / block-RAM budget (the
device minus an allowance for the DMA and interconnect, or ``--max-lut``).

Candidates per layer: every PE dividing MH (neurons are not padded) and, per
synapse fold count SF, the narrowest SIMD giving it, ``ceil(MW / SF)``; the
inputs are padded to SF*SIMD, so a SIMD dividing MW wastes nothing and wins
any tie. A convolution's SIMD divides its input channels (its sliding-window
unit reads a pixel's channels in whole words) and its cycles per image are
NF*SF times its output pixels; its sliding-window unit and max-pool are priced
with it (:meth:`bnnflow.costs.CostModel.conv_units`). With the HLS engine
among the targets, stream words stay within its 4096-bit limit
(:func:`bnnflow.hlsgen.check_widths`). The accelerator's DMA streams must keep
up too: an image's input beats (and score beats) may not exceed C.

Across layers the LUT, flip-flop and block-RAM budgets are shared: a
Lagrangian search weighs block RAM against LUTs (a memory can be LUT RAM or
block RAM depending on its depth, which the folding sets) and keeps the
cheapest combination within all three. The result is written as the folding
JSON ``bnnflow export --folding`` reads.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import accel
from . import artifact as art
from .costs import (PLATFORM_ALLOWANCE, CostModel, Device, LayerShape, Resources, load_model, total)
from .folding import LayerFolding

#: The one method whose layers a run's config.json alone describes (bnnflow.model.networks.BNNMLP); the
#: others' widths come from export-time calibration and deployment (docs/DEPLOY.md), so fold reads their export.
MAPPED_METHOD, MAPPED_ARCH = "bnn", "mlp"


class FoldError(ValueError):
    """No folding meets the target or the budget (the message says which layer and by how much)."""


@dataclass(frozen=True)
class LayerKind:
    """A layer before folding: what the engines compute and its shape."""

    kind: str
    mw: int
    mh: int
    input_bits: int
    weight_bits: int = 1
    weight_encoding: str = art.SYM
    n_thresholds: int = -1      # -1: the kind's default (1 threshold, or none for a score)
    affine_bits: int = 0
    mul_bits: int = 0
    conv: art.ConvSpec | None = None   # a convolution: MW = kernel^2 * channels, one vector per output pixel

    @classmethod
    def of(cls, spec: art.LayerSpec) -> LayerKind:
        return cls(spec.kind, spec.in_features, spec.out_features, spec.input_bits, spec.weight_bits,
                   spec.weight_encoding, spec.n_thresholds, spec.affine_bits, spec.mul_bits, spec.conv)

    def shape(self, pe: int, simd: int) -> LayerShape:
        return LayerShape(self.kind, self.mw, self.mh, pe, simd, self.input_bits, self.weight_bits,
                          self.weight_encoding, self.n_thresholds, self.affine_bits, self.mul_bits, self.conv)

    def describe(self) -> str:
        """``MW -> MH`` of a FC layer; ``HxWxC kCk [MP2]`` of a conv (as bench/cnv.py and report print it)."""
        return conv_shape(self.conv, self.mh) if self.conv else f"{self.mw} -> {self.mh}"


def conv_shape(c: art.ConvSpec, out_channels: int) -> str:
    """A convolution in one word: input map, output channels, kernel, pad, pool (``30x30x64 64C3 MP2``)."""
    return (f"{c.ifm_h}x{c.ifm_w}x{c.channels} {out_channels}C{c.kernel}" + (f" pad {c.pad}" if c.pad else "")
            + (f" MP{c.pool}" if c.pool else ""))


def layers_from_sizes(sizes: Sequence[int], input_bits: int) -> list[LayerKind]:
    """The layers ``bnnflow export`` makes of a BNN MLP with these sizes (input, hidden..., classes):
    an integer first layer on ``input_bits``-bit pixels, XNOR threshold layers, an XNOR score layer.
    """
    kinds = [art.INT_THRESHOLD] + [art.XNOR_THRESHOLD] * (len(sizes) - 3) + [art.XNOR_SCORE]
    return [LayerKind(k, mw, mh, input_bits if i == 0 else 1)
            for i, (k, mw, mh) in enumerate(zip(kinds, sizes, sizes[1:]))]


def network_layers(path: str | Path) -> tuple[list[LayerKind], str]:
    """(layers, description) of a training run folder or an export folder, without torch.

    A BNN run folder's ``config.json`` gives the sizes (input features, hidden,
    classes) and the input bits; an export folder's ``manifest.json`` its
    layers. Another method's run is read through its export (``RUN/export``):
    its widths (activation bits, real first/last layers, score affines) are
    decided when it is exported.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder (expected a training run or an export folder)")
    config_path, manifest_path = path / "config.json", path / art.MANIFEST
    if config_path.is_file():
        from .jsonfile import read_json_object

        config = read_json_object(config_path)
        method, arch = config.get("method"), config.get("arch", MAPPED_ARCH)
        if method == "float":
            raise ValueError(f"{config_path}: --method float with arch {arch!r} has no hardware mapping: its "
                             "weights and activations are real (train a quantized method)")
        if method != MAPPED_METHOD or arch != MAPPED_ARCH:
            if (path / "export" / art.MANIFEST).is_file():
                layers, _ = network_layers(path / "export")
                return layers, f"run {path} (layers of its export)"
            if arch != MAPPED_ARCH:
                raise ValueError(f"{config_path}: --method {method} with arch {arch!r}: its layer shapes (maps, "
                                 f"kernels, pools) are in its export; run `bnnflow export {path}` first, then fold "
                                 "it (or fold the export folder)")
            raise ValueError(f"{config_path}: the layer widths of a --method {method} net are set when it is "
                             f"exported (activation calibration, real first/last layers): run `bnnflow export "
                             f"{path}` first, then fold it (or fold the export folder)")
        for key in ("input_features", "hidden", "num_classes", "input_bits"):
            if key not in config:
                raise ValueError(f"{config_path}: missing field '{key}'")
        hidden = config["hidden"]
        if not isinstance(hidden, list) or not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise ValueError(f"{config_path}: field 'hidden' is {hidden!r}, expected a list of positive integers")
        sizes = [config["input_features"], *hidden, config["num_classes"]]
        return layers_from_sizes(sizes, int(config["input_bits"])), f"run {path}"
    if manifest_path.is_file():
        a = art.load(path, verify_checksums=False, check_model=False)
        return [LayerKind.of(l) for l in a.layers], f"export {path}"
    raise FileNotFoundError(f"{path}: neither a training run (config.json) nor an export (manifest.json)")


@dataclass(frozen=True)
class Candidate:
    """One folding of one layer, its cycles and its estimated cost (the layer and its repacker shares)."""

    pe: int
    simd: int
    cycles: int
    cost: Resources


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _hls_ok(spec: art.LayerSpec) -> bool:
    from .hlsgen import MAX_WORD_BITS, word_widths

    return all(bits <= MAX_WORD_BITS for _, _, bits in word_widths(spec))


def stream_beats(spec: art.LayerSpec, side: str) -> int:
    """DMA beats per image of the accelerator's input (first layer) or output (last layer) stream.

    Words per image: SF (NF) for a FC layer, a conv's whole input map (output map) in SIMD- (PE-) element words.
    """
    if side == "in":
        s = accel.Stream(spec.in_stream_bits, spec.in_stream_words)
    else:
        s = accel.Stream(spec.out_stream_bits, spec.out_stream_words)
    return s.words_per_image * s.beats_per_word


def candidates(layers: Sequence[LayerKind], k: int, model: CostModel, hls: bool = True) -> list[Candidate]:
    """The Pareto-optimal foldings of layer ``k`` (fewer cycles or fewer resources than any other).

    Each candidate's cost is the layer's ``bnn_mvtu`` (and a conv's sliding
    window and pool) plus the parts of its neighbouring repackers that its own
    PE / SIMD set (costs.repack_features: the read multiplexer follows the
    consumer's SIMD, the write side the producer's PE); the shell is added for
    the whole network. A conv's SIMD divides its channels; its cycles are
    NF*SF per output pixel.
    """
    layer = layers[k]
    seen: set[tuple[int, int]] = set()
    out: list[Candidate] = []
    if layer.conv is not None:
        simds = _divisors(layer.conv.channels)
    else:
        simds = sorted({-(-layer.mw // sf) for sf in range(1, layer.mw + 1)})
    for pe in _divisors(layer.mh):
        for simd in simds:
            if (pe, simd) in seen:
                continue
            seen.add((pe, simd))
            spec = layer.shape(pe, simd).spec(k)
            if hls and not _hls_ok(spec):
                continue
            cycles = spec.cycles_per_image
            if k == 0:
                cycles = max(cycles, stream_beats(spec, "in"))
            if k == len(layers) - 1:
                cycles = max(cycles, stream_beats(spec, "out"))
            last = k == len(layers) - 1
            cost = (model.layer(spec) + model.conv_units(spec)
                    + model.repack_share(spec, consumes=k > 0, produces=not last,
                                         consumer_conv=not last and layers[k + 1].conv is not None))
            out.append(Candidate(pe, simd, cycles, cost))
    return pareto(out)


def pareto(cands: list[Candidate]) -> list[Candidate]:
    """Drop candidates another one beats or equals in cycles, LUT, FF, BRAM and DSP (ties: less padding first)."""
    def key(c: Candidate) -> tuple:
        return (c.cycles, c.cost.lut, c.cost.bram36, c.cost.ff, c.cost.dsp, c.simd)

    kept: list[Candidate] = []
    for c in sorted(cands, key=key):
        if not any(o.cycles <= c.cycles and o.cost.lut <= c.cost.lut and o.cost.bram36 <= c.cost.bram36
                   and o.cost.ff <= c.cost.ff and o.cost.dsp <= c.cost.dsp for o in kept):
            kept.append(c)
    return kept


@dataclass(frozen=True)
class Budget:
    """What the accelerator (bnnflow_accel: layers, repackers, shell) may use."""

    lut: float
    ff: float
    bram36: float
    dsp: float = math.inf      # DSP48 slices: multiply lanes of 4-bit and wider layers (costs.dsp_slices)

    def fits(self, r: Resources) -> bool:
        return r.lut <= self.lut and r.ff <= self.ff and r.bram36 <= self.bram36 and r.dsp <= self.dsp


#: Share of the device's LUT budget kept free for the model's error. The model is within a few
#: percent of yosys unit by unit, but yosys on the whole flattened LFC accelerator counted 9%
#: more LUTs than the model (docs/PERFORMANCE.md, "LFC folded by bnnflow fold").
MODEL_MARGIN = 0.10


def budget_for(device: Device, max_lut: int | None = None) -> Budget:
    """What the accelerator may use on ``device``.

    LUT: ``max_lut`` when given (taken as a bound on the model's estimate),
    else the device minus :data:`bnnflow.costs.PLATFORM_ALLOWANCE` less
    :data:`MODEL_MARGIN`; FF and BRAM36: the device minus the allowance (block
    RAM counts are exact in the model); DSP: the device's (the count is exact too).
    """
    a = PLATFORM_ALLOWANCE
    lut = float(max_lut) if max_lut is not None else math.floor((device.lut - a.lut) * (1 - MODEL_MARGIN))
    return Budget(lut=lut, ff=device.ff - a.ff, bram36=device.bram36 - a.bram36, dsp=device.dsp - a.dsp)


@dataclass
class FoldResult:
    """The chosen folding and what the model says about it."""

    layers: list[LayerKind]
    folding: list[LayerFolding]
    target_cycles: int
    cycles: list[int]                      # per layer NF*SF*pixels (stream beats included for the ends)
    units: list[tuple[str, Resources]]     # costs.CostModel.network
    budget: Budget
    device: Device
    clock_mhz: float

    @property
    def cycles_per_image(self) -> int:
        return max(self.cycles)

    @property
    def images_per_second(self) -> float:
        return self.clock_mhz * 1e6 / self.cycles_per_image

    @property
    def estimate(self) -> Resources:
        return total(r for _, r in self.units)

    def to_json(self) -> dict[str, Any]:
        """The folding file: ``layers`` is what ``bnnflow export --folding`` reads; the rest documents it."""
        est = self.estimate.rounded()
        return {
            "layers": [{"pe": f.pe, "simd": f.simd} for f in self.folding],
            "fold": {"device": self.device.name, "part": self.device.part, "clock_mhz": self.clock_mhz,
                     "cycles_per_image": self.cycles_per_image,
                     "images_per_second": round(self.images_per_second, 1),
                     "layer_cycles": self.cycles,
                     "estimate": {"lut": est.lut, "ff": est.ff, "bram36": est.bram36, "dsp": est.dsp,
                                  "source": "model estimate (bnnflow.costs, yosys-measured unit costs)"},
                     "budget": {"lut": self.budget.lut, "ff": self.budget.ff, "bram36": self.budget.bram36,
                                "dsp": self.budget.dsp}},
        }


def _choose(cands: list[list[Candidate]], target: int, budget: Budget) -> list[Candidate] | None:
    """Per layer a candidate with cycles <= target; the least LUTs whose sum fits ``budget``, or None.

    Lagrangian relaxation: minimise LUT + lam_b*BRAM + lam_f*FF per layer
    (then the sums are minimal for that weighting) over a grid of weights; the
    feasible choice with the fewest LUTs wins.
    """
    allowed = [[c for c in cs if c.cycles <= target] for cs in cands]
    if any(not a for a in allowed):
        return None
    arrays = [np.array([[c.cost.lut, c.cost.bram36, c.cost.ff, c.cost.dsp] for c in a]) for a in allowed]
    lut_per_bram = budget.lut / max(budget.bram36, 1e-9)
    lut_per_ff = budget.lut / max(budget.ff, 1e-9)
    lut_per_dsp = budget.lut / max(min(budget.dsp, 1e9), 1e-9)
    uses_dsp = any(a[:, 3].any() for a in arrays)
    best: list[Candidate] | None = None
    best_lut = math.inf
    for wb in (0.0, *np.geomspace(1e-3, 1e3, 25)):
        for wf in (0.0, 0.1, 1.0, 10.0):
            for wd in ((0.0, 0.1, 1.0, 10.0, 100.0) if uses_dsp else (0.0,)):
                pick = [int(np.argmin(a[:, 0] + wb * lut_per_bram * a[:, 1] + wf * lut_per_ff * a[:, 2]
                                      + wd * lut_per_dsp * a[:, 3] + 1e-6 * np.arange(len(a)))) for a in arrays]
                s = sum(a[i] for a, i in zip(arrays, pick))
                if (s[0] <= budget.lut and s[1] <= budget.bram36 and s[2] <= budget.ff and s[3] <= budget.dsp
                        and s[0] < best_lut):
                    best, best_lut = [al[i] for al, i in zip(allowed, pick)], s[0]
    return best


def fold(layers: Sequence[LayerKind], device: Device, clock_mhz: float, target_fps: float | None = None,
         max_lut: int | None = None, hls: bool = True, model: CostModel | None = None,
         budget: Budget | None = None) -> FoldResult:
    """Choose the folding (see the module docstring); raises :class:`FoldError` when nothing fits.

    ``budget`` overrides the one :func:`budget_for` derives from ``device`` and ``max_lut``.
    """
    if clock_mhz <= 0 or not math.isfinite(clock_mhz):
        raise ValueError(f"--clock {clock_mhz}: must be a positive number of MHz")
    if target_fps is not None and max_lut is not None:
        raise ValueError("give --target-fps or --max-lut, not both")
    model = model or load_model()
    layers = list(layers)
    budget = budget or budget_for(device, max_lut)
    cands = [candidates(layers, k, model, hls) for k in range(len(layers))]

    def shell(choice: list[Candidate]) -> Resources:
        specs = [layers[k].shape(c.pe, c.simd).spec(k) for k, c in enumerate(choice)]
        return model.shell(specs)

    def fit(target: int) -> list[Candidate] | None:
        # the shell's size follows the widest memory word, so settle it in a few rounds
        reserve = Resources()
        for _ in range(4):
            b = Budget(budget.lut - reserve.lut, budget.ff - reserve.ff, budget.bram36 - reserve.bram36,
                       budget.dsp - reserve.dsp)
            choice = _choose(cands, target, b)
            if choice is None:
                return None
            need = shell(choice)
            if b.fits(total(c.cost for c in choice)) and budget.fits(total(c.cost for c in choice) + need):
                return choice
            reserve = need
        return None

    if target_fps is not None:
        if target_fps <= 0 or not math.isfinite(target_fps):
            raise ValueError(f"--target-fps {target_fps}: must be a positive number of images per second")
        target = math.floor(clock_mhz * 1e6 / target_fps)
        if target < 1:
            raise FoldError(f"--target-fps {target_fps:g} at {clock_mhz:g} MHz leaves less than one clock cycle "
                            f"per image (at most {clock_mhz * 1e6:,.0f} images/s)")
        fastest = [min(c.cycles for c in cs) for cs in cands]
        slow = [k for k, f in enumerate(fastest) if f > target]
        if slow:
            k = slow[0]
            raise FoldError(f"--target-fps {target_fps:g} at {clock_mhz:g} MHz needs <= {target} cycles per image; "
                            f"layer {k} ({layers[k].describe()}) takes at least {fastest[k]} "
                            f"(at most {clock_mhz * 1e6 / max(fastest):,.0f} images/s)")
        choice = fit(target)
        if choice is None:
            cheapest = _cheapest_at(cands, target)
            need = total(c.cost for c in cheapest) + shell(cheapest)
            raise FoldError(f"--target-fps {target_fps:g} at {clock_mhz:g} MHz needs <= {target} cycles per image; "
                            f"the cheapest such folding needs about {_over(need, budget)} on {device.name}")
    else:
        values = sorted({c.cycles for cs in cands for c in cs})
        lo_cycles = max(min(c.cycles for c in cs) for cs in cands)
        values = [v for v in values if v >= lo_cycles]
        if fit(values[-1]) is None:
            _raise_nothing_fits(layers, cands, budget, device, shell)
        lo, hi = 0, len(values) - 1                          # fit(values[hi]) holds
        while lo < hi:
            mid = (lo + hi) // 2
            if fit(values[mid]) is not None:
                hi = mid
            else:
                lo = mid + 1
        target = values[hi]
        choice = fit(target)
        assert choice is not None
    folding = [LayerFolding(c.pe, c.simd) for c in choice]
    specs = [layers[k].shape(f.pe, f.simd).spec(k) for k, f in enumerate(folding)]
    cycles = [c.cycles for c in choice]
    return FoldResult(layers, folding, target, cycles, model.network(specs), budget, device, clock_mhz)


def _cheapest_at(cands: list[list[Candidate]], target: int) -> list[Candidate]:
    return [min((c for c in cs if c.cycles <= target), key=lambda c: (c.cost.lut, c.cost.bram36)) for cs in cands]


def _over(need: Resources, budget: Budget) -> str:
    parts = []
    for name, have, label in (("lut", budget.lut, "LUT"), ("bram36", budget.bram36, "BRAM36"),
                              ("ff", budget.ff, "FF"), ("dsp", budget.dsp, "DSP")):
        value = getattr(need, name)
        if value > have:
            parts.append(f"{value:,.0f} {label}, the budget is {have:,.0f}" if name != "bram36" else
                         f"{value:,.1f} {label}, the budget is {have:,.0f}")
    return "; ".join(parts) or f"{need.lut:,.0f} LUT"


def _raise_nothing_fits(layers, cands, budget: Budget, device: Device, shell) -> None:
    """Even the most folded network does not fit: name the layer (or the total) that breaks the budget."""
    smallest = [min(cs, key=lambda c: (c.cost.lut, c.cost.bram36)) for cs in cands]
    for k, c in enumerate(smallest):
        if not budget.fits(c.cost):
            raise FoldError(f"nothing fits {device.name}: the smallest folding of layer {k} ({layers[k].describe()}, "
                            f"PE={c.pe} SIMD={c.simd}) needs about {_over(c.cost, budget)}")
    need = total(c.cost for c in smallest) + shell(smallest)
    raise FoldError(f"nothing fits {device.name}: the smallest foldings of all {len(layers)} layers together "
                    f"need about {_over(need, budget)}")


def write_folding(result: FoldResult, path: str | Path) -> Path:
    """Write the folding JSON (``{"layers": [{"pe": P, "simd": S}, ...], "fold": {...}}``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=1) + "\n")
    return path


def describe(result: FoldResult) -> str:
    """The per-layer table ``bnnflow fold`` prints."""
    conv = any(l.conv for l in result.layers)
    shape_w = 22 if conv else 13
    lines = [f"{'layer':<6}{'kind':<16}{'MW -> MH' if not conv else 'shape':>{shape_w}}{'PE':>6}{'SIMD':>6}"
             f"{'NF*SF*pixels' if conv else 'NF*SF':>{13 if conv else 8}}{'LUT':>9}{'FF':>9}{'BRAM36':>8}"]
    units = dict(result.units)
    per_layer = ("layer ", "swu ", "pool ")     # a conv's row includes its sliding window and pool
    for k, (layer, f, cyc) in enumerate(zip(result.layers, result.folding, result.cycles)):
        r = total(units.get(f"{u}{k}", Resources()) for u in per_layer).rounded()
        lines.append(f"{k:<6}{layer.kind:<16}{layer.describe():>{shape_w}}{f.pe:>6}{f.simd:>6}"
                     f"{cyc:>{13 if conv else 8}}{r.lut:>9,}{r.ff:>9,}{r.bram36:>8g}")
    rest = total(r for name, r in result.units if not name.startswith(per_layer)).rounded()
    lines.append(f"{'':<6}{'repack + shell':<16}{'':>{shape_w}}{'':>6}{'':>6}{'':>{13 if conv else 8}}{rest.lut:>9,}"
                 f"{rest.ff:>9,}{rest.bram36:>8g}")
    est = result.estimate.rounded()
    d, b = result.device, result.budget
    lines.append(f"total (model estimate): {est.lut:,} LUT ({100 * est.lut / d.lut:.0f}% of {d.name}), "
                 f"{est.ff:,} FF, {est.bram36:g} BRAM36 ({100 * est.bram36 / d.bram36:.0f}%); "
                 f"budget {b.lut:,.0f} LUT / {b.ff:,.0f} FF / {b.bram36:g} BRAM36")
    lines.append(f"{result.cycles_per_image} cycles/image -> {result.images_per_second:,.0f} images/s at "
                 f"{result.clock_mhz:g} MHz")
    err = errors_summary()
    if err:
        lines.append(err)
    return "\n".join(lines)


def errors_summary() -> str:
    """One line on how far the model is from yosys on the points it was fitted to."""
    table = load_model().table
    e = table.get("errors", {})
    if "mvtu.lut" not in e or "repack.lut" not in e:
        return ""
    worst = max(e[f"{unit}.lut"]["max_abs"] for unit in ("mvtu", "repack", "swu", "maxpool") if f"{unit}.lut" in e)
    return (f"(yosys estimates through the unit-cost model, which is within {100 * worst:.0f}% of yosys on its "
            f"measured units; `bnnflow report` runs yosys on the export)")
