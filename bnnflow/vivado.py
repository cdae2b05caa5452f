"""Prepare (and, where Vivado is installed, run) the bitstream build of an export.

``vivado/build_bitstream.tcl`` is one script for every board and both
engines; what differs per build -- the board's part and processing system,
the accelerator IP (the HLS IP, or the generated Verilog packaged as an IP),
the stream widths the AXI DMA must match, the names the driver looks for --
is written by :func:`write_build` into ``<build>/params.tcl`` as plain
``set`` commands. Every value comes from the export (``bnnflow.accel`` for
the widths and the signature) or from the tables below, so the Tcl never
restates a number bnnflow already defines, and tests/test_vivado.py checks the
script's names against the generated tops and the driver.

Scripts target Vivado 2022.1 .. 2024.2 (IP versions are resolved at build
time with ``get_ipdefs``, so a newer Vivado picks its own versions).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import accel
from . import artifact as art


@dataclass(frozen=True)
class Board:
    """A PYNQ board as the block design needs it."""

    name: str
    part: str
    board_part: str        # Vivado board file (part0); empty = use the part alone
    ps: str                # "ps7" (Zynq-7000) or "psu" (Zynq UltraScale+ MPSoC)
    hp_port: str           # the PS slave port the DMA masters use
    gp_port: str           # the PS master port for AXI-Lite
    clock_pin: str         # the PS fabric clock output
    reset_pin: str         # the PS fabric reset output (active low)


BOARDS: dict[str, Board] = {
    b.name: b for b in (
        Board("pynq-z2", "xc7z020clg400-1", "tul.com.tw:pynq-z2:part0:1.0", "ps7",
              "S_AXI_HP0", "M_AXI_GP0", "FCLK_CLK0", "FCLK_RESET0_N"),
        Board("pynq-z1", "xc7z020clg400-1", "www.digilentinc.com:pynq-z1:part0:1.0", "ps7",
              "S_AXI_HP0", "M_AXI_GP0", "FCLK_CLK0", "FCLK_RESET0_N"),
        Board("kv260", "xck26-sfvc784-2LV-c", "xilinx.com:kv260_som:part0:1.3", "psu",
              "S_AXI_HP0_FPD", "M_AXI_HPM0_FPD", "pl_clk0", "pl_resetn0"),
        Board("ultra96", "xczu3eg-sbva484-1-i", "avnet.com:ultra96v2:part0:1.2", "psu",
              "S_AXI_HP0_FPD", "M_AXI_HPM0_FPD", "pl_clk0", "pl_resetn0"),
    )
}


@dataclass(frozen=True)
class AccelIp:
    """How the accelerator appears in the block design, per engine."""

    engine: str
    vlnv: str              # vendor:library:name:version of the packaged IP
    instance: str          # the block-design cell name (the driver's default accel_name)
    clock: str
    reset_n: str
    control: str           # AXI4-Lite interface
    stream_in: str         # AXI4-Stream slave (images, parameters)
    stream_out: str        # AXI4-Stream master (scores)


#: Vitis HLS names the interfaces after the top function's arguments ("in"/"out"
#: are reserved words in VHDL, hence in_r/out_r); the Verilog shell uses the
#: same clock, reset and control names so both IPs drop into one block design.
ACCEL_IPS: dict[str, AccelIp] = {
    "hls": AccelIp("hls", "bnnflow:bnnflow:bnnflow_top:1.0", "bnnflow_top_0",
                   "ap_clk", "ap_rst_n", "s_axi_control", "in_r", "out_r"),
    "rtl": AccelIp("rtl", "bnnflow:bnnflow:bnnflow_accel:1.0", "bnnflow_accel_0",
                   "ap_clk", "ap_rst_n", "s_axi_control", "s_axis", "m_axis"),
}

DMA_INSTANCE = "axi_dma_0"
#: Where hls/run_hls.tcl leaves the packaged IP, relative to the folder it ran in.
HLS_IP_SUBDIR = Path("bnnflow_hls") / "solution1" / "impl" / "ip"
#: The DMA's buffer length register width: 26 bits = transfers up to 64 MiB - 1,
#: the AXI DMA's maximum; the driver splits larger batches itself.
DMA_LENGTH_WIDTH = 26
FCLK_MHZ = 100

TCL_DIR = Path(__file__).resolve().parent.parent / "vivado"
BUILD_SCRIPT = "build_bitstream.tcl"


class VivadoError(RuntimeError):
    """The build cannot be prepared or run (missing inputs, no Vivado)."""


def build_script() -> Path:
    """The repository's ``vivado/build_bitstream.tcl``."""
    # a source checkout has vivado/ beside bnnflow/; a wheel ships it as bnnflow/vivado_scripts/
    for candidate in (TCL_DIR, Path(__file__).resolve().parent / "vivado_scripts"):
        if (candidate / BUILD_SCRIPT).is_file():
            return candidate / BUILD_SCRIPT
    raise VivadoError(f"vivado/{BUILD_SCRIPT} not found next to {Path(__file__).resolve().parent}; "
                      "use a source checkout of bnnflow")


