"""Issue 12, the driver's part: no silent wrong result, every bad option or input named.

Every keyword option of every backend is checked for type and range before
anything is loaded; every bad batch is one ValueError/TypeError naming
``images``, what was found and what is expected; results are fully written by
the backend or the call fails. The hypothesis tests are seeded
(``derandomize=True``) and bounded so they stay fast.
"""

from __future__ import annotations

import inspect
import math
import sys
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from bnnflow import artifact as art
from bnnflow.folding import default_folding
from bnnflow.golden import GoldenModel
from bnnflow.host import BnnDriver, BoardError, BoardNotFoundError
from bnnflow.host.backend_board import BOARD_OPTIONS, SIM_OPTIONS
from bnnflow.host.backend_rtl import RtlBackend
from bnnflow.testing import random_artifact, random_layers
from bnnflow.writer import write_artifact

FEATURES, BITS, CLASSES = 64, 5, 10
SETTINGS = settings(derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("host_errors") / "export"
    random_artifact(root, seed=21, hidden=(16,), n_vectors=4, generate=())
    return root


@pytest.fixture(scope="module")
def golden(export_dir):
    return BnnDriver(export_dir, backend="golden")


@pytest.fixture(scope="module")
def board_sim(export_dir):
    pytest.importorskip("pynq")
    return BnnDriver(export_dir, backend="board-sim", max_batch=3)


@pytest.fixture(scope="module")
def image_shaped(tmp_path_factory):
    """A network whose manifest says the input is an 8x8 image."""
    root = tmp_path_factory.mktemp("host_errors8x8") / "export"
    layers = random_layers(np.random.default_rng(4), FEATURES, [16], CLASSES, BITS)
    folding = default_folding([l.shape for l in layers])
    network = {"name": "img", "input_features": FEATURES, "input_shape": [8, 8], "input_bits": BITS,
               "num_classes": CLASSES, "method": "random", "dataset": "random"}
    write_artifact(root, network, layers, folding, generate=())
    return BnnDriver(root, backend="golden")


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << BITS, size=(n, FEATURES), dtype=np.uint8)


def raises_naming(fn, *words, error=(ValueError, TypeError)):
    with pytest.raises(error) as info:
        fn()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    return info.value


# -- options ------------------------------------------------------------------------------------

def test_max_batch_minus_one_is_refused_not_zeros(export_dir):
    """The issue's case: board-sim with max_batch=-1 returned all-zero scores."""
    pytest.importorskip("pynq")
    for value, error in ((-1, ValueError), (0, ValueError), (2.5, TypeError), ("4", TypeError), (True, TypeError)):
        raises_naming(lambda: BnnDriver(export_dir, backend="board-sim", max_batch=value),
                      "max_batch", repr(value) if isinstance(value, str) else str(value), "positive integer",
                      error=error)
    driver = BnnDriver(export_dir, backend="board-sim", max_batch=np.int64(2))  # numpy integers are integers
    x = images(5, seed=1)
    np.testing.assert_array_equal(driver.scores(x), GoldenModel(driver.artifact).scores(x))
    assert driver.last_timing.details["transfers"] == 3


SIM_BAD = [
    ("max_batch", -3, ValueError, "positive integer"),
    ("max_batch", 1.0, TypeError, "positive integer"),
    ("timeout_s", 0, ValueError, "> 0"),
    ("timeout_s", -1.5, ValueError, "> 0"),
    ("timeout_s", math.inf, ValueError, "finite"),
    ("timeout_s", math.nan, ValueError, "finite"),
    ("timeout_s", "10", TypeError, "number"),
    ("timeout_s", False, TypeError, "number"),
    ("dma_data_width", 48, ValueError, "32, 64, 128"),
    ("dma_data_width", "64", TypeError, "32, 64, 128"),
    ("dma_data_width", None, TypeError, "32, 64, 128"),
    ("length_width", 7, ValueError, "8..26"),
    ("length_width", 27, ValueError, "8..26"),
    ("length_width", 26.0, TypeError, "8..26"),
    ("engine", "golden", TypeError, "callable"),
    ("accel_name", "", ValueError, "non-empty"),
    ("accel_name", 3, TypeError, "string"),
    ("dma_name", 0, TypeError, "string"),
    ("dma_name", None, TypeError, "string"),
]


