"""BnnDriver.load and the hardware signature (docs/ACCEL.md; issue 6 items 3 and 5, driver side).

Two random networks of one signature (same shapes and folding, other seeds)
are interchangeable on one accelerator: a reload between two batches gives
each net's golden scores, on golden and on the board path (board-sim: the
parameter stream through pynq's DMA driver in load mode). Another folding is
another signature and is refused, naming the field. The accelerator's STATUS
errors (a padding bit set, a parameter stream of the wrong length, a bad
mode) reach the caller naming the cause.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from bnnflow import accel
from bnnflow.folding import LayerFolding
from bnnflow.golden import GoldenModel
from bnnflow.host import BnnDriver, BoardError, SignatureMismatchError
from bnnflow.testing import random_artifact

#: The folding of the "other signature" net: every layer's PE or SIMD differs from the default folding's.
OTHER_FOLDING = [LayerFolding(pe=8, simd=32), LayerFolding(pe=16, simd=16), LayerFolding(pe=5, simd=16)]
#: accel.describe_difference(the default folding's description, OTHER_FOLDING's), as load() words it.
DIFFERENCE = ("out_beat_bits: bitstream 128, export 64; layer 0 pe: bitstream 16, export 8; "
              "layer 1 simd: bitstream 32, export 16; layer 2 pe: bitstream 10, export 5; ...")


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """first, second: one signature (64-64-32-10, default folding), other weights; other: another folding."""
    root = tmp_path_factory.mktemp("load")
    first = random_artifact(root / "first", seed=1, generate=())
    second = random_artifact(root / "second", seed=2, generate=())
    other = random_artifact(root / "other", seed=1, folding=OTHER_FOLDING, generate=())
    assert first.signature == second.signature != other.signature
    return types.SimpleNamespace(first=first, second=second, other=other)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 32, size=(n, 64), dtype=np.uint8)


def board_sim_or_skip(backend: str) -> None:
    if backend == "board-sim":
        pytest.importorskip("pynq")


@pytest.mark.parametrize("backend", ["golden", "board-sim"])
def test_reload_between_batches_gives_each_nets_scores(nets, backend):
    board_sim_or_skip(backend)
    x = images(25, seed=1)
    expected = {name: GoldenModel(getattr(nets, name)).scores(x) for name in ("first", "second")}
    assert not np.array_equal(expected["first"], expected["second"])
    options = {"max_batch": 10} if backend == "board-sim" else {}
    with BnnDriver(nets.first.root, backend=backend, **options) as driver:
        np.testing.assert_array_equal(driver.scores(x), expected["first"])
        info = driver.load(nets.second.root)
        np.testing.assert_array_equal(driver.scores(x), expected["second"])
        assert driver.artifact.root == nets.second.root and driver.signature == nets.first.signature
        assert driver.check_vectors()["score_mismatches"] == 0  # the new export's own test vectors
        assert info["backend"] == backend and info["export"] == str(nets.second.root)
        assert info["signature"] == f"0x{nets.first.signature:08x}" and info["seconds"] > 0
        if backend == "board-sim":
            stream = accel.param_stream(nets.second)
            assert info["stream_bytes"] == stream.size == 32 * 32  # 32 beats of 256 bits
            device = driver.backend.device
            assert device.loads == 1 and driver.last_timing.details["transfers"] == 2  # 16 vectors, 10 + 6
            # the load run: reps 0, mode 1, ap_start; then the STATUS check
            writes = [(o, v) for kind, o, v in device.register_log if kind == "w"]
            assert (accel.REPS, 0) in writes and (accel.MODE, accel.MODE_LOAD) in writes
        else:
            assert info["stream_bytes"] is None
        driver.load(nets.first)  # a loaded Artifact works too, and back again
        np.testing.assert_array_equal(driver.scores(x), expected["first"])


@pytest.mark.parametrize("backend", ["golden", "board-sim"])
def test_another_signature_is_refused_naming_the_fields(nets, backend):
    board_sim_or_skip(backend)
    driver = BnnDriver(nets.first.root, backend=backend)
    with pytest.raises(SignatureMismatchError) as info:
        driver.load(nets.other.root)
    assert str(info.value) == (
        f"the driver's accelerator ({backend}, loaded with {nets.first.root}) is built for hardware signature "
        f"0x{nets.first.signature:08x}, the export {nets.other.root} has 0x{nets.other.signature:08x} "
        f"({DIFFERENCE}). A bitstream runs the exports of its own signature (same topology, folding and bit "
        "widths, docs/ACCEL.md): build one for this export, or use the export it was built for")
    assert isinstance(info.value, BoardError)
    x = images(4, seed=2)  # nothing changed
    assert driver.artifact.root == nets.first.root
    np.testing.assert_array_equal(driver.scores(x), GoldenModel(nets.first).scores(x))


def test_rtl_backend_switches_to_the_new_export(nets, monkeypatch):
    """rtl: the simulation of the loaded export's design (run_network gets the new artifact)."""
    seen = []

    def run_network(artifact, batch, sim="verilator", **options):
        seen.append(artifact.root)
        return types.SimpleNamespace(scores=GoldenModel(artifact).scores(batch), cycles_per_image=1.0, model_cycles=1)

    from bnnflow.host import backend_rtl

    # the simulation engines' loaders hand out the stand-in (whichever engine the backend picks)
    monkeypatch.setattr(backend_rtl, "load_run_network", lambda: run_network)
    monkeypatch.setattr(backend_rtl, "load_run_bulk", lambda: run_network, raising=False)
    driver = BnnDriver(nets.first.root, backend="rtl")
    x = images(3, seed=3)
    driver.scores(x)
    driver.load(nets.second.root)
    np.testing.assert_array_equal(driver.scores(x), GoldenModel(nets.second).scores(x))
    assert seen == [nets.first.root, nets.second.root]
    with pytest.raises(SignatureMismatchError, match=r"\(rtl, loaded with .*second\) is built for"):
        driver.load(nets.other.root)


