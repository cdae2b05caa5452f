"""bnnflow.sim.runner's Verilator builds: Verilator's runtime objects are compiled once and shared."""

from __future__ import annotations

import pytest

from bnnflow.sim import runner, toolchain
from bnnflow.sim.runner import SimulationError

#: A design small enough that its own C++ takes about a second; W makes two builds of it.
TOY = """module bnnflow_toy #(parameter W = 4) (input wire clk, output reg [W-1:0] q);
  always @(posedge clk) q <= q + 1'b1;
endmodule
"""


@pytest.fixture
def toy(tmp_path):
    path = tmp_path / "bnnflow_toy.v"
    path.write_text(TOY)
    return path


@pytest.mark.rtl
def test_verilator_builds_share_the_runtime_objects(toy):
    """The second of two builds copies verilated.o, verilated_vpi.o, ... in: its log compiles only the design."""
    toolchain.pytest_require("verilator")
    first = runner.build("verilator", "bnnflow_toy", [toy], {"W": 3})
    second = runner.build("verilator", "bnnflow_toy", [toy], {"W": 5})
    assert first.build_dir != second.build_dir
    names = runner.verilator_runtime_objects(second.build_dir)
    assert {"verilated", "verilated_vpi"} <= set(names), names
    log = (second.build_dir / "build.log").read_text()
    for name in names:
        assert f"{name}.cpp" not in log, f"{name}.cpp compiled again:\n{log}"
        assert (second.build_dir / f"{name}.o").is_file()
    assert "Vtop__ALL.cpp" in log and (second.build_dir / "bnnflow_toy").is_file()   # the design compiled and linked
    stores = [d for d in runner.build_root().glob(f"{runner.RUNTIME_PREFIX}*")
              if all((d / f"{name}.o").is_file() for name in names)]
    assert stores, f"no complete {runner.RUNTIME_PREFIX}* folder in {runner.build_root()}"


@pytest.mark.rtl
def test_a_failing_runtime_compile_names_the_log(toy, tmp_path, monkeypatch):
    """The runtime compile fails (no C++ compiler): SimulationError with make's status and the build log."""
    toolchain.pytest_require("verilator")
    monkeypatch.setenv("BNNFLOW_SIM_BUILD", str(tmp_path / "root"))
    monkeypatch.setenv("MAKEFLAGS", "CXX=false")
    with pytest.raises(SimulationError, match=r"^verilator build of bnnflow_toy failed \(compiling Verilator's "
                                              r"runtime objects failed with return code: 2\); log \S+build\.log"):
        runner.build("verilator", "bnnflow_toy", [toy], {"W": 3})
    assert not list((tmp_path / "root").glob(f"{runner.RUNTIME_PREFIX}*/*.o"))     # nothing half-made is shared