@pytest.mark.parametrize("option, value, error, expected", SIM_BAD)
def test_board_sim_option_values(export_dir, option, value, error, expected):
    pytest.importorskip("pynq")
    raises_naming(lambda: BnnDriver(export_dir, backend="board-sim", **{option: value}),
                  f"option {option}=", expected, error=error)


@pytest.mark.parametrize("option, value, error, expected", [
    ("max_batch", -1, ValueError, "positive integer"),
    ("timeout_s", -1, ValueError, "> 0"),
    ("bitfile", 3, TypeError, "file path"),
    ("bitfile", "", ValueError, "file path"),
    ("overlay", "bnnflow.bit", TypeError, "pynq.Overlay"),
    ("accel_name", "  ", ValueError, "non-empty"),
    ("accel_name", b"bnnflow_top_0", TypeError, "string"),
])
def test_board_option_values_fail_before_the_board_probe(export_dir, option, value, error, expected):
    """No board here: a bad value is still named (it is checked before pynq is touched)."""
    err = raises_naming(lambda: BnnDriver(export_dir, backend="board", **{option: value}),
                        f"option {option}=", expected, error=error)
    assert not isinstance(err, BoardNotFoundError)


@pytest.mark.parametrize("backend", ["board", "board-sim", "golden", "rtl"])
@pytest.mark.parametrize("option", ["in_word_bytes", "out_word_bytes"])
def test_removed_layout_options_say_why(export_dir, backend, option):
    """The stream layout is the accelerator interface's (docs/ACCEL.md): the old layout options are refused."""
    raises_naming(lambda: BnnDriver(export_dir, backend=backend, **{option: 8}),
                  f"unknown option {option!r} for backend {backend!r}: it was removed, the stream layout is fixed "
                  "by the accelerator interface (docs/ACCEL.md)", error=TypeError)


def test_board_bitfile_and_overlay_together(export_dir):
    pytest.importorskip("pynq")
    from bnnflow.host.simdevice import SimDevice, SimOverlay

    overlay = SimOverlay(SimDevice(art.load(export_dir)))
    raises_naming(lambda: BnnDriver(export_dir, backend="board", bitfile="x.bit", overlay=overlay),
                  "bitfile", "overlay", "one of them", error=ValueError)
    # board still says there is no board when the options are fine
    with pytest.raises(BoardNotFoundError, match="no PYNQ board found"):
        BnnDriver(export_dir, backend="board", max_batch=4, timeout_s=1)


@pytest.mark.parametrize("option, value, error, expected", [
    ("sim", "xsim", ValueError, "verilator, icarus"),
    ("sim", None, TypeError, "verilator, icarus"),
    ("check", "yes", TypeError, "True or False"),
    ("check", 1, TypeError, "True or False"),
    ("seed", -1, ValueError, "0..4294967295"),
    ("seed", 1.5, TypeError, "integer"),
    ("idle", 1.0, ValueError, "[0, 1)"),
    ("idle", -0.1, ValueError, "[0, 1)"),
    ("backpressure", math.nan, ValueError, "[0, 1)"),
    ("backpressure", "0.3", TypeError, "[0, 1)"),
    ("timing_vectors", -1, ValueError, ">= 0"),
    ("timing_vectors", 2.0, TypeError, "integer"),
])
def test_rtl_option_values(export_dir, monkeypatch, option, value, error, expected):
    """Checked before the simulation flow is loaded: the same error with or without simulators."""
    monkeypatch.setitem(sys.modules, "bnnflow.sim.network", None)
    raises_naming(lambda: BnnDriver(export_dir, backend="rtl", **{option: value}), option, expected, error=error)


