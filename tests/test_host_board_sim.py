"""The board backend's PYNQ code path against a simulated pynq.Device (no board needed).

The real pynq MMIO/DefaultIP/AXI DMA drivers run; only the device underneath
(registers, memory, the engine's arithmetic) is simulated by
bnnflow.host.simdevice, which follows the accelerator interface of
docs/ACCEL.md (beat streams, reps/mode/signature/status registers).
"""

from __future__ import annotations

import numpy as np
import pytest

pynq = pytest.importorskip("pynq")

from bnnflow import accel  # noqa: E402
from bnnflow import artifact as art  # noqa: E402
from bnnflow.folding import LayerFolding  # noqa: E402
from bnnflow.golden import GoldenModel  # noqa: E402
from bnnflow.host import BnnDriver, BoardError, BoardNotFoundError, dma_layout  # noqa: E402
from bnnflow.host.accel_ip import DEFAULT_HLS_VLNV, VLNV, VLNVS, AcceleratorStatusError, BnnflowAccel  # noqa: E402
from bnnflow.host.backend_board import BoardBackend  # noqa: E402
from bnnflow.host.simdevice import ACCEL_BASE, SimDevice, SimOverlay  # noqa: E402
from bnnflow.testing import random_artifact  # noqa: E402
from bnnflow.vivado import ACCEL_IPS  # noqa: E402


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """Input words of 160 bits in 256-bit beats (32 bytes, 2 per image); scores: 70 bits in 128-bit beats."""
    root = tmp_path_factory.mktemp("boardsim") / "export"
    random_artifact(root, seed=8, generate=())
    return root


@pytest.fixture(scope="module")
def odd_widths(tmp_path_factory):
    """Stream words that are not byte multiples: 7 x 5-bit = 35-bit input words, 5 x 6-bit = 30-bit scores."""
    root = tmp_path_factory.mktemp("boardsim_odd") / "export"
    folding = [LayerFolding(pe=4, simd=7), LayerFolding(pe=5, simd=6)]
    random_artifact(root, seed=9, input_features=50, hidden=(20,), classes=10, folding=folding, generate=())
    return root


@pytest.fixture(scope="module")
def multi_beat(tmp_path_factory):
    """Words wider than the widest beat: 784 x 8-bit inputs = 6272 bits (7 beats of 1024), 160 x 7-bit scores
    = 1120 bits (2 beats)."""
    root = tmp_path_factory.mktemp("boardsim_wide") / "export"
    folding = [LayerFolding(pe=4, simd=784), LayerFolding(pe=160, simd=32)]
    random_artifact(root, seed=4, input_features=784, hidden=(32,), classes=160, input_bits=8, folding=folding,
                    n_vectors=6, generate=())
    return root


def batch(n: int, features: int = 64, seed: int = 0, bits: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << bits, size=(n, features), dtype=np.uint8)


def test_board_sim_equals_golden(export_dir):
    driver = BnnDriver(export_dir, backend="board-sim")
    x = batch(40, seed=1)
    np.testing.assert_array_equal(driver.scores(x), GoldenModel(driver.artifact).scores(x))
    assert driver.last_timing.backend == "board-sim" and driver.last_timing.images == 40
    assert driver.check_vectors()["score_mismatches"] == 0


def test_register_protocol(export_dir):
    """The signature run at construction; per chunk reps, mode, ap_start, then polls, STATUS checked."""
    driver = BnnDriver(export_dir, backend="board-sim", max_batch=16)
    device = driver.backend.device
    signature_run = [("r", accel.CTRL), ("w", accel.REPS, 0), ("w", accel.MODE, accel.MODE_INFER),
                     ("w", accel.CTRL, accel.AP_START), ("r", accel.CTRL), ("r", accel.SIGNATURE_CTRL),
                     ("r", accel.SIGNATURE), ("r", accel.STATUS_CTRL), ("r", accel.STATUS)]
    log = [entry if entry[0] == "w" else entry[:2] for entry in device.register_log]
    assert log == signature_run
    reads = {offset: value for kind, offset, value in device.register_log if kind == "r"}
    assert reads[accel.SIGNATURE] == driver.artifact.signature == driver.signature
    assert reads[accel.SIGNATURE_CTRL] == 1 and reads[accel.STATUS_CTRL] == 1 and reads[accel.STATUS] == 0
    device.register_log.clear()
    x = batch(40, seed=2)
    np.testing.assert_array_equal(driver.classify(x), GoldenModel(driver.artifact).predict(x))
    assert driver.last_timing.details["transfers"] == 3 and device.runs == 1 + 3
    writes = [(offset, value) for kind, offset, value in device.register_log if kind == "w"]
    assert writes == [(accel.REPS, 16), (accel.MODE, 0), (accel.CTRL, accel.AP_START)] * 2 + [
        (accel.REPS, 8), (accel.MODE, 0), (accel.CTRL, accel.AP_START)]
    # every run ends with the status check: ap_vld first, then the bits
    assert [e[:2] for e in device.register_log[-2:]] == [("r", accel.STATUS_CTRL), ("r", accel.STATUS)]
    assert isinstance(driver.backend.accel, BnnflowAccel)