def _tcl_word(value: object) -> str:
    """One Tcl word: braces keep spaces and brackets literal."""
    text = str(value)
    if any(c in text for c in "{}\\"):
        raise VivadoError(f"cannot quote {text!r} for Tcl (braces or backslashes in a path)")
    return "{" + text + "}"


def stem(board: str, engine: str) -> str:
    """Base name of the bitstream, its .hwh and its signature file."""
    return f"bnnflow-{board}-{engine}"


def write_build(artifact: art.Artifact, board: str, engine: str, build_dir: str | Path,
                out_dir: str | Path, hls_ip_dir: str | Path | None = None) -> Path:
    """Write ``<build_dir>/params.tcl`` and ``<stem>.signature.json``; return the params file.

    ``out_dir`` receives ``<stem>.bit``, ``.hwh`` and ``.signature.json`` when
    Vivado finishes. ``hls_ip_dir`` (engine "hls") is the IP catalog folder
    ``hls/run_hls.tcl`` exported (``.../solution1/impl/ip``).
    """
    if board not in BOARDS:
        raise VivadoError(f"unknown board {board!r}: choose one of {', '.join(BOARDS)}")
    if engine not in ACCEL_IPS:
        raise VivadoError(f"unknown engine {engine!r}: choose one of {', '.join(ACCEL_IPS)}")
    b, ip = BOARDS[board], ACCEL_IPS[engine]
    rtl = artifact.manifest.get("rtl")
    if engine == "rtl":
        if not rtl or "accel_top" not in rtl:
            raise VivadoError(f"{artifact.root}: the export has no Verilog accelerator (manifest 'rtl' section "
                              "without 'accel_top'); run `bnnflow export` with RTL generation")
        sources = [artifact.path(p) for p in rtl["sources"]]
        memories = [artifact.path(p) for p in rtl["memories"]]
        missing = [str(p) for p in sources + memories if not p.is_file()]
        if missing:
            raise VivadoError(f"{artifact.root}: files of the Verilog design are missing: {', '.join(missing)}")
    else:
        sources, memories = [], []
        if hls_ip_dir is None:  # (whether it exists is checked when Vivado runs: it may be built first)
            raise VivadoError(f"engine 'hls' needs the IP that `vitis_hls -f hls/run_hls.tcl -tclargs "
                              f"{artifact.root}` exports (its {HLS_IP_SUBDIR} folder)")
    inp, out = accel.input_stream(artifact), accel.output_stream(artifact)
    build_dir, out_dir = Path(build_dir).resolve(), Path(out_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    name = stem(board, engine)
    signature_file = build_dir / f"{name}.signature.json"
    signature_file.write_text(json.dumps({
        "signature": f"0x{artifact.signature:08x}",
        "description": accel.hardware_description(artifact.layers),
        "board": board, "engine": engine}, indent=2) + "\n")
    values = {
        "name": name, "board": board, "part": b.part, "board_part": b.board_part, "ps": b.ps,
        "hp_port": b.hp_port, "gp_port": b.gp_port, "ps_clock": b.clock_pin, "ps_reset_n": b.reset_pin,
        "fclk_mhz": FCLK_MHZ, "engine": engine, "accel_vlnv": ip.vlnv, "accel_name": ip.instance,
        "accel_clock": ip.clock, "accel_reset_n": ip.reset_n, "accel_control": ip.control,
        "accel_in": ip.stream_in, "accel_out": ip.stream_out, "accel_top": "bnnflow_accel",
        "dma_name": DMA_INSTANCE, "in_beat_bits": inp.beat_bits, "out_beat_bits": out.beat_bits,
        "dma_length_width": DMA_LENGTH_WIDTH, "signature": f"0x{artifact.signature:08x}",
        "signature_file": signature_file, "build_dir": build_dir, "out_dir": out_dir,
        "hls_ip_dir": "" if hls_ip_dir is None else Path(hls_ip_dir).resolve(),
    }
    lines = ["# Written by bnnflow (bnnflow.vivado.write_build); read by vivado/build_bitstream.tcl.",
             f"# Export: {artifact.root.resolve()}", ""]
    lines += [f"set bnn({key}) {_tcl_word(value)}" for key, value in values.items()]
    lines.append("set bnn(rtl_sources) [list " + " ".join(_tcl_word(p.resolve()) for p in sources) + "]")
    lines.append("set bnn(rtl_memories) [list " + " ".join(_tcl_word(p.resolve()) for p in memories) + "]")
    params = build_dir / "params.tcl"
    params.write_text("\n".join(lines) + "\n")
    return params


def vivado_command(build_dir: Path) -> list[str]:
    return ["vivado", "-mode", "batch", "-nojournal", "-notrace", "-source", str(build_script()),
            "-tclargs", str(Path(build_dir).resolve() / "params.tcl")]


def run_build(build_dir: Path) -> None:
    """Run Vivado on a prepared build; a missing Vivado is a :class:`VivadoError` saying what to do."""
    if shutil.which("vivado") is None:
        raise VivadoError("vivado is not on PATH: source Vivado's settings64.sh (Vivado 2022.1 .. 2024.2) and run "
                          f"again, or run `{' '.join(vivado_command(build_dir))}` where Vivado is installed")
    result = subprocess.run(vivado_command(build_dir), cwd=build_dir)
    if result.returncode != 0:
        raise VivadoError(f"vivado failed (exit {result.returncode}); see {build_dir}/vivado.log")


def resolve_export(path: str | Path) -> Path:
    """An export folder, given either it or the training run that holds it (RUN/export)."""
    path = Path(path)
    for candidate in (path, path / "export"):
        if (candidate / art.MANIFEST).is_file():
            return candidate
    raise VivadoError(f"{path}: neither an export folder nor a run with one (no {art.MANIFEST} in {path} or "
                      f"{path / 'export'}); run `bnnflow export` first")


def hls_ip_command(export_dir: Path) -> list[str]:
    """Vitis HLS synthesis + IP export of an export (hls/run_hls.tcl; run it in the build folder)."""
    from .rtlgen import library_dir

    hls_tcl = library_dir().parent / "hls" / "run_hls.tcl"
    if not hls_tcl.is_file():
        hls_tcl = Path(__file__).resolve().parent / "hls" / "run_hls.tcl"
    return ["vitis_hls", "-f", str(hls_tcl), "-tclargs", str(Path(export_dir).resolve()), "csynth,export"]



def build_hls_ip(export_dir: Path, build_dir: Path) -> Path:
    """Run Vitis HLS to synthesize and package the HLS top; return the IP folder."""
    if shutil.which("vitis_hls") is None:
        raise VivadoError("vitis_hls is not on PATH: source Vitis's settings64.sh, or build the IP yourself with "
                          f"`{' '.join(hls_ip_command(export_dir))}` and pass its {HLS_IP_SUBDIR} folder as --hls-ip")
    build_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(hls_ip_command(export_dir), cwd=build_dir)
    if result.returncode != 0:
        raise VivadoError(f"vitis_hls failed (exit {result.returncode}); see {build_dir}/vitis_hls.log")
    return build_dir / HLS_IP_SUBDIR