def test_rtl_options_are_run_networks_and_canonical(export_dir, monkeypatch):
    network = pytest.importorskip("bnnflow.sim.network")
    keyword_only = [p.name for p in inspect.signature(network.run_network).parameters.values()
                    if p.kind == p.KEYWORD_ONLY]
    assert set(RtlBackend.OPTIONS) == {"sim", "engine", *keyword_only}  # engine: bulk or cocotb (run_network)
    calls = []
    fake = types.ModuleType("bnnflow.sim.network")
    fake.run_network = lambda a, batch, sim, **o: calls.append(o) or types.SimpleNamespace(
        scores=GoldenModel(a).scores(batch), cycles_per_image=1.0, model_cycles=1)
    monkeypatch.setitem(sys.modules, "bnnflow.sim.network", fake)
    driver = BnnDriver(export_dir, backend="rtl", engine="cocotb", check=np.bool_(True), seed=np.int32(3), idle=0.25)
    driver.scores(images(2))
    assert calls == [{"check": True, "seed": 3, "idle": 0.25}]
    assert [type(v) for v in calls[0].values()] == [bool, int, float]  # JSON-safe for the testbench config


@pytest.mark.parametrize("backend, accepted", [
    ("golden", ()), ("rtl", RtlBackend.OPTIONS), ("board", BOARD_OPTIONS), ("board-sim", SIM_OPTIONS)])
def test_unknown_options_are_named_with_the_accepted_ones(export_dir, backend, accepted):
    err = raises_naming(lambda: BnnDriver(export_dir, backend=backend, max_batchs=4),
                        "'max_batchs'", f"backend {backend!r}", error=TypeError)
    for name in accepted:
        assert name in str(err)
    if not accepted:
        assert "no options" in str(err)