# -- the board path: STATUS errors and the signature at construction ---------------------------

@pytest.fixture
def board(nets):
    pytest.importorskip("pynq")
    return BnnDriver(nets.first.root, backend="board-sim", timeout_s=0.5)


def test_a_padding_bit_surfaces_as_a_format_error(board, nets):
    from bnnflow.host.accel_ip import AcceleratorStatusError

    x = images(3, seed=4)
    # byte 31 is the top byte of the first 256-bit beat: bits 248..255, above the 160-bit word
    board.backend.device.corrupt_next_transfer(byte=31, mask=0x80)
    with pytest.raises(AcceleratorStatusError, match=r"^accelerator infer run of 3 images reported STATUS=0x1: an "
                                                     r"input beat had a nonzero padding bit or TKEEP bit clear$"):
        board.scores(x)
    # the next run is clean again: STATUS belongs to one run
    np.testing.assert_array_equal(board.scores(x), GoldenModel(nets.first).scores(x))


def test_a_padding_bit_in_the_parameter_stream(board, nets):
    from bnnflow.host.accel_ip import AcceleratorStatusError

    # the thresholds of layer 2 do not exist (a score layer); layer 0's weight words are 512 bits = 2 beats
    # exactly, so the first padded word is layer 0's thresholds: 16 x 12 bits = 192 bits of a 256-bit beat
    segment = accel.param_segments(nets.second)[1]
    assert (segment.layer, segment.memory, segment.word_bits) == (0, "thresholds", 16 * 12)
    offset = accel.param_segments(nets.second)[0].beats * 32
    board.backend.device.corrupt_next_transfer(byte=offset + 31, mask=0x01)
    with pytest.raises(AcceleratorStatusError, match=r"^accelerator parameter load \(32 beats of 32 bytes sent, the "
                                                     r"signature's parameter stream has 32\) reported STATUS=0x1: "
                                                     r"an input beat had a nonzero padding bit .*; reload the "
                                                     r"overlay before the next run"):
        board.load(nets.second.root)
    assert board.artifact.root == nets.first.root  # a failed load does not switch the export
    # ... and the memories hold neither net now: the driver refuses to compute with them
    for call in (lambda: board.scores(images(2)), lambda: board.load(nets.first.root)):
        with pytest.raises(BoardError, match=r"^the accelerator's parameters are unknown after a failed parameter "
                                             r"load \(32 beats .*\): reload the overlay \(make a new BnnDriver\)"):
            call()


