"""The board backend's PYNQ code path against a simulated pynq.Device (no board needed).

The real pynq MMIO/DefaultIP/AXI DMA drivers run; only the device underneath
(registers, memory, the engine's arithmetic) is simulated by
bnnflow.host.simdevice.
"""

from __future__ import annotations

import numpy as np
import pytest

pynq = pytest.importorskip("pynq")

from bnnflow import artifact as art  # noqa: E402
from bnnflow.folding import LayerFolding  # noqa: E402
from bnnflow.golden import GoldenModel  # noqa: E402
from bnnflow.host import BnnDriver, BoardError, BoardNotFoundError, dma_layout  # noqa: E402
from bnnflow.host.accel_ip import AP_START, CTRL, REPS, VLNV, BnnflowAccel  # noqa: E402
from bnnflow.host.backend_board import BoardBackend  # noqa: E402
from bnnflow.host.simdevice import ACCEL_BASE, SimDevice, SimOverlay  # noqa: E402
from bnnflow.testing import random_artifact  # noqa: E402


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
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


def batch(n: int, features: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 32, size=(n, features), dtype=np.uint8)


def test_board_sim_equals_golden(export_dir):
    driver = BnnDriver(export_dir, backend="board-sim")
    x = batch(40, seed=1)
    np.testing.assert_array_equal(driver.scores(x), GoldenModel(driver.artifact).scores(x))
    assert driver.last_timing.backend == "board-sim" and driver.last_timing.images == 40
    assert driver.check_vectors()["score_mismatches"] == 0


def test_register_protocol(export_dir):
    """Per chunk: reps written to 0x10 before ap_start at 0x00, then ap_done/ap_idle polled."""
    driver = BnnDriver(export_dir, backend="board-sim", max_batch=16)
    device = driver.backend.device
    x = batch(40, seed=2)
    np.testing.assert_array_equal(driver.classify(x), GoldenModel(driver.artifact).predict(x))
    assert driver.last_timing.details["transfers"] == 3 and device.runs == 3
    writes = [(offset, value) for kind, offset, value in device.register_log if kind == "w"]
    assert writes == [(REPS, 16), (CTRL, AP_START), (REPS, 16), (CTRL, AP_START), (REPS, 8), (CTRL, AP_START)]
    assert device.register_log[-1][:2] == ("r", CTRL)  # the run ended on a poll of the control register
    assert isinstance(driver.backend.accel, BnnflowAccel)


def test_dma_length_limit_splits_batches(export_dir):
    # an 8-bit length register (PG021's narrowest): at most 255 bytes per transfer
    # (input: 2 words of 80 bits = 20 bytes per image)
    driver = BnnDriver(export_dir, backend="board-sim", length_width=8)
    backend = driver.backend
    per = min(255 // backend.in_port.bytes_per_image, 255 // backend.out_port.bytes_per_image)
    assert per < 23
    assert backend.images_per_transfer == per
    x = batch(23, seed=3)
    np.testing.assert_array_equal(driver.scores(x), GoldenModel(driver.artifact).scores(x))
    assert driver.last_timing.details["transfers"] == -(-23 // per)


def test_odd_stream_widths_and_word_padding(odd_widths):
    a = art.load(odd_widths)
    assert a.layers[0].in_stream_bits == 35 and a.layers[-1].out_stream_bits % 8
    x = batch(9, features=50, seed=4)
    golden = GoldenModel(a).scores(x)
    for in_bytes, out_bytes in ((None, None), (8, 8), (16, 6)):
        driver = BnnDriver(odd_widths, backend="board-sim", in_word_bytes=in_bytes, out_word_bytes=out_bytes)
        assert driver.backend.in_port.word_bytes == (in_bytes or 5)
        np.testing.assert_array_equal(driver.scores(x), golden)


def test_layout_round_trip(odd_widths):
    a = art.load(odd_widths)
    port = dma_layout.input_port(a, 8)
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
    with pytest.raises(ValueError, match="at least 5 bytes"):
        dma_layout.input_port(a, 4)


def test_mismatched_bitstream_is_reported(export_dir):
    a = art.load(export_dir)
    # the board's engine writes wider score words than the artifact says: more bytes than the buffer holds
    wider = SimOverlay(SimDevice(a, out_word_bytes=dma_layout.output_port(a).word_bytes + 1))
    with pytest.raises(BoardError, match="DMA receive.*internal error"):
        BoardBackend(a, overlay=wider).run(batch(3))
    # ... or an engine that writes fewer scores than the artifact's network has: fewer bytes arrive
    short = SimOverlay(SimDevice(a, engine=lambda x: GoldenModel(a).scores(x)[:1]))
    with pytest.raises(BoardError, match="received .* bytes of scores for 3 images.*does not match the artifact"):
        BoardBackend(a, overlay=short).run(batch(3))


def test_engine_that_never_finishes_times_out(export_dir):
    a = art.load(export_dir)
    # the board's engine expects longer input words, so it waits for bytes that never come
    stuck = SimOverlay(SimDevice(a, in_word_bytes=dma_layout.input_port(a).word_bytes + 1))
    with pytest.raises(TimeoutError, match="did not complete within 0.2 s"):
        BoardBackend(a, overlay=stuck, timeout_s=0.2).run(batch(2))


def test_overlay_without_the_ips(export_dir):
    a = art.load(export_dir)
    overlay = SimOverlay(SimDevice(a))
    with pytest.raises(BoardError, match="no bnnflow_top accelerator named 'accel'.*axi_dma_0"):
        BoardBackend(a, overlay=overlay, accel_name="accel")


def test_pynq_extension_point(export_dir):
    """Inside activate() the simulated device is pynq's active device: plain pynq calls reach it."""
    from pynq.overlay import _ip_drivers

    assert _ip_drivers[VLNV] is BnnflowAccel  # pynq.Overlay binds the driver to the HLS IP by its VLNV
    device = SimDevice(art.load(export_dir))
    with device.activate():
        assert pynq.Device.active_device is device
        mmio = pynq.MMIO(ACCEL_BASE, 0x20)
        mmio.write(REPS, 7)
        assert mmio.read(REPS) == 7 and mmio.read(CTRL) & 0x4  # ap_idle
        buf = pynq.allocate((16,), dtype=np.uint32)
        assert buf.physical_address % 4096 == 0
    with pytest.raises(BoardNotFoundError):
        BnnDriver(export_dir, backend="board")