def test_board_sim_without_pynq_is_clear(export_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynq", None)
    monkeypatch.delitem(sys.modules, "bnnflow.host.simdevice", raising=False)
    with pytest.raises(BoardNotFoundError, match="needs pynq"):
        BnnDriver(export_dir, backend="board-sim")
    with pytest.raises(TypeError, match="unknown option 'bitfile' for backend 'board-sim'"):
        BnnDriver(export_dir, backend="board-sim", bitfile="x.bit")  # names are checked without pynq


def test_unknown_backend_and_export_dir_type(export_dir):
    raises_naming(lambda: BnnDriver(export_dir, backend="fpga"), "'fpga'", "golden, rtl, board, board-sim",
                  error=ValueError)
    raises_naming(lambda: BnnDriver(export_dir, backend=None), "None", "golden, rtl", error=ValueError)
    raises_naming(lambda: BnnDriver(42), "export_dir=42", "str or Path", error=TypeError)


def test_input_bits_above_8_is_refused_not_wrapped(export_dir, tmp_path):
    """An artifact claiming 9-bit inputs: the uint8 batch would wrap values mod 256."""
    a = art.load(export_dir)
    a.network["input_bits"] = 9
    if a.input_bits != 9:
        pytest.skip("Artifact.input_bits is not read from network")
    raises_naming(lambda: BnnDriver(a), "input_bits is 9", "1..8", error=art.ArtifactError)


def test_check_vectors_limit(golden):
    raises_naming(lambda: golden.check_vectors(limit=-1), "limit=-1", "positive integer", error=ValueError)
    raises_naming(lambda: golden.check_vectors(limit=0), "limit=0", error=ValueError)
    raises_naming(lambda: golden.check_vectors(limit="2"), "limit='2'", error=TypeError)
    assert golden.check_vectors(limit=2)["images"] == 2


# -- results are fully written or the call fails ----------------------------------------------------

def test_board_result_is_never_partial(board_sim):
    backend = board_sim.backend
    x = images(7, seed=2)
    old = backend.images_per_transfer
    try:
        backend.images_per_transfer = 0  # a chunking bug: the loop would never run
        raises_naming(lambda: board_sim.scores(x), "images_per_transfer", error=RuntimeError)
    finally:
        backend.images_per_transfer = old
    real = backend._unpack
    try:
        backend._unpack = lambda n, slot: real(n, slot)[:-1]  # a chunk comes back one image short
        raises_naming(lambda: board_sim.scores(x), "shape", error=BoardError)
    finally:
        backend._unpack = real
    np.testing.assert_array_equal(board_sim.scores(x), GoldenModel(board_sim.artifact).scores(x))


def test_driver_refuses_a_backend_result_of_the_wrong_shape_or_type(export_dir, monkeypatch):
    driver = BnnDriver(export_dir, backend="golden")
    model = driver.backend.model
    real = model.scores
    monkeypatch.setattr(model, "scores", lambda x: real(x)[:-1])
    raises_naming(lambda: driver.scores(images(3)), "shape (2, 10)", "(3, 10)", error=RuntimeError)
    monkeypatch.setattr(model, "scores", lambda x: real(x).astype(float))
    raises_naming(lambda: driver.classify(images(3)), "float64", error=RuntimeError)


# -- inputs ---------------------------------------------------------------------------------------

BAD_INPUTS = [
    ("wrong features", np.zeros((2, 63), np.uint8), ValueError, ["(N, 64)", "(2, 63)"]),
    ("one image", np.zeros(64, np.uint8), ValueError, ["(N, 64)", "images[None]"]),
    ("3-d", np.zeros((2, 8, 8), np.uint8), ValueError, ["(N, 64)", "(2, 8, 8)"]),
    ("scalar", 7, ValueError, ["(N, 64)", "()"]),
    ("empty list", [], ValueError, ["(N, 64)", "(0,)", "np.zeros((0, 64)"]),
    ("ragged list", [[0] * 64, [0] * 63], ValueError, ["images", "(N, 64)"]),
    ("too large", np.full((2, 64), 32, np.uint8), ValueError, ["5-bit", "0..31", "images[0, 0] = 32"]),
    ("negative", np.full((2, 64), -1, np.int8), ValueError, ["5-bit", "-1"]),
    ("wraps mod 256", np.full((1, 64), 257, np.int64), ValueError, ["0..31", "257"]),
    ("bool", np.ones((2, 64), bool), TypeError, ["images", "bool", "astype(np.uint8)"]),
    ("float non-integer", np.full((2, 64), 0.5), TypeError, ["images", "float64", "non-integer", "0.5"]),
    ("float whole", np.full((2, 64), 3.0, np.float32), TypeError, ["images", "float32", "astype(np.uint8)"]),
    ("float nan", np.full((2, 64), np.nan), TypeError, ["images", "float64", "nan"]),
    ("float inf", np.full((2, 64), -np.inf, np.float16), TypeError, ["images", "float16", "-inf"]),
    ("complex", np.ones((2, 64), complex), TypeError, ["images", "complex128"]),
    ("object", np.ones((2, 64), object), TypeError, ["images", "dtype object"]),
    ("strings", np.full((2, 64), "1"), TypeError, ["images", "<U1"]),
    ("None", None, TypeError, ["images", "NoneType"]),
    ("dict", {"images": 1}, TypeError, ["images", "dict"]),
    ("masked", np.ma.masked_array(np.zeros((2, 64), np.uint8), mask=True), TypeError, ["images", "masked"]),
    ("datetime", np.zeros((2, 64), "datetime64[s]"), TypeError, ["images", "datetime64"]),
]


@pytest.mark.parametrize("what, bad, error, words", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
@pytest.mark.parametrize("backend", ["golden", "board-sim"])
def test_bad_inputs(request, backend, what, bad, error, words):
    driver = request.getfixturevalue("golden" if backend == "golden" else "board_sim")
    driver.last_timing = None
    raises_naming(lambda: driver.classify(bad), *words, error=error)
    raises_naming(lambda: driver.scores(bad), *words, error=error)
    assert driver.last_timing is None  # nothing ran


def test_image_shaped_errors_point_into_the_given_shape(image_shaped):
    x = np.zeros((2, 8, 8), np.uint8)
    x[1, 3, 5] = 40
    raises_naming(lambda: image_shaped.classify(x), "images[1, 3, 5] = 40", error=ValueError)
    raises_naming(lambda: image_shaped.classify(np.zeros((2, 8, 7), np.uint8)), "(N, 64) or (N, 8, 8)",
                  "(2, 8, 7)", error=ValueError)
    y = np.zeros((1, 8, 8))
    y[0, 2, 1] = 0.25
    raises_naming(lambda: image_shaped.classify(y), "0.25", "images[0, 2, 1]", error=TypeError)
    assert image_shaped.classify(np.zeros((0, 8, 8), np.uint8)).shape == (0,)


@pytest.mark.parametrize("backend", ["golden", "board-sim"])
def test_empty_batch_gives_empty_results(request, backend):
    driver = request.getfixturevalue("golden" if backend == "golden" else "board_sim")
    empty = np.zeros((0, FEATURES), np.uint8)
    labels, scores = driver.classify(empty), driver.scores(empty)
    assert labels.shape == (0,) and labels.dtype == np.int64
    assert scores.shape == (0, CLASSES) and scores.dtype == np.int64
    assert driver.last_timing.images == 0


@pytest.mark.parametrize("backend", ["golden", "board-sim"])
def test_any_layout_and_integer_dtype_gives_the_same_result(request, backend):
    driver = request.getfixturevalue("golden" if backend == "golden" else "board_sim")
    x = images(5, seed=3)
    expected = GoldenModel(driver.artifact).scores(x)
    wide = np.zeros((5, 2 * FEATURES), np.int32)
    wide[:, ::2] = x
    for variant in (wide[:, ::2], np.asfortranarray(x), x[::-1][::-1], x.astype(">u2"), x.astype(np.int64),
                    x.tolist(), [tuple(row) for row in x]):
        np.testing.assert_array_equal(driver.scores(variant), expected)


# -- property tests: random invalid values never give a result ------------------------------------

_JUNK = st.one_of(st.none(), st.booleans(), st.text(max_size=4), st.lists(st.integers(), max_size=2),
                  st.floats(allow_nan=True, allow_infinity=True), st.complex_numbers(max_magnitude=10))


def _invalid(option: str) -> st.SearchStrategy:
    """Values of the wrong type or range for a board-sim option."""
    if option == "max_batch":
        return st.one_of(st.integers(max_value=0), _JUNK.filter(lambda v: v is not None))
    if option == "timeout_s":
        return st.one_of(st.floats(max_value=0), st.just(math.inf), st.just(math.nan), st.none(), st.booleans(),
                         st.text(max_size=3))
    if option == "dma_data_width":
        return st.one_of(st.integers().filter(lambda v: v not in (32, 64, 128, 256, 512, 1024)), _JUNK)
    if option == "length_width":
        return st.one_of(st.integers(max_value=7), st.integers(min_value=27), _JUNK)
    if option == "engine":
        return _JUNK.filter(lambda v: v is not None and v != "rtl")  # "rtl": the co-simulated accelerator
    names = _JUNK.filter(lambda v: not isinstance(v, str) and (v is not None or option == "dma_name"))
    return st.one_of(st.just(""), st.just("  "), names)  # IP names (accel_name None: found by its VLNV)


@settings(SETTINGS, max_examples=60)
@given(data=st.data())
def test_property_invalid_board_sim_options_are_named(export_dir, data):
    pytest.importorskip("pynq")
    option = data.draw(st.sampled_from(SIM_OPTIONS), label="option")
    value = data.draw(_invalid(option), label="value")
    with pytest.raises((ValueError, TypeError)) as info:
        BnnDriver(export_dir, backend="board-sim", **{option: value})
    assert f"{option}=" in str(info.value)


_ident = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)


@settings(SETTINGS, max_examples=30)
@given(backend=st.sampled_from(["golden", "rtl", "board", "board-sim"]), name=_ident, value=_JUNK)
def test_property_unknown_options_are_named(export_dir, backend, name, value):
    accepted = {"golden": (), "rtl": RtlBackend.OPTIONS, "board": BOARD_OPTIONS, "board-sim": SIM_OPTIONS}[backend]
    assume(name not in accepted)
    with pytest.raises(TypeError) as info:
        BnnDriver(export_dir, backend=backend, **{name: value})
    assert repr(name) in str(info.value) and "unknown option" in str(info.value)


def _wrong_shape(shape: tuple[int, ...]) -> bool:
    return not (len(shape) == 2 and shape[1] == FEATURES)


def _with(n: int, dtype, i: int, j: int, bad: int) -> np.ndarray:
    """A valid batch of ``n`` images with one entry set to ``bad`` (made to fit ``dtype``'s range)."""
    x = images(n, seed=n + j).astype(dtype)
    info = np.iinfo(dtype)
    if bad < info.min or bad > info.max:  # e.g. -1 for uint8: take the dtype's largest value (> 31)
        bad = int(info.max)
    x[i % n, j] = bad
    return x


_bad_batches = st.one_of(
    # integers, wrong shape
    hnp.arrays(np.uint8, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=70).filter(_wrong_shape),
               elements=st.integers(0, 31)).map(lambda a: ("shape", a)),
    # right shape, one value out of 0..31 somewhere
    st.builds(lambda n, dtype, i, j, bad: ("range", _with(n, dtype, i, j, bad)),
              st.integers(1, 3), st.sampled_from([np.int8, np.int16, np.int64, np.uint8, np.uint16, np.uint64]),
              st.integers(0, 2), st.integers(0, FEATURES - 1), st.integers(-(1 << 7), (1 << 8) - 1)
              .filter(lambda v: not 0 <= v <= 31)),
    # right shape, float / complex / bool dtypes with any values
    st.tuples(st.integers(0, 3), st.sampled_from([np.float16, np.float32, np.float64, np.complex64, np.bool_])
              ).flatmap(lambda nd: hnp.arrays(nd[1], (nd[0], FEATURES))).map(lambda a: ("dtype", a)),
)