@pytest.mark.parametrize("change, beats, status, cause", [
    ("one beat more", 33, "0x2", r"the parameter stream's TLAST was not on its last beat \(wrong length\)"),
    ("one byte less", 32, "0x1", r"an input beat had a nonzero padding bit or TKEEP bit clear"),
])
def test_a_parameter_stream_of_the_wrong_length(board, nets, change, beats, status, cause):
    from bnnflow.host.accel_ip import AcceleratorStatusError

    stream = accel.param_stream(nets.second).reshape(-1)
    data = np.concatenate([stream, np.zeros(32, np.uint8)]) if change == "one beat more" else stream[:-1]
    with pytest.raises(AcceleratorStatusError, match=rf"parameter load \({beats} beats of 32 bytes sent, the "
                                                     rf"signature's parameter stream has 32\) reported "
                                                     rf"STATUS={status}: {cause}; reload the overlay"):
        board.backend.load_stream(data, expected_beats=accel.param_beats(nets.second))


def test_a_short_parameter_stream_times_out_saying_so(board, nets):
    stream = accel.param_stream(nets.second).reshape(-1)
    with pytest.raises(TimeoutError, match=r"accelerator parameter load \(31 beats of 32 bytes sent, the signature's "
                                           r"parameter stream has 32\) did not finish within 0.5 s .*: it waits for "
                                           r"more of the parameter stream than was sent"):
        board.backend.load_stream(stream[:-32], expected_beats=32)


def test_board_sim_with_a_custom_engine_cannot_load(nets):
    pytest.importorskip("pynq")
    driver = BnnDriver(nets.first.root, backend="board-sim", engine=GoldenModel(nets.first).scores)
    with pytest.raises(BoardError, match="board-sim with a custom engine computes with fixed parameters and cannot "
                                         "load .*second; use the default engine"):
        driver.load(nets.second.root)


def test_construction_refuses_a_bitstream_of_another_signature(nets, tmp_path):
    pytest.importorskip("pynq")
    from bnnflow.host.backend_board import BoardBackend
    from bnnflow.host.simdevice import SimDevice, SimOverlay
    from bnnflow.vivado import write_build

    device = SimDevice(nets.other)  # a bitstream built for the other folding
    prefix = (f"the accelerator is built for hardware signature 0x{nets.other.signature:08x}, the export "
              f"{nets.first.root} has 0x{nets.first.signature:08x}")
    with pytest.raises(SignatureMismatchError) as info:
        BoardBackend(nets.first, overlay=SimOverlay(device))
    assert str(info.value).startswith(prefix + ". A bitstream runs the exports of its own signature")
    # with a bitstream path: the build's .signature.json beside it names the fields
    write_build(nets.other, "pynq-z2", "hls", tmp_path / "build", tmp_path / "out", hls_ip_dir=tmp_path)
    bit = tmp_path / "build" / "bnnflow-pynq-z2-hls.bit"
    with pytest.raises(SignatureMismatchError) as info:
        BoardBackend(nets.first, overlay=SimOverlay(device, bitfile_name=str(bit)))
    flipped = accel.describe_difference(nets.other.manifest["hardware"]["description"],
                                        nets.first.manifest["hardware"]["description"])
    assert flipped.startswith("out_beat_bits: bitstream 64, export 128; layer 0 pe: bitstream 8, export 16")
    assert str(info.value).startswith(
        f"the bitstream {bit} is built for hardware signature 0x{nets.other.signature:08x}, the export "
        f"{nets.first.root} has 0x{nets.first.signature:08x} ({flipped}; from bnnflow-pynq-z2-hls.signature.json)")
    # a .signature.json of another build is not believed
    stale = tmp_path / "stale.bit"
    (tmp_path / "stale.signature.json").write_text(
        (tmp_path / "build" / "bnnflow-pynq-z2-hls.signature.json").read_text().replace(
            f"0x{nets.other.signature:08x}", "0x00000000"))
    with pytest.raises(SignatureMismatchError, match=r"stale.signature.json describes signature '0x00000000', not "
                                                     r"the bitstream's: it belongs to another build"):
        BoardBackend(nets.first, overlay=SimOverlay(device, bitfile_name=str(stale)))
    with pytest.raises(SignatureMismatchError, match=r"; no missing.signature.json beside the bitstream names"):
        BoardBackend(nets.first, overlay=SimOverlay(device, bitfile_name=str(tmp_path / "missing.bit")))
    # the driver's own device is built for the export: no error, and the driver knows the signature
    assert BnnDriver(nets.first.root, backend="board-sim").backend.signature == nets.first.signature


