"""The unchanged PYNQ driver against the generated RTL (issue 6: the driver on the RTL through the simulated device).

``BnnDriver(..., backend="board-sim", engine=RtlCosim(sim=...))`` runs the board
backend's real code -- BnnDriver, BoardBackend, BnnflowAccel, pynq's MMIO and
AXI DMA drivers -- on ``bnnflow.sim.board_cosim.RtlSimDevice``: the simulated
board's DMA model in front of the export's ``bnnflow_accel`` in Icarus or
Verilator (register accesses through cocotbext-axi's AxiLiteMaster, MM2S
transfers as AxiStreamSource packets with TKEEP and TLAST, S2MM from an
AxiStreamSink). The tests assert whole score arrays against the golden model
(of each net, across parameter reloads), the exact messages of a refused
signature and of the RTL's STATUS errors, and the register protocol the
driver used.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

pytest.importorskip("pynq")

from bnnflow import accel  # noqa: E402
from bnnflow import artifact as art  # noqa: E402
from bnnflow.folding import LayerFolding as F  # noqa: E402
from bnnflow.golden import GoldenModel  # noqa: E402
from bnnflow.host import BnnDriver, BoardError, SignatureMismatchError  # noqa: E402
from bnnflow.host.accel_ip import AcceleratorStatusError  # noqa: E402
from bnnflow.sim import toolchain  # noqa: E402
from bnnflow.sim.board_cosim import RtlCosim, RtlSimDevice  # noqa: E402
from bnnflow.sim.runner import SimulationError  # noqa: E402
from bnnflow.testing import random_artifact  # noqa: E402
from bnnflow.writer import read_vectors  # noqa: E402

SIMS = ["icarus", "verilator"]
#: The folding of the "other signature" net (tests/test_host_load.py's): every layer's PE or SIMD differs.
OTHER_FOLDING = [F(pe=8, simd=32), F(pe=16, simd=16), F(pe=5, simd=16)]
#: accel.describe_difference(the default folding's description, OTHER_FOLDING's), as load() words it.
DIFFERENCE = ("out_beat_bits: bitstream 128, export 64; layer 0 pe: bitstream 16, export 8; "
              "layer 1 simd: bitstream 32, export 16; layer 2 pe: bitstream 10, export 5; ...")
#: What the driver does at construction: a reps = 0 run, then SIGNATURE and STATUS with their ap_vld bits.
SIGNATURE_RUN = [("r", accel.CTRL), ("w", accel.REPS, 0), ("w", accel.MODE, accel.MODE_INFER),
                 ("w", accel.CTRL, accel.AP_START), ("r", accel.CTRL), ("r", accel.SIGNATURE_CTRL),
                 ("r", accel.SIGNATURE), ("r", accel.STATUS_CTRL), ("r", accel.STATUS)]
FORMAT_ERROR = "reported STATUS=0x1: an input beat had a nonzero padding bit or TKEEP bit clear"


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """first (with RTL), second: one signature (64-64-32-10, default folding), other weights; other: another folding."""
    root = tmp_path_factory.mktemp("cosim")
    first = random_artifact(root / "first", seed=1, generate=("rtl",))
    second = random_artifact(root / "second", seed=2, generate=())
    other = random_artifact(root / "other", seed=1, folding=OTHER_FOLDING, generate=())
    assert first.signature == second.signature != other.signature
    return types.SimpleNamespace(first=first, second=second, other=other)


def images(n: int, features: int = 64, bits: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << bits, size=(n, features), dtype=np.uint8)


def rtl_driver(export, sim: str, **options) -> BnnDriver:
    """board-sim on the RTL: ``engine="rtl"`` (Verilator) when no stalls are asked for, else an RtlCosim."""
    toolchain.pytest_require(sim)
    stalls = {name: options.pop(name) for name in ("seed", "idle", "backpressure") if name in options}
    engine = "rtl" if sim == "verilator" and not stalls else RtlCosim(sim=sim, **stalls)
    driver = BnnDriver(export, backend="board-sim", engine=engine, **options)
    assert driver.backend.device.cosim == RtlCosim(sim=sim, **stalls)
    return driver


def check_reload(driver: BnnDriver, a: art.Artifact, b: art.Artifact, x: np.ndarray) -> None:
    """Scores of ``a``, load ``b`` (same signature): ``b``'s scores and test vectors; load ``a`` back: ``a``'s."""
    golden_a, golden_b = GoldenModel(a).scores(x), GoldenModel(b).scores(x)
    assert not np.array_equal(golden_a, golden_b)
    np.testing.assert_array_equal(driver.scores(x), golden_a)
    info = driver.load(b.root)
    assert info["stream_bytes"] == accel.param_stream(b).size
    np.testing.assert_array_equal(driver.scores(x), golden_b)
    assert driver.artifact.root == b.root and driver.check_vectors(limit=48)["score_mismatches"] == 0
    driver.load(a.root)
    np.testing.assert_array_equal(driver.scores(x), golden_a)


def check_refused(driver: BnnDriver, other: art.Artifact, difference: str) -> None:
    """An export of another signature: SignatureMismatchError naming the fields, and nothing changes."""
    before = driver.artifact
    with pytest.raises(SignatureMismatchError) as info:
        driver.load(other.root)
    assert str(info.value) == (
        f"the driver's accelerator (board-sim, loaded with {before.root}) is built for hardware signature "
        f"0x{before.signature:08x}, the export {other.root} has 0x{other.signature:08x} ({difference}). A "
        "bitstream runs the exports of its own signature (same topology, folding and bit widths, docs/ACCEL.md): "
        "build one for this export, or use the export it was built for")
    assert driver.artifact is before


@pytest.mark.rtl
@pytest.mark.parametrize("sim", SIMS)
def test_driver_on_the_rtl(nets, sim):
    """Signature at construction, golden scores, reload and back, a refused signature, STATUS errors from the RTL.

    The streams stall at random (MM2S idle, S2MM backpressure), and the batch is
    cut into DMA transfers of 16 images (a TLAST each).
    """
    x = images(40, seed=1)
    driver = rtl_driver(nets.first.root, sim, max_batch=16, idle=0.3, backpressure=0.3, seed=5)
    device = driver.backend.device
    with driver:
        assert isinstance(device, RtlSimDevice) and device.cosim.sim == sim
        # construction: the reps = 0 run and the signature check went to the RTL
        log = [entry if entry[0] == "w" else entry[:2] for entry in device.register_log]
        assert log == SIGNATURE_RUN
        reads = {offset: value for kind, offset, value in device.register_log if kind == "r"}
        assert reads[accel.SIGNATURE] == nets.first.signature == driver.signature
        assert (reads[accel.SIGNATURE_CTRL], reads[accel.STATUS_CTRL], reads[accel.STATUS]) == (1, 1, 0)
        check_reload(driver, nets.first, nets.second, x)
        assert driver.last_timing.details["transfers"] == 3               # 16 + 16 + 8 images
        check_refused(driver, nets.other, DIFFERENCE)
        # a padding bit set in the MM2S transfer (byte 31: bits 248..255 of the first 256-bit beat, above the
        # 160-bit word): the RTL's format check, read by the driver from STATUS
        device.corrupt_next_transfer(byte=31, mask=0x80)
        with pytest.raises(AcceleratorStatusError, match=rf"^accelerator infer run of 3 images {FORMAT_ERROR}$"):
            driver.scores(x[:3])
        np.testing.assert_array_equal(driver.scores(x[:3]), GoldenModel(nets.first).scores(x[:3]))
        # a parameter stream one byte short: the DMA's last beat has TKEEP clear on its top byte
        stream = accel.param_stream(nets.second).reshape(-1)
        with pytest.raises(AcceleratorStatusError, match=r"^accelerator parameter load \(32 beats of 32 bytes "
                                                         r"sent, the signature's parameter stream has 32\) "
                                                         rf"{FORMAT_ERROR}; reload the overlay"):
            driver.backend.load_stream(stream[:-1], expected_beats=32)
        with pytest.raises(BoardError, match=r"^the accelerator's parameters are unknown after a failed parameter "
                                             r"load"):
            driver.scores(x[:1])
        # 1 signature run; 3 + 3 + 3 infer runs of the batch, 1 of the 16 test vectors, 2 of 3 images;
        # 3 loads (second, first, the short stream)
        assert (device.runs, device.loads) == (1 + 9 + 1 + 2 + 3, 3)
        assert device.beat_errors == []
    assert device.result["ended_by"] == "close command" and device.result["input_left"] == 0
    with pytest.raises(SimulationError, match=rf"^the {sim} co-simulation of .*first has ended \(the driver was "
                                              r"closed\); make a new BnnDriver to run again$"):
        device.session.call("read", accel.CTRL)


ENGINE_EXPECTED = ("expected a callable (images (N, F) -> scores (N, C)), None (the golden model), 'rtl' (the "
                   "generated Verilog simulated by Verilator) or bnnflow.sim.board_cosim.RtlCosim(sim=...)")


@pytest.mark.parametrize("engine, error, message", [
    ("verilog", TypeError, f"option engine='verilog' (str): {ENGINE_EXPECTED}"),
    (5, TypeError, f"option engine=5 (int): {ENGINE_EXPECTED}"),
])
def test_engine_values_are_named(nets, engine, error, message):
    """A wrong engine fails before any build or simulator starts."""
    with pytest.raises(error) as info:
        BnnDriver(nets.first.root, backend="board-sim", engine=engine)
    assert str(info.value) == message


@pytest.mark.parametrize("field, value, error, message", [
    ("sim", "modelsim", ValueError, "option sim='modelsim': expected one of verilator, icarus"),
    ("seed", -1, ValueError, "option seed=-1: expected an integer in 0..4294967295"),
    ("idle", 1.0, ValueError, "option idle=1.0: expected a number in [0, 1)"),
    ("backpressure", "0.5", TypeError, "option backpressure='0.5' (str): expected a number in [0, 1)"),
    ("step_cycles", 0, ValueError, "option step_cycles=0: expected a positive integer"),
])
def test_cosim_settings_are_checked(field, value, error, message):
    with pytest.raises(error) as info:
        RtlCosim(**{field: value})
    assert str(info.value) == message


# -- trained networks --------------------------------------------------------------------------

#: The folding both trained digits nets are exported with (not the automatic one: --folding is the user's path).
TRAINED_FOLDING = [{"pe": 8, "simd": 16}, {"pe": 8, "simd": 32}, {"pe": 5, "simd": 16}]


@pytest.fixture(scope="module")
def trained(digits_run, tmp_path_factory, one_thread):
    """Two briefly trained digits nets of one shape (seeds 1 and 2), exported with one folding file; a third
    export of the first with the automatic folding (another signature)."""
    from bnnflow.cli import main

    root = tmp_path_factory.mktemp("trained")
    second_run = root / "digits_seed2"
    assert main(["train", "--dataset", "digits", "--hidden", "64,32", "--epochs", "8", "--seed", "2",
                 "--out", str(second_run), "--quiet"]) == 0
    folding = root / "folding.json"
    folding.write_text(json.dumps({"layers": TRAINED_FOLDING}))
    exports = {}
    for name, run, extra in (("first", digits_run, ["--folding", str(folding)]),
                             ("second", second_run, ["--folding", str(folding)]),
                             ("other", digits_run, [])):
        exports[name] = root / f"export_{name}"
        assert main(["export", str(run), *extra, "--generate", "rtl", "--out", str(exports[name])]) == 0
    nets = types.SimpleNamespace(**{name: art.load(path) for name, path in exports.items()})
    assert nets.first.signature == nets.second.signature != nets.other.signature
    return nets


def check_trained(trained, sim: str) -> None:
    x, labels, _ = read_vectors(trained.first)
    x, labels = x[:48], labels[:48]
    with rtl_driver(trained.first.root, sim, max_batch=32) as driver:
        assert driver.backend.timeout_s == 300.0  # the RTL engine's default: simulated cycles take wall-clock time
        check_reload(driver, trained.first, trained.second, x)
        # trained, not random: both nets classify most of the test images right
        for net in (trained.first, trained.second):
            assert np.mean(GoldenModel(net).predict(x) == labels) > 0.8
        difference = accel.describe_difference(trained.first.manifest["hardware"]["description"],
                                               trained.other.manifest["hardware"]["description"])
        assert "layer 0 pe: bitstream 8, export 16" in difference
        check_refused(driver, trained.other, difference)
        assert driver.backend.device.beat_errors == []


@pytest.mark.rtl
def test_trained_nets_reload_on_the_rtl(trained):
    """Two trained digits nets of one signature on one accelerator (Icarus: its build takes seconds)."""
    check_trained(trained, "icarus")


@pytest.mark.rtl
@pytest.mark.slow
def test_trained_nets_reload_on_verilator(trained):
    check_trained(trained, "verilator")


# -- the slow sweep: odd stream shapes, the other load errors -----------------------------------

# (features, hidden, classes, input bits, folding): tests/test_rtl_accel.py's odd shapes
SHAPES = [
    # 784 inputs of 8 bits: 128-bit words that fill their beats; 10 scores of 6 bits in 64-bit beats
    pytest.param(784, (16,), 10, 8, [F(16, 16), F(10, 16)], id="in784-out10"),
    # 1500-bit input words and 1050-bit score words: two 1024-bit beats each; parameter words of 3 and 5 beats
    pytest.param(300, (32,), 150, 5, [F(8, 300), F(150, 32)], id="multi-beat-words"),
    # input words of 3 x 1 bit in 32-bit beats, a padded first layer
    pytest.param(20, (12,), 3, 1, [F(3, 8), F(1, 5)], id="binary-input-pad"),
]


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("features,hidden,classes,bits,folding", SHAPES)
def test_shapes_on_the_rtl(tmp_path, sim, features, hidden, classes, bits, folding):
    kw = dict(input_features=features, hidden=hidden, classes=classes, input_bits=bits, folding=folding)
    a = random_artifact(tmp_path / "a", seed=3, generate=("rtl",), **kw)
    b = random_artifact(tmp_path / "b", seed=4, generate=(), **kw)
    x = images(50, features, bits, seed=6)
    with rtl_driver(a.root, sim, max_batch=20, idle=0.2, backpressure=0.4, seed=2) as driver:
        check_reload(driver, a, b, x)
        assert driver.backend.device.beat_errors == []


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("change, status, cause", [
    ("one beat more", "0x2", r"the parameter stream's TLAST was not on its last beat \(wrong length\)"),
    ("a padding bit", "0x1", r"an input beat had a nonzero padding bit or TKEEP bit clear"),
])
def test_bad_parameter_streams_on_the_rtl(nets, change, status, cause):
    """The RTL's load checks reach the driver: TLAST not on the stream's last beat, a padding bit set."""
    driver = rtl_driver(nets.first.root, "icarus", timeout_s=20.0)
    stream = accel.param_stream(nets.second).reshape(-1)
    beats = 32
    if change == "one beat more":
        stream, beats = np.concatenate([stream, np.zeros(32, np.uint8)]), 33
    else:
        # layer 0's thresholds are the first padded words: 16 x 12 bits of a 256-bit beat, after 2 x 8 weight beats
        stream = stream.copy()
        stream[accel.param_segments(nets.second)[0].beats * 32 + 31] ^= 0x01
    with driver, pytest.raises(AcceleratorStatusError, match=rf"parameter load \({beats} beats of 32 bytes sent, the "
                                                             rf"signature's parameter stream has 32\) reported "
                                                             rf"STATUS={status}: {cause}; reload the overlay"):
        driver.backend.load_stream(stream, expected_beats=32)


@pytest.mark.rtl
@pytest.mark.slow
def test_a_short_parameter_stream_times_out_on_the_rtl(nets):
    """The RTL waits for the beat that never comes; the driver's timeout names it (and close() still ends the
    simulation)."""
    stream = accel.param_stream(nets.second).reshape(-1)
    with rtl_driver(nets.first.root, "icarus", timeout_s=2.0) as driver:
        with pytest.raises(TimeoutError, match=r"accelerator parameter load \(31 beats of 32 bytes sent, the "
                                               r"signature's parameter stream has 32\) did not finish within 2.0 s "
                                               r".*: it waits for more of the parameter stream than was sent"):
            driver.backend.load_stream(stream[:-32], expected_beats=32)
    assert driver.backend.device.result["ended_by"] == "close command"


@pytest.mark.rtl
@pytest.mark.slow
def test_a_testbench_failure_is_reported(nets):
    """An exception in the testbench reaches the caller with its traceback; the driver then refuses to run."""
    import shutil

    driver = rtl_driver(nets.first.root, "icarus")
    with pytest.raises(SimulationError) as info:
        driver.backend.device.session.call("bogus")
    message = str(info.value)
    assert message.startswith(f"icarus co-simulation of bnnflow_accel for {nets.first.root}: the testbench failed "
                              "on bogus 0x0:\nTraceback")
    assert "ValueError: unknown command 'bogus'" in message
    assert "\nthe simulator: icarus simulation of bnnflow_accel (bnnflow.sim.tb_board): " in message
    assert "; run directory " in message   # a failed simulation keeps its run directory and log
    run_dir = message.split("run directory ")[1].split()[0]
    shutil.rmtree(run_dir)
    with pytest.raises(SimulationError, match=r"co-simulation of .*first has ended \(it failed\); make a new "):
        driver.scores(images(1))
    driver.close()