@settings(SETTINGS, max_examples=80)
@given(case=_bad_batches, on_board=st.booleans())
def test_property_invalid_images_are_named(golden, board_sim, case, on_board):
    kind, batch = case
    driver = board_sim if on_board else golden
    with pytest.raises((ValueError, TypeError)) as info:
        driver.scores(batch)
    message = str(info.value)
    assert message.startswith("images")
    if kind == "shape":
        assert isinstance(info.value, ValueError) and str(batch.shape) in message
    elif kind == "range":
        assert isinstance(info.value, ValueError) and "0..31" in message and "first out of range" in message
    else:
        assert isinstance(info.value, TypeError) and str(batch.dtype) in message


@settings(SETTINGS, max_examples=12)
@given(n=st.integers(0, 9), max_batch=st.none() | st.integers(1, 10), length_width=st.integers(8, 26),
       seed=st.integers(0, 2**16), layout=st.sampled_from(["c", "f", "strided", "list"]))
def test_property_valid_options_and_batches_equal_golden(export_dir, n, max_batch, length_width, seed, layout):
    """The other side: valid option values and batches always give exactly the golden scores."""
    pytest.importorskip("pynq")
    x = images(n, seed=seed)
    given_x = {"c": x, "f": np.asfortranarray(x), "strided": np.repeat(x, 2, axis=0)[::2], "list": x.tolist()}[layout]
    if layout == "list" and n == 0:
        given_x = x  # [] has no feature axis: an empty batch is an array of shape (0, 64)
    driver = BnnDriver(export_dir, backend="board-sim", max_batch=max_batch, length_width=length_width)
    scores = driver.scores(given_x)
    np.testing.assert_array_equal(scores, GoldenModel(driver.artifact).scores(x).reshape(n, CLASSES))
    per = driver.backend.images_per_transfer
    assert driver.last_timing.details["transfers"] == -(-n // per)