def test_status_and_signature_registers(export_dir):
    """reps = 0 consumes nothing and only reports; ap_vld bits clear on read; a bad mode sets STATUS_BAD_MODE."""
    a = art.load(export_dir)
    device = SimDevice(a)
    with device.activate():
        mmio = pynq.MMIO(ACCEL_BASE, 0x40)
        assert [mmio.read(r) for r in (accel.SIGNATURE, accel.SIGNATURE_CTRL, accel.STATUS_CTRL)] == [0, 0, 0]
        ip = SimOverlay(device).bnnflow_top_0
        assert ip.signature() == a.signature
        assert mmio.read(accel.SIGNATURE_CTRL) == 0  # read by signature() already: cleared
        assert device.runs == 1 and device.to_engine.data == bytearray()
        ip.start(0, mode=5)
        ip.wait(1.0)
        assert ip.status == accel.STATUS_BAD_MODE
        with pytest.raises(AcceleratorStatusError, match=r"accelerator probe reported STATUS=0x4: the mode register "
                                                         r"held an unknown mode") as info:
            ip.check("probe")
        assert info.value.status == accel.STATUS_BAD_MODE
        with pytest.raises(ValueError, match=r"mode must be in \[0, 2\*\*32\), got -1"):
            ip.start(1, mode=-1)


def test_dma_length_limit_splits_batches(export_dir):
    # an 8-bit length register (PG021's narrowest): at most 255 bytes per transfer
    # (input: 2 words of 160 bits in 32-byte beats = 64 bytes per image)
    driver = BnnDriver(export_dir, backend="board-sim", length_width=8)
    backend = driver.backend
    assert backend.in_port.bytes_per_image == 64 and backend.out_port.bytes_per_image == 16
    assert backend.images_per_transfer == 3
    x = batch(23, seed=3)
    np.testing.assert_array_equal(driver.scores(x), GoldenModel(driver.artifact).scores(x))
    assert driver.last_timing.details["transfers"] == 8


