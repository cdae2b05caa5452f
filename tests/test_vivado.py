"""The Vivado build (vivado/build_bitstream.tcl + bnnflow.vivado) against the tops, the driver and the IPs.

Vivado is not installed here, so the script runs in tclsh against
tests/vivado_stub.tcl, which records every command; the checks below compare
that record with what the script's names must match: the generated Verilog
accelerator's ports, the HLS top's interfaces, the driver's IP names and
register-map VLNV, bnnflow.accel's stream widths, and the port names of the
Xilinx IPs the block design uses (PG021 axi_dma, PG164 proc_sys_reset, PG059
axi_interconnect, PG247 smartconnect, the PS7 / Zynq UltraScale+ PS).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bnnflow import accel, testing, vivado
from bnnflow.host import accel_ip
from bnnflow.host.backend_board import DEFAULT_DMA

REPO = Path(__file__).resolve().parent.parent
STUB = Path(__file__).resolve().parent / "vivado_stub.tcl"

pytestmark = pytest.mark.skipif(shutil.which("tclsh") is None, reason="needs tclsh (apt-get install tcl)")

#: Port and interface names of the Xilinx IPs, from their product guides.
XILINX_PINS = {
    "processing_system7": {"FCLK_CLK0", "FCLK_RESET0_N", "M_AXI_GP0", "M_AXI_GP0_ACLK", "S_AXI_HP0",
                           "S_AXI_HP0_ACLK"},
    "zynq_ultra_ps_e": {"pl_clk0", "pl_resetn0", "M_AXI_HPM0_FPD", "maxihpm0_fpd_aclk", "S_AXI_HP0_FPD",
                        "saxihp0_fpd_aclk"},
    "proc_sys_reset": {"slowest_sync_clk", "ext_reset_in", "peripheral_aresetn", "interconnect_aresetn"},
    "axi_dma": {"S_AXI_LITE", "M_AXI_MM2S", "M_AXI_S2MM", "M_AXIS_MM2S", "S_AXIS_S2MM", "s_axi_lite_aclk",
                "m_axi_mm2s_aclk", "m_axi_s2mm_aclk", "axi_resetn"},
    "axi_interconnect": {"S00_AXI", "M00_AXI", "M01_AXI", "ACLK", "ARESETN", "S00_ACLK", "S00_ARESETN",
                         "M00_ACLK", "M00_ARESETN", "M01_ACLK", "M01_ARESETN"},
    "smartconnect": {"S00_AXI", "S01_AXI", "M00_AXI", "aclk", "aresetn"},
}
#: The AXI DMA's configuration names the script sets (PG021).
DMA_CONFIG = {"CONFIG.c_include_sg", "CONFIG.c_sg_length_width", "CONFIG.c_include_mm2s", "CONFIG.c_include_s2mm",
              "CONFIG.c_m_axis_mm2s_tdata_width", "CONFIG.c_s_axis_s2mm_tdata_width", "CONFIG.c_m_axi_mm2s_data_width",
              "CONFIG.c_m_axi_s2mm_data_width", "CONFIG.c_mm2s_burst_size", "CONFIG.c_s2mm_burst_size"}
AXI_LITE_SIGNALS = ("AWADDR", "AWVALID", "AWREADY", "WDATA", "WSTRB", "WVALID", "WREADY", "BRESP", "BVALID",
                    "BREADY", "ARADDR", "ARVALID", "ARREADY", "RDATA", "RRESP", "RVALID", "RREADY")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """An export with an odd input width (784 x 8 bits) and 10 scores, both engines generated."""
    from bnnflow.folding import LayerFolding

    return testing.random_artifact(tmp_path_factory.mktemp("vivado") / "export", seed=3, input_features=784,
                                   hidden=(32,), classes=10, input_bits=8,
                                   folding=[LayerFolding(pe=8, simd=16), LayerFolding(pe=5, simd=32)])


def run_stub(params: Path, tmp: Path, *extra: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    log = tmp / "stub.log"
    result = subprocess.run(["tclsh", str(STUB), str(log), str(vivado.build_script()), str(params), *extra],
                            capture_output=True, text=True, timeout=60)
    records = [_tcl_list(line) for line in log.read_text().splitlines() if line.strip()]
    return result, records


def _tcl_list(line: str) -> list[str]:
    """Split one recorded Tcl list (words are plain or {braced})."""
    return [m.group(1) if m.group(1) is not None else m.group(2)
            for m in re.finditer(r"\{([^{}]*)\}|(\S+)", line)]


def verilog_ports(path: Path) -> dict[str, int]:
    """Port name -> width of a Verilog-2005 ANSI module header."""
    ports = {}
    for m in re.finditer(r"\b(input|output)\s+wire\s+(?:\[(\d+):0\]\s+)?(\w+)", path.read_text()):
        ports[m.group(3)] = int(m.group(2)) + 1 if m.group(2) else 1
    return ports


def accelerator_pins(export, engine: str) -> set[str]:
    """The clock, reset and interface names the accelerator IP offers."""
    ip = vivado.ACCEL_IPS[engine]
    if engine == "hls":
        # Vitis HLS: ap_clk, ap_rst_n, the s_axilite bundle "control", one axis interface per stream argument
        source = (REPO / "hls" / "bnn_top.cpp").read_text()
        pins = {"ap_clk", "ap_rst_n", "interrupt"}
        pins |= {f"s_axi_{m.group(1)}" for m in re.finditer(r"s_axilite\s+port=\w+\s+bundle=(\w+)", source)}
        pins |= {f"{m.group(1)}_r" if m.group(1) in ("in", "out") else m.group(1)
                 for m in re.finditer(r"INTERFACE\s+axis\s+port=(\w+)", source)}
        return pins
    ports = verilog_ports(export.path(export.manifest["rtl"]["accel_top"]))
    pins = {p for p in (ip.clock, ip.reset_n) if p in ports}
    if all(f"{ip.control}_{s}" in ports for s in AXI_LITE_SIGNALS):
        pins.add(ip.control)
    for name in (ip.stream_in, ip.stream_out):
        if all(f"{name}_{s}" in ports for s in ("tdata", "tkeep", "tvalid", "tready", "tlast")):
            pins.add(name)
    return pins


def dma_config(records) -> dict[str, str]:
    """The CONFIG.* properties the script sets on the AXI DMA."""
    props = {}
    for rec in records:
        if rec[0] == "set_property" and rec[1] == "-dict" and rec[-1] == DEFAULT_DMA:
            words = rec[2].split()
            props.update(zip(words[::2], words[1::2]))
    return props


def _cells(records) -> dict[str, str]:
    cells = {}
    for rec in records:
        if rec[0] == "create_bd_cell":
            vlnv = rec[rec.index("-vlnv") + 1]
            cells[rec[-1]] = vlnv
    return cells


def _ip_name(vlnv: str) -> str:
    return vlnv.split(":")[2]


@pytest.mark.parametrize("board", sorted(vivado.BOARDS))
@pytest.mark.parametrize("engine", ["hls", "rtl"])
def test_block_design_matches_tops_driver_and_ips(export, tmp_path, board, engine):
    hls_ip = tmp_path / "hls_ip"
    hls_ip.mkdir()
    out = tmp_path / "out"
    params = vivado.write_build(export, board, engine, tmp_path / "build", out, hls_ip_dir=hls_ip)
    result, records = run_stub(params, tmp_path)
    assert result.returncode == 0, result.stderr
    ip = vivado.ACCEL_IPS[engine]

    # the cells: one PS of the board's kind, the accelerator under the driver's name and VLNV, the DMA
    cells = _cells(records)
    ps_ip = "processing_system7" if vivado.BOARDS[board].ps == "ps7" else "zynq_ultra_ps_e"
    assert {name: _ip_name(v) for name, v in cells.items()} == {
        "ps": ps_ip, "rst_fclk": "proc_sys_reset", ip.instance: _ip_name(ip.vlnv), DEFAULT_DMA: "axi_dma",
        "axi_lite_ic": "axi_interconnect", "axi_mem_sc": "smartconnect"}
    assert cells[ip.instance] == ip.vlnv
    assert ip.vlnv in accel_ip.BnnflowAccel.bindto  # pynq binds the driver class to this IP by itself
    assert all(v.startswith("xilinx.com:ip:") for name, v in cells.items() if name != ip.instance)

    # every pin the script names exists on its cell
    offered = {name: XILINX_PINS[_ip_name(v)] for name, v in cells.items() if name != ip.instance}
    offered[ip.instance] = accelerator_pins(export, engine)
    named = [rec[1] for rec in records if rec[0] in ("pin", "intf_pin")]
    assert named, "the script named no pins"
    for path in named:
        cell, _, pin = path.partition("/")
        assert cell in offered, f"{path}: no cell {cell}"
        assert pin in offered[cell], f"{path}: {cell} ({_ip_name(cells[cell])}) has no pin {pin}"

    # the streams and the control bus are wired to the accelerator's interfaces
    intf = {tuple(rec[1:]) for rec in records if rec[0] == "connect_bd_intf_net"}
    assert (f"{DEFAULT_DMA}/M_AXIS_MM2S", f"{ip.instance}/{ip.stream_in}") in intf
    assert (f"{ip.instance}/{ip.stream_out}", f"{DEFAULT_DMA}/S_AXIS_S2MM") in intf
    assert ("axi_lite_ic/M01_AXI", f"{ip.instance}/{ip.control}") in intf
    assert (f"axi_mem_sc/M00_AXI", f"ps/{vivado.BOARDS[board].hp_port}") in intf

    # the DMA: simple mode, the accelerator's beat widths, a 26-bit length register
    dma_props = dma_config(records)
    assert set(dma_props) == DMA_CONFIG
    inp, outp = accel.input_stream(export), accel.output_stream(export)
    assert dma_props["CONFIG.c_include_sg"] == "0"
    assert int(dma_props["CONFIG.c_m_axis_mm2s_tdata_width"]) == inp.beat_bits == 128  # 16 x 8 bits
    assert int(dma_props["CONFIG.c_s_axis_s2mm_tdata_width"]) == outp.beat_bits
    assert int(dma_props["CONFIG.c_sg_length_width"]) == vivado.DMA_LENGTH_WIDTH
    if engine == "rtl":
        ports = verilog_ports(export.path(export.manifest["rtl"]["accel_top"]))
        assert ports["s_axis_tdata"] == inp.beat_bits and ports["m_axis_tdata"] == outp.beat_bits
        assert ports["s_axis_tkeep"] == inp.beat_bits // 8 and ports["m_axis_tkeep"] == outp.beat_bits // 8
        assert ports["s_axi_control_AWADDR"] == accel.ADDR_BITS == ports["s_axi_control_ARADDR"]
        packaged = [rec for rec in records if rec[0] == "add_files"][:2]
        listed = {path for rec in packaged for word in rec[2:] for path in word.split()}  # one Tcl list each
        want = {str(export.path(p).resolve()) for p in export.manifest["rtl"]["sources"] + export.manifest["rtl"]["memories"]}
        assert listed == want

    # the overlay files land next to the export under one name, with the signature
    stem = vivado.stem(board, engine)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{stem}.{x}" for x in ("bit", "hwh", "signature.json"))
    signature = json.loads((out / f"{stem}.signature.json").read_text())
    assert signature["signature"] == f"0x{export.signature:08x}"
    assert signature["description"] == export.manifest["hardware"]["description"]


def test_missing_board_files_are_named(export, tmp_path):
    params = vivado.write_build(export, "pynq-z2", "rtl", tmp_path / "build", tmp_path / "out")
    result, records = run_stub(params, tmp_path, "no-board-files")
    assert result.returncode == 1
    assert "board files for tul.com.tw:pynq-z2:part0:1.0 are not installed" in result.stderr
    assert ["exit", "1"] in records


def test_write_build_refuses_unknown_names_and_missing_inputs(export, tmp_path):
    with pytest.raises(vivado.VivadoError, match="unknown board 'zedboard': choose one of pynq-z2, pynq-z1, kv260, ultra96"):
        vivado.write_build(export, "zedboard", "rtl", tmp_path, tmp_path)
    with pytest.raises(vivado.VivadoError, match="unknown engine 'vhdl': choose one of hls, rtl"):
        vivado.write_build(export, "kv260", "vhdl", tmp_path, tmp_path)
    with pytest.raises(vivado.VivadoError, match="engine 'hls' needs the IP that `vitis_hls -f hls/run_hls.tcl"):
        vivado.write_build(export, "kv260", "hls", tmp_path, tmp_path)


def test_run_build_without_vivado_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(vivado.VivadoError, match="vivado is not on PATH: source Vivado's settings64.sh"):
        vivado.run_build(tmp_path)


def test_cli_prepares_the_build_and_names_the_missing_vivado(export, tmp_path, monkeypatch, capsys):
    from bnnflow import cli

    out = tmp_path / "out"
    assert cli.main(["bitstream", str(export.root), "--board", "kv260", "--out", str(out), "--prepare-only"]) == 0
    printed = capsys.readouterr().out
    params = out / "bnnflow-kv260-rtl.build" / "params.tcl"
    assert f"prepared {params} (signature 0x{export.signature:08x})" in printed
    assert "vivado -mode batch -nojournal -notrace -source" in printed
    assert "set bnn(part) {xck26-sfvc784-2LV-c}" in params.read_text()
    monkeypatch.setenv("PATH", str(tmp_path))  # no vivado, no vitis_hls
    assert cli.main(["bitstream", str(export.root), "--out", str(out)]) == 2
    assert "bnnflow bitstream: error: vivado is not on PATH" in capsys.readouterr().err
    assert cli.main(["bitstream", str(export.root), "--engine", "hls", "--out", str(out)]) == 2
    assert "bnnflow bitstream: error: vitis_hls is not on PATH" in capsys.readouterr().err
    assert cli.main(["bitstream", str(tmp_path / "nothing")]) == 2
    assert "neither an export folder nor a run with one" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["rtl", "hls"])
def test_a_conv_export_builds_with_its_sliding_window_and_pool_units(tmp_path, engine):
    """A conv net's overlay: the packaged Verilog holds bnn_swu / bnn_maxpool and every source and memory the
    manifest lists; the HLS engine's stream widths come from the conv net's first and last layers."""
    from bnnflow import artifact as art

    export = testing.conv_artifact(tmp_path / "export", seed=1, ifm=(8, 8, 1), input_bits=5, layers=[
        dict(mh=8, kernel=3, pad=1, pool=2, n_thresholds=1),
        dict(mh=16, kind=art.XNOR_THRESHOLD, kernel=3, pad=1),
        dict(mh=10, kind=art.XNOR_SCORE)], generate=("rtl", "hls"))
    hls_ip = tmp_path / "hls_ip"
    hls_ip.mkdir()
    params = vivado.write_build(export, "pynq-z2", engine, tmp_path / "build", tmp_path / "out", hls_ip_dir=hls_ip)
    result, records = run_stub(params, tmp_path)
    assert result.returncode == 0, result.stderr
    dma = dma_config(records)
    inp, outp = accel.input_stream(export), accel.output_stream(export)
    assert int(dma["CONFIG.c_m_axis_mm2s_tdata_width"]) == inp.beat_bits
    assert int(dma["CONFIG.c_s_axis_s2mm_tdata_width"]) == outp.beat_bits
    if engine == "rtl":
        packaged = [rec for rec in records if rec[0] == "add_files"][:2]
        listed = {path for rec in packaged for word in rec[2:] for path in word.split()}
        want = {str(export.path(p).resolve()) for p in export.manifest["rtl"]["sources"] + export.manifest["rtl"]["memories"]}
        assert listed == want
        assert {"bnn_swu.v", "bnn_maxpool.v"} <= {Path(p).name for p in listed}