def test_a_bitstream_without_a_signature_register_is_named(nets):
    """An accelerator built before docs/ACCEL.md writes no status/signature (ap_vld stays clear)."""
    pytest.importorskip("pynq")
    from bnnflow.host.backend_board import BoardBackend
    from bnnflow.host.simdevice import SimDevice, SimOverlay

    class OldDevice(SimDevice):
        def _accel_read(self, offset: int) -> int:
            if offset in (accel.SIGNATURE, accel.SIGNATURE_CTRL, accel.STATUS, accel.STATUS_CTRL):
                return 0
            return super()._accel_read(offset)

    with pytest.raises(BoardError, match=r"reps=0 run \(reading the signature\): it finished without writing its "
                                         r"status register .*predates the interface of docs/ACCEL.md"):
        BoardBackend(nets.first, overlay=SimOverlay(OldDevice(nets.first)))


def test_register_map_from_the_hwh_is_checked():
    pytest.importorskip("pynq")
    from bnnflow import accel
    from bnnflow.host.accel_ip import check_register_map
    from bnnflow.host.backend_board import BoardError

    good = {"registers": {"CTRL": {"address_offset": 0}, "reps": {"address_offset": accel.REPS},
                          "mode": {"address_offset": accel.MODE}, "signature": {"address_offset": accel.SIGNATURE},
                          "status": {"address_offset": accel.STATUS}}}
    check_register_map(good)
    check_register_map({})  # no registers in the .hwh (the Verilog IP): nothing to compare
    bad = {"registers": {**good["registers"], "mode": {"address_offset": 0x1C}, "status": {"address_offset": 0x30}}}
    with pytest.raises(BoardError, match=r"register map \(from the .hwh\) differs from docs/ACCEL.md: mode at 0x1c "
                                         r"\(driver: 0x18\), status at 0x30 \(driver: 0x28\)"):
        check_register_map(bad)


def test_fabric_clock_is_set_through_pynq_clocks():
    from types import SimpleNamespace

    from bnnflow.host.backend_board import BoardError, set_fabric_clock

    class Clocks:  # the PS rounds to what its dividers make, as pynq.ps.Clocks reports back
        _mhz = 100.0

        @property
        def fclk0_mhz(self):
            return self._mhz

        @fclk0_mhz.setter
        def fclk0_mhz(self, value):
            self._mhz = round(1000.0 / round(1000.0 / value), 3)

    assert set_fabric_clock(SimpleNamespace(Clocks=Clocks()), 150) == 142.857
    with pytest.raises(BoardError, match=r"this pynq has no Clocks.fclk0_mhz \(pynq.ps.Clocks\); cannot set fclk_mhz"):
        set_fabric_clock(SimpleNamespace(), 150)


@pytest.mark.parametrize("value, message", [(0, "fclk_mhz=0"), (501, "fclk_mhz=501"), ("fast", "fclk_mhz='fast'")])
def test_fabric_clock_option_is_checked_before_pynq(tmp_path, value, message):
    export = tmp_path / "e"
    random_artifact(export, seed=3, n_vectors=1, generate=())
    with pytest.raises((ValueError, TypeError), match=message):
        BnnDriver(export, backend="board", fclk_mhz=value)