@pytest.mark.parametrize("fixture, features, bits, in_beat, in_word_bytes, out_beat, out_word_bytes", [
    ("export_dir", 64, 5, 256, 32, 128, 16),
    ("odd_widths", 50, 5, 64, 8, 32, 4),
    ("multi_beat", 784, 8, 1024, 7 * 128, 1024, 2 * 128),
])
def test_stream_layout_is_the_accelerators(request, fixture, features, bits, in_beat, in_word_bytes, out_beat,
                                           out_word_bytes):
    """The DMA buffers hold whole beats (docs/ACCEL.md): power-of-two TDATA, a word over several beats, padding 0."""
    root = request.getfixturevalue(fixture)
    driver = BnnDriver(root, backend="board-sim")
    backend = driver.backend
    assert (backend.in_stream.beat_bits, backend.in_port.word_bytes) == (in_beat, in_word_bytes)
    assert (backend.out_stream.beat_bits, backend.out_port.word_bytes) == (out_beat, out_word_bytes)
    x = batch(5, features=features, seed=4, bits=bits)
    np.testing.assert_array_equal(driver.scores(x), GoldenModel(driver.artifact).scores(x))
    data = dma_layout.pack_images(driver.artifact, x, backend.in_port)
    words = data.reshape(-1, in_word_bytes)
    in_bits = backend.in_port.tdata_bits
    assert not accel.padding_set(words.reshape(-1, in_beat // 8), in_bits, in_word_bytes * 8 // in_beat).any()
    assert not words[:, -(-in_bits // 8):].any()  # every byte above the word is zero


def test_layout_round_trip(odd_widths):
    a = art.load(odd_widths)
    port = dma_layout.input_port(a)
    assert port == dma_layout.StreamPort(35, 8, a.layers[0].sf)  # 35 bits in a 64-bit beat
    x = batch(6, features=50, seed=5)
    data = dma_layout.pack_images(a, x, port)
    assert data.size == 6 * a.layers[0].sf * 8
    words = dma_layout.bytes_to_words(data, 8, port.tdata_bits)
    assert all(w < 1 << 35 for w in words)
    assert not data.reshape(-1, 8)[:, 5:].any()  # bytes above the 35 TDATA bits are zero
    np.testing.assert_array_equal(dma_layout.unpack_images(a, data, port), x)
    out = dma_layout.output_port(a)
    scores = GoldenModel(a).scores(x)
    np.testing.assert_array_equal(dma_layout.unpack_scores(a, dma_layout.pack_scores(a, scores, out), out, 6), scores)
    with pytest.raises(ValueError, match="stream words have 35 bits and need at least 5 bytes"):
        dma_layout.input_port(a, 4)


def test_engine_that_is_not_the_network_is_reported(export_dir):
    a = art.load(export_dir)
    # the board's engine writes twice the scores the artifact's network has: more bytes than the buffer holds
    doubled = SimOverlay(SimDevice(a, engine=lambda x: np.repeat(GoldenModel(a).scores(x), 2, axis=0)))
    with pytest.raises(BoardError, match="DMA receive.*internal error"):
        BoardBackend(a, overlay=doubled).run(batch(3))
    # ... or fewer scores than the artifact's network has: fewer bytes arrive
    short = SimOverlay(SimDevice(a, engine=lambda x: GoldenModel(a).scores(x)[:1]))
    with pytest.raises(BoardError, match="received .* bytes of scores for 3 images.*does not match the artifact"):
        BoardBackend(a, overlay=short).run(batch(3))


def test_engine_that_never_finishes_times_out(export_dir):
    a = art.load(export_dir)
    backend = BoardBackend(a, overlay=SimOverlay(SimDevice(a)), timeout_s=0.2)
    start = backend.accel.start
    backend.accel.start = lambda reps, mode=accel.MODE_INFER: start(reps + 1, mode)  # waits for an image never sent
    with pytest.raises(TimeoutError, match=r"DMA receive \(S2MM\) did not complete within 0.2 s"):
        backend.run(batch(2))


def test_accelerator_discovery(export_dir):
    """accel_name None: the one IP of a bnnflow VLNV, HLS or Verilog engine; none or several is an error."""
    a = art.load(export_dir)
    for ip in ("hls", "rtl"):
        backend = BoardBackend(a, overlay=SimOverlay(SimDevice(a), ip=ip))
        assert backend.accel_name == ACCEL_IPS[ip].instance
        np.testing.assert_array_equal(backend.run(batch(2)).scores, GoldenModel(a).scores(batch(2)))
    overlay = SimOverlay(SimDevice(a))
    overlay.ip_dict["bnnflow_top_1"] = dict(overlay.ip_dict["bnnflow_top_0"], fullpath="bnnflow_top_1")
    with pytest.raises(BoardError, match=r"the overlay has 2 bnnflow accelerators \(bnnflow_top_0, bnnflow_top_1\); "
                                         r"pass accel_name= to pick one"):
        BoardBackend(a, overlay=overlay)
    assert isinstance(BoardBackend(a, overlay=overlay, accel_name="bnnflow_top_0").accel, BnnflowAccel)
    del overlay.ip_dict["bnnflow_top_0"], overlay.ip_dict["bnnflow_top_1"]
    with pytest.raises(BoardError, match=r"the overlay has no bnnflow accelerator \(an IP of type "
                                         r"bnnflow:bnnflow:bnnflow_top:1.0 or .*\); it has: axi_dma_0 "
                                         r"\(xilinx.com:ip:axi_dma:7.1\); pass accel_name="):
        BoardBackend(a, overlay=overlay)


def test_overlay_without_the_named_ips(export_dir):
    a = art.load(export_dir)
    overlay = SimOverlay(SimDevice(a))
    with pytest.raises(BoardError, match="no bnnflow accelerator named 'accel'.*axi_dma_0, bnnflow_top_0"):
        BoardBackend(a, overlay=overlay, accel_name="accel")
    with pytest.raises(BoardError, match="no AXI DMA named 'dma'"):
        BoardBackend(a, overlay=overlay, dma_name="dma")


def test_dma_stream_width_must_be_the_beat_width(export_dir):
    a = art.load(export_dir)
    overlay = SimOverlay(SimDevice(a))
    overlay.ip_dict["axi_dma_0"]["parameters"]["c_m_axis_mm2s_tdata_width"] = "64"
    with pytest.raises(BoardError, match=r"its MM2S stream is 64 bits wide \(c_m_axis_mm2s_tdata_width\), the "
                                         r"accelerator's input beats are 256 bits"):
        BoardBackend(a, overlay=overlay)


def test_pynq_extension_point(export_dir):
    """Inside activate() the simulated device is pynq's active device: plain pynq calls reach it."""
    from pynq.overlay import _ip_drivers

    assert VLNVS == (ACCEL_IPS["hls"].vlnv, ACCEL_IPS["rtl"].vlnv, DEFAULT_HLS_VLNV) and VLNV == VLNVS[0]
    for vlnv in VLNVS:  # pynq.Overlay binds the driver to either engine's IP by its VLNV
        assert _ip_drivers[vlnv] is BnnflowAccel
    device = SimDevice(art.load(export_dir))
    with device.activate():
        assert pynq.Device.active_device is device
        mmio = pynq.MMIO(ACCEL_BASE, 0x40)
        mmio.write(accel.REPS, 7)
        mmio.write(accel.MODE, 1)
        assert mmio.read(accel.REPS) == 7 and mmio.read(accel.MODE) == 1 and mmio.read(accel.CTRL) & accel.AP_IDLE
        buf = pynq.allocate((16,), dtype=np.uint32)
        assert buf.physical_address % 4096 == 0
    with pytest.raises(BoardNotFoundError):
        BnnDriver(export_dir, backend="board")
