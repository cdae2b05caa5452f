"""``bnnflow report``: cycles, frame rate and resource estimates of an export, beside BNN-PYNQ.

Per layer: kind, shape, PE, SIMD, NF*SF cycles (times the output pixels of
a convolution), weight bits, and LUT / FF / BRAM36 / DSP estimates; per
repacker, per sliding-window unit and max-pool of a convolution, and for the
accelerator shell the estimates too. The estimates come from yosys (``synth_xilinx -family xc7``)
run on the export's own generated RTL -- each ``bnn_mvtu`` with its memory
files, each ``bnn_swu`` / ``bnn_maxpool``, each ``bnn_axis_repack`` and the shell (``bnnflow_accel`` with the core
black-boxed) synthesized apart and summed, which keeps big networks to
minutes -- or, without yosys (or with ``--no-yosys``), from the unit-cost model
of :mod:`bnnflow.costs`. Either way they are labelled estimates, not Vivado
results. The frame rate is the clock over the slowest layer's NF*SF*vectors
(the RTL runs each layer at exactly NF*SF cycles per vector, one vector per
image for a FC layer and per output pixel for a conv, docs/RTL.md), or over
the DMA beats per image when a stream needs more.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import artifact as art
from . import costs, rtlgen
from .costs import Device, Resources, total
from .fold import conv_shape, stream_beats

#: BNN-PYNQ's published rows (Pynq-Z1 / Ultra96 boards, its README and paper figures).
BNN_PYNQ = (
    {"system": "BNN-PYNQ", "net": "LFC W1A1 (784-1024x3-10, binarized input)", "board": "Pynq-Z1", "clock_mhz": 100,
     "images_per_second": 118_883, "accuracy": "98.4% MNIST", "lut": 28_400, "bram36": 110,
     "cycles_per_image": 512},
    {"system": "BNN-PYNQ", "net": "LFC W1A1", "board": "Ultra96", "clock_mhz": 300, "images_per_second": 356_633,
     "accuracy": "98.4% MNIST", "lut": None, "bram36": None, "cycles_per_image": 512},
    {"system": "BNN-PYNQ", "net": "CNV W1A1", "board": "Pynq-Z1", "clock_mhz": 100, "images_per_second": 3_050,
     "accuracy": "79.2% CIFAR-10", "lut": 26_100, "bram36": 124, "cycles_per_image": 32_768},
    {"system": "BNN-PYNQ", "net": "CNV W2A2", "board": "Pynq-Z1", "clock_mhz": 100, "images_per_second": 860,
     "accuracy": "84.3% CIFAR-10", "lut": 37_300, "bram36": 140, "cycles_per_image": None},
)

YOSYS_LABEL = "yosys estimate"
MODEL_LABEL = "model estimate"


def resolve_export(path: str | Path) -> Path:
    """The export folder of ``path``: the folder itself (manifest.json) or RUN/export."""
    path = Path(path)
    if (path / art.MANIFEST).is_file():
        return path
    if (path / "export" / art.MANIFEST).is_file():
        return path / "export"
    if (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: the run is not exported (no {path / 'export' / art.MANIFEST}); "
                                f"run `bnnflow export {path}` first (with `--folding` from `bnnflow fold {path}`)")
    raise FileNotFoundError(f"{path}: neither an export folder (manifest.json) nor a run folder with an export")


@dataclass
class UnitRow:
    """One unit of the accelerator: a layer, a repacker or the shell."""

    name: str
    resources: Resources
    source: str                        # YOSYS_LABEL or MODEL_LABEL
    kind: str = ""
    shape: str = ""
    pe: int | None = None
    simd: int | None = None
    nf: int | None = None
    sf: int | None = None
    cycles: int | None = None          # NF*SF*vectors per image
    vectors: int | None = None         # matrix-vector products per image: 1 (FC), output pixels (conv)
    weight_bits: int | None = None     # stored weight + threshold bits
    seconds: float | None = None       # yosys time
    cells: dict[str, int] | None = None    # yosys's cell counts


@dataclass
class Report:
    export: Path
    device: Device
    clock_mhz: float
    rows: list[UnitRow]
    core_cycles: int                   # max NF*SF*vectors: what the RTL core measures per image
    accel_cycles: int                  # also bounded by the DMA beats per image
    model_rows: list[UnitRow] = field(default_factory=list)   # the model's estimate, beside yosys's
    network: str = ""                  # e.g. "784-1024-1024-1024-10, 8-bit input"
    whole: Resources | None = None     # yosys on the whole flattened accelerator (build_report(whole=True))
    whole_seconds: float | None = None

    @property
    def source(self) -> str:
        return self.rows[0].source if self.rows else MODEL_LABEL

    @property
    def unit_total(self) -> Resources:
        """The sum of the units' estimates."""
        return total(r.resources for r in self.rows)

    @property
    def total(self) -> Resources:
        """The accelerator's estimate: the whole-design synthesis when run, else the sum of the units."""
        return self.whole if self.whole is not None else self.unit_total

    @property
    def images_per_second(self) -> float:
        return self.clock_mhz * 1e6 / self.accel_cycles

    @property
    def weight_bits(self) -> int:
        return sum(r.weight_bits or 0 for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        t = self.total.rounded()
        return {
            "export": str(self.export), "device": self.device.name, "part": self.device.part,
            "clock_mhz": self.clock_mhz, "core_cycles_per_image": self.core_cycles,
            "cycles_per_image": self.accel_cycles, "images_per_second": round(self.images_per_second, 1),
            "estimate_source": self.source,
            "total": t.as_dict(),
            "unit_total": self.unit_total.rounded().as_dict(),
            "whole": self.whole.rounded().as_dict() if self.whole is not None else None,
            "whole_seconds": self.whole_seconds,
            "images_per_second_per_lut": round(self.images_per_second / t.lut, 3) if t.lut else None,
            "weight_bits": self.weight_bits, "device_bram_bits": self.device.bram_bits,
            "units": [{"name": r.name, "kind": r.kind, "shape": r.shape, "pe": r.pe, "simd": r.simd, "nf": r.nf,
                       "sf": r.sf, "vectors": r.vectors, "cycles": r.cycles, "weight_bits": r.weight_bits, "source": r.source,
                       "seconds": r.seconds, "cells": r.cells, **r.resources.rounded().as_dict()}
                      for r in self.rows],
            "model_total": total(r.resources for r in self.model_rows).rounded().as_dict() if self.model_rows else None,
            "bnn_pynq": list(BNN_PYNQ),
        }


def _layer_fields(spec: art.LayerSpec) -> dict[str, Any]:
    weight = spec.out_features * spec.in_features_padded * spec.weight_bits
    neuron_params = spec.out_features * spec.neuron_param_bits          # thresholds or (mul, add)
    shape = f"{spec.in_features}" + (f"({spec.in_features_padded})" if spec.in_features_padded != spec.in_features
                                     else "") + f" -> {spec.out_features}"
    if spec.is_conv:
        shape = f"{conv_shape(spec.conv, spec.out_features)} ({shape})"
    widths = []
    if spec.mac == "int":
        widths.append(f"{spec.input_bits}-bit in")
        if spec.weight_bits > 1:
            widths.append(f"{spec.weight_bits}-bit {spec.weight_encoding} w")
    if spec.n_thresholds > 1:
        widths.append(f"{spec.output_bits}-bit out")
    return {"kind": " ".join([spec.kind] + widths),
            "shape": shape, "pe": spec.pe, "simd": spec.simd, "nf": spec.nf, "sf": spec.sf,
            "vectors": spec.pixels, "cycles": spec.cycles_per_image, "weight_bits": weight + neuron_params}


def _conv_unit_fields(spec: art.LayerSpec, unit: str) -> dict[str, Any]:
    """The row fields of a conv layer's sliding-window unit (``swu``) or max-pool (``pool``)."""
    c = spec.conv
    if unit == "swu":
        return {"kind": "bnn_swu", "shape": f"{c.kernel}x{c.kernel} window over {c.ifm_h}x{c.ifm_w}x{c.channels}"
                                            + (f", pad {c.pad}" if c.pad else ""), "simd": spec.simd}
    g = c.pool_geometry(spec.out_features)
    return {"kind": "bnn_maxpool", "shape": f"{c.pool}x{c.pool} max of {g.ifm_h}x{g.ifm_w}x{g.channels}",
            "pe": spec.pe}


def _unit_fields(specs: list[art.LayerSpec], name: str) -> dict[str, Any]:
    unit, _, k = name.partition(" ")
    if unit == "layer":
        return _layer_fields(specs[int(k)])
    if unit in ("swu", "pool"):
        return _conv_unit_fields(specs[int(k)], unit)
    return {}


def model_rows(specs: list[art.LayerSpec], model: costs.CostModel | None = None) -> list[UnitRow]:
    """The units' estimates from the cost model (no yosys)."""
    model = model or costs.load_model()
    rows = []
    for name, res in model.network(specs):
        rows.append(UnitRow(name, res, MODEL_LABEL, **_unit_fields(specs, name)))
    return rows


def _rtl_dir(a: art.Artifact, tmp: Path) -> Path:
    """The export's generated RTL folder, or a copy generated into ``tmp`` (an export without RTL)."""
    rtl_dir = a.root / "rtl"
    if not (a.manifest.get("rtl") or {}) or not (rtl_dir / rtlgen.ACCEL_FILE).is_file():
        rtlgen.write_rtl(a, tmp / "gen")
        rtl_dir = tmp / "gen" / "rtl"
    return rtl_dir


def yosys_whole(a: art.Artifact, timeout: float | None = None) -> tuple[Resources, float]:
    """yosys on the whole ``bnnflow_accel``, flattened, in one run: (estimate, seconds).

    LFC takes about 8 minutes and 1.6 GB on the development machine
    (docs/PERFORMANCE.md); the unit-by-unit sum of :func:`yosys_rows` comes
    within about 10% of it.
    """
    with tempfile.TemporaryDirectory(prefix="bnnflow-report-") as tmp:
        cells, seconds = costs.synth_export_unit(_rtl_dir(a, Path(tmp)), "accel", timeout=timeout)
    return costs.cells_to_resources(cells), seconds


def yosys_rows(a: art.Artifact, timeout: float | None = None,
               log: Callable[[str], None] | None = None) -> list[UnitRow]:
    """The units' estimates from yosys on the export's generated RTL, unit by unit (see the module doc)."""
    specs = a.layers
    rows: list[UnitRow] = []
    with tempfile.TemporaryDirectory(prefix="bnnflow-report-") as tmp:
        rtl_dir = _rtl_dir(a, Path(tmp))
        bus = rtlgen.config_bus(a)
        for k, spec in enumerate(specs):
            if spec.is_conv:
                params = rtlgen.swu_parameters(spec)
                cells, seconds = costs.synth_unit("bnn_swu", params, {}, Path(tmp) / f"swu{k}", timeout=timeout,
                                                  library=rtl_dir)
                rows.append(UnitRow(f"swu {k}", costs.cells_to_resources(cells), YOSYS_LABEL, seconds=seconds,
                                    cells=cells, **_conv_unit_fields(spec, "swu")))
            param_file = rtlgen.param_file(spec)     # thresholds, affine, or None
            params = rtlgen.mvtu_parameters(spec, rtlgen.weight_file(k), param_file)
            params.update({"CFG_ADDR_BITS": bus.addr_bits, "CFG_BITS": bus.data_bits})
            files = {rtlgen.weight_file(k): (rtl_dir / rtlgen.weight_file(k)).read_text()}
            if param_file:
                files[param_file] = (rtl_dir / param_file).read_text()
            cells, seconds = costs.synth_unit("bnn_mvtu", params, files, Path(tmp) / f"layer{k}", timeout=timeout,
                                              library=rtl_dir)
            rows.append(UnitRow(f"layer {k}", costs.cells_to_resources(cells), YOSYS_LABEL, seconds=seconds,
                                cells=cells, **_layer_fields(spec)))
            if log:
                log(f"yosys: layer {k} in {seconds:.0f} s")
            pool = rtlgen.maxpool_parameters(spec)
            if pool is not None:
                cells, seconds = costs.synth_unit("bnn_maxpool", pool, {}, Path(tmp) / f"pool{k}", timeout=timeout,
                                                  library=rtl_dir)
                rows.append(UnitRow(f"pool {k}", costs.cells_to_resources(cells), YOSYS_LABEL, seconds=seconds,
                                    cells=cells, **_conv_unit_fields(spec, "pool")))
            if k + 1 < len(specs):
                params = rtlgen.repack_parameters(spec, specs[k + 1])
                cells, seconds = costs.synth_unit("bnn_axis_repack", params, {}, Path(tmp) / f"repack{k}",
                                                  timeout=timeout, library=rtl_dir)
                rows.append(UnitRow(f"repack {k}->{k + 1}", costs.cells_to_resources(cells), YOSYS_LABEL,
                                    seconds=seconds, cells=cells,
                                    shape=f"{params['IN_ELEMS']} -> {params['OUT_ELEMS']} per word"))
        cells, seconds = costs.synth_export_unit(rtl_dir, "shell", timeout=timeout)
        cells = {k: v for k, v in cells.items() if not k.startswith("$")}    # the black-boxed core
        rows.append(UnitRow("shell", costs.cells_to_resources(cells), YOSYS_LABEL, seconds=seconds, cells=cells,
                            shape="AXI4-Lite, run control, DMA adapters, loader"))
        if log:
            log(f"yosys: repackers and shell done")
    return rows


def build_report(path: str | Path, device: Device, clock_mhz: float, use_yosys: bool = True,
                 timeout: float | None = None, log: Callable[[str], None] | None = None,
                 whole: bool = False) -> Report:
    """The report of the export at ``path`` (an export folder or a run folder with one).

    ``whole`` (with yosys) also synthesizes the whole accelerator in one run
    (:func:`yosys_whole`); its figure becomes the report's total.
    """
    if clock_mhz <= 0:
        raise ValueError(f"--clock {clock_mhz}: must be a positive number of MHz")
    export = resolve_export(path)
    a = art.load(export, check_model=False)
    specs = a.layers
    core = max(s.cycles_per_image for s in specs)
    accel_cycles = max(core, stream_beats(specs[0], "in"), stream_beats(specs[-1], "out"))
    modelled = model_rows(specs)
    rows = modelled
    whole_res: Resources | None = None
    whole_seconds = None
    if use_yosys and costs.find_yosys() is not None:
        rows = yosys_rows(a, timeout=timeout, log=log)
        if whole:
            whole_res, whole_seconds = yosys_whole(a, timeout=timeout)
            if log:
                log(f"yosys: whole accelerator in {whole_seconds:.0f} s")
    elif use_yosys and log:
        log("yosys not found: the estimates come from the cost model (bnnflow.costs)")
    return Report(export, device, clock_mhz, rows, core, accel_cycles, model_rows=modelled,
                  network=network_name(specs), whole=whole_res,
                  whole_seconds=whole_seconds)


def network_name(specs: list[art.LayerSpec]) -> str:
    """``100-64-32-10, 5-bit input`` (a MLP); ``32x32x3: 64C3-64C3 MP2-...-FC512-FC10, 8-bit input`` (a conv net)."""
    if not specs[0].is_conv:
        sizes = "-".join(str(n) for n in [specs[0].in_features] + [s.out_features for s in specs])
        return f"{sizes}, {specs[0].input_bits}-bit input"
    c = specs[0].conv
    parts = [f"{s.out_features}C{s.conv.kernel}" + (f" MP{s.conv.pool}" if s.conv.pool else "") if s.is_conv
             else f"FC{s.out_features}" for s in specs]
    return f"{c.ifm_h}x{c.ifm_w}x{c.channels}: {'-'.join(parts)}, {specs[0].input_bits}-bit input"


def render(report: Report) -> str:
    """The report as Markdown text (what ``bnnflow report`` prints and writes to report.md)."""
    d = report.device
    t = report.total.rounded()
    src = report.source
    conv = any(r.vectors not in (None, 1) for r in report.rows) or any(r.name.startswith("swu ") for r in report.rows)
    lines = [f"# bnnflow report: {report.export}", "",
             f"Device {d.name} ({d.part}, {d.boards}): {d.lut:,} LUT, {d.ff:,} FF, {d.bram36} BRAM36, {d.dsp} DSP. "
             f"Clock {report.clock_mhz:g} MHz.",
             f"Resources: {src} ({'yosys 0.23 synth_xilinx -family xc7 on the generated RTL, unit by unit' if src == YOSYS_LABEL else 'bnnflow.costs unit-cost model, measured with yosys'}); "
             "not Vivado results.", "",
             "| unit | kind | MW -> MH | PE | SIMD | NF x SF | cycles | weight bits | LUT | FF | BRAM36 | DSP |"
             if not conv else
             "| unit | kind | shape (MW -> MH) | PE | SIMD | NF x SF x vectors | cycles | weight bits | LUT | FF | "
             "BRAM36 | DSP |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report.rows:
        res = r.resources.rounded()
        folds = (f"{r.nf} x {r.sf}" + (f" x {r.vectors}" if conv else "")) if r.nf is not None else ""
        lines.append(f"| {r.name} | {r.kind} | {r.shape} | {r.pe or ''} | {r.simd or ''} | {folds} | "
                     f"{r.cycles if r.cycles is not None else ''} | "
                     f"{f'{r.weight_bits:,}' if r.weight_bits is not None else ''} | {res.lut:,} | {res.ff:,} | "
                     f"{res.bram36:g} | {res.dsp:g} |")
    u = report.unit_total.rounded()
    lines.append(f"| **total** | | | | | | **{report.core_cycles}** | {report.weight_bits:,} | **{u.lut:,}** | "
                 f"{u.ff:,} | **{u.bram36:g}** | {u.dsp:g} |")
    if report.whole is not None:
        lines.append(f"| **whole accelerator** (flattened, one yosys run, {report.whole_seconds:.0f} s) | | | | | | | | "
                     f"**{t.lut:,}** | {t.ff:,} | **{t.bram36:g}** | {t.dsp:g} |")
    lines += ["",
              f"- Cycles per image: {report.core_cycles} (the slowest layer's NF*SF"
              + (" times its vectors (a conv's output pixels)" if conv else "") + ", what the RTL core measures)"
              + (f"; the accelerator's DMA streams need {report.accel_cycles} beats per image"
                 if report.accel_cycles != report.core_cycles else "") + ".",
              f"- Frame rate at {report.clock_mhz:g} MHz: {report.images_per_second:,.0f} images/s "
              "(compute bound of the accelerator; DMA and host time not included).",
              f"- Utilization ({src}{', whole accelerator' if report.whole is not None else ''}): {t.lut:,} LUT = {100 * t.lut / d.lut:.1f}% "
              f"(of which {t.lutram:,} as LUT RAM), {t.ff:,} FF = {100 * t.ff / d.ff:.1f}%, {t.bram36:g} BRAM36 = "
              f"{100 * t.bram36 / d.bram36:.1f}%, {t.dsp:g} DSP.",
              f"- Images/s per LUT: {report.images_per_second / max(t.lut, 1):.2f}.",
              f"- Weight + threshold bits: {report.weight_bits:,} = {100 * report.weight_bits / d.bram_bits:.1f}% of "
              f"the device's {d.bram_bits:,} block-RAM bits.",
              ]
    if report.model_rows and src == YOSYS_LABEL:
        m = total(r.resources for r in report.model_rows).rounded()
        lines.append(f"- The cost model (bnnflow.costs, used by `bnnflow fold`) estimates {m.lut:,} LUT, {m.ff:,} FF, "
                     f"{m.bram36:g} BRAM36 ({100 * (m.lut - t.lut) / max(t.lut, 1):+.1f}% LUT against yosys).")
    lines += ["", "BNN-PYNQ's published figures (board measurements, Vivado resources):", "",
              "| system | network | board | clock | images/s | accuracy | LUT | BRAM36 | images/s per LUT |",
              "|---|---|---|---|---|---|---|---|---|",
              f"| bnnflow (this export) | {report.network} | "
              f"{d.name} | {report.clock_mhz:g} MHz | {report.images_per_second:,.0f} (RTL cycles) | | {t.lut:,} "
              f"({src}) | {t.bram36:g} | {report.images_per_second / max(t.lut, 1):.2f} |"]
    for b in BNN_PYNQ:
        per_lut = f"{b['images_per_second'] / b['lut']:.2f}" if b["lut"] else ""
        lut = f"{b['lut']:,}" if b["lut"] else ""
        lines.append(f"| {b['system']} | {b['net']} | {b['board']} | {b['clock_mhz']} MHz | {b['images_per_second']:,} | "
                     f"{b['accuracy']} | {lut} | {b['bram36'] or ''} | {per_lut} |")
    return "\n".join(lines) + "\n"


def chart(report: Report, path: Path) -> Path | None:
    """A PNG of NF*SF cycles per layer and LUT / BRAM36 per unit; None when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [r for r in report.rows if r.cycles is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = [r.name.replace("layer ", "L") for r in layers]
    ax1.bar(names, [r.cycles for r in layers], color="tab:blue")
    ax1.axhline(report.core_cycles, color="tab:red", linestyle="--",
                label=f"slowest: {report.core_cycles} -> {report.images_per_second:,.0f} images/s "
                      f"@ {report.clock_mhz:g} MHz")
    ax1.set_ylabel("NF x SF x vectors: cycles per image")
    ax1.set_title("cycles per layer")
    ax1.legend(fontsize=8)
    units = [r.name.replace("layer ", "L").replace("repack ", "R").replace("swu ", "W").replace("pool ", "P")
             for r in report.rows]
    ax2.bar(units, [r.resources.lut for r in report.rows], color="tab:green", label="LUT")
    ax2.set_ylabel("LUT")
    ax2.set_title(f"resources per unit ({report.source})")
    ax2.tick_params(axis="x", labelrotation=45)
    ax3 = ax2.twinx()
    ax3.plot(units, [r.resources.bram36 for r in report.rows], "o", color="tab:orange", label="BRAM36")
    ax3.set_ylabel("BRAM36")
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=8)
    fig.suptitle(f"{report.network or report.export.name}: {report.device.name}, total {report.total.rounded().lut:,} LUT, "
                 f"{report.total.rounded().bram36:g} BRAM36")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(report: Report, out_dir: str | Path) -> dict[str, Path | None]:
    """report.md, report.json and report.png (None without matplotlib) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(render(report))
    (out / "report.json").write_text(json.dumps(report.to_json(), indent=1) + "\n")
    return {"md": out / "report.md", "json": out / "report.json", "png": chart(report, out / "report.png")}
