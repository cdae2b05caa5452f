"""Every mistake a user can make on the command line ends as one line naming the cause (issue 12).

Usage errors (argparse) exit 2 with ``bnnflow CMD: error: argument --OPT: ...``; errors while a
command runs return 2 with ``bnnflow CMD: error: ...`` naming the file, field, option or value;
``--debug`` / BNNFLOW_DEBUG=1 re-raise to show the traceback.
"""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnnflow.cli import main
from bnnflow.datasets import DatasetError, load_digits_dataset
from bnnflow.model.train import RunError, load_run, train

from conftest import assert_one_line, run_cli, write_idx




def make_idx(root, train_labels, test_labels, shape=(6, 6), seed=0):
    """A tiny IDX dataset whose class c lights pixel block c (learnable), with the given labels."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, labels in (("train", train_labels), ("t10k", test_labels)):
        labels = np.asarray(labels)
        images = rng.integers(0, 40, size=(len(labels), *shape))
        for i, c in enumerate(labels):
            images[i].flat[int(c) % images[i].size] = 255
        write_idx(root / f"{prefix}-images-idx3-ubyte", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels)
    return root


TRAIN = ["--epochs", "1", "--hidden", "8", "--quiet"]


# --------------------------------------------------------------------------- usage errors (argparse)

@pytest.mark.parametrize("argv,needles", [
    (["train", "--epochs", "0"], ["--epochs", "positive integer", "'0'"]),
    (["train", "--epochs", "-1"], ["--epochs", "'-1'"]),
    (["train", "--epochs", "2.5"], ["--epochs", "integer", "'2.5'"]),
    (["train", "--batch-size", "-8"], ["--batch-size", "'-8'"]),
    (["train", "--batch-size", "0"], ["--batch-size", "'0'"]),
    (["train", "--batch-size", "1"], ["--batch-size", ">= 2", "'1'"]),
    (["train", "--lr", "0"], ["--lr", "positive", "'0'"]),
    (["train", "--lr", "nan"], ["--lr", "'nan'"]),
    (["train", "--lr", "inf"], ["--lr", "'inf'"]),
    (["train", "--lr=-0.1"], ["--lr", "'-0.1'"]),
    (["train", "--lr", "fast"], ["--lr", "number", "'fast'"]),
    (["train", "--seed", "-1"], ["--seed", "'-1'"]),
    (["train", "--seed", str(2**32)], ["--seed", "4294967295"]),
    (["train", "--split-seed", "-1"], ["--split-seed", "'-1'"]),
    (["train", "--num-classes", "1"], ["--num-classes", "at least 2", "'1'"]),
    (["train", "--num-classes", "0"], ["--num-classes", "'0'"]),
    (["train", "--wbits", "two"], ["--wbits", "'two'"]),
    (["train", "--hidden", "0"], ["--hidden", "'0'"]),
    (["train", "--arch", ""], ["--arch", "empty"]),
    (["train", "--dataset", ""], ["--dataset", "empty"]),
    (["train", "--method", "bnn2"], ["--method", "'bnn2'"]),
    (["train", "--epochs"], ["--epochs", "expected one argument"]),
    (["train", "--epoch-count", "3"], ["unrecognized arguments", "--epoch-count"]),
    (["verify", "RUN", "--limit", "0"], ["--limit", "positive integer", "'0'"]),
    (["verify", "RUN", "--limit", "-1"], ["--limit", "'-1'"]),
    (["verify", "RUN", "--sim", "modelsim"], ["--sim", "'modelsim'"]),
    (["verify", ""], ["run", "empty"]),
    (["export", "RUN", "--generate", "vhdl"], ["--generate", "'vhdl'"]),
    (["export", "RUN", "--out", ""], ["--out", "empty"]),
    (["plot"], ["run"]),
    ([], ["COMMAND"]),
    (["deploy"], ["invalid choice", "'deploy'"]),
])
def test_usage_errors_are_one_line(capsys, tmp_path, argv, needles):
    if argv[:1] == ["train"]:
        argv = argv + ["--out", str(tmp_path / "run")]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert_one_line(err, *needles)
    assert not (tmp_path / "run").exists()


def test_train_requires_out(capsys):
    code, _, err = run_cli(capsys, "train")
    assert code == 2
    assert_one_line(err, "--out")


def _valid(option, text):
    """Whether ``text`` is a valid value of ``option`` (what the CLI must accept)."""
    try:
        value = float(text) if option == "--lr" else int(text)
    except (ValueError, OverflowError):
        return False
    if option == "--lr":
        return math.isfinite(value) and value > 0
    low = {"--batch-size": 2, "--num-classes": 2, "--seed": 0, "--split-seed": 0}.get(option, 1)
    return value >= low and (option not in ("--seed", "--split-seed") or value < 2**32)


OPTIONS = ["--epochs", "--batch-size", "--lr", "--seed", "--split-seed", "--num-classes", "--limit"]
VALUES = st.one_of(
    st.integers(min_value=-(2**40), max_value=1).map(str),
    st.integers(min_value=2**32, max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "-inf", "1e309", "0x10", "1,5", "3 epochs", "\n", "١٢"]),
    st.text(min_size=1, max_size=8),
)


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(option=st.sampled_from(OPTIONS), text=VALUES)
def test_invalid_numeric_options_exit_with_one_line(option, text):
    """Property: each invalid value of a numeric option exits 2 with one line on stderr, no traceback."""
    import contextlib
    import io

    if _valid(option, text):
        return
    argv = (["verify", "RUN"] if option == "--limit" else ["train", "--out", "never-written"]) + [f"{option}={text}"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    assert code == 2, (argv, err.getvalue())
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err.getvalue(), (argv, err.getvalue())
    assert lines[0].startswith("bnnflow ") and option in lines[0], (argv, lines)


# --------------------------------------------------------------------------- verify options

def test_verify_against_empty_or_unknown_level(digits_run, capsys):
    for against, needle in (("", "names no level"), (" , ", "names no level"), ("golden,fpga", "'fpga'")):
        code, out, err = run_cli(capsys, "verify", digits_run, "--against", against)
        assert code == 2 and "PASS" not in out
        assert_one_line(err, "--against" if "no level" in needle else "unknown level", needle)


def test_verify_library_checks_limit_and_levels(digits_run):
    from bnnflow.verify import verify_run

    for limit in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="--limit must be a positive integer"):
            verify_run(digits_run, ["golden"], limit=limit)
    with pytest.raises(ValueError, match="names no level"):
        verify_run(digits_run, [])


def test_verify_without_export_or_run(digits_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "verify", tmp_path / "nothing")
    assert code == 2
    assert_one_line(err, "nothing/config.json", "not a training run")
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    shutil.rmtree(run / "export", ignore_errors=True)
    code, _, err = run_cli(capsys, "verify", run)
    assert code == 2
    assert_one_line(err, "export/manifest.json", "bnnflow export")


# --------------------------------------------------------------------------- training that trains nothing

@pytest.fixture(scope="module")
def small_digits():
    ds = load_digits_dataset(0)
    return ds


def _config(**changes):
    cfg = {"method": "bnn", "arch": "mlp", "hidden": [8], "dataset": "digits", "split_seed": 0, "seed": 0,
           "epochs": 1, "batch_size": 64, "input_features": 64, "input_shape": [8, 8], "input_bits": 5,
           "num_classes": 10}
    cfg.update(changes)
    return cfg


@pytest.mark.parametrize("changes,message", [
    ({"epochs": 0}, "--epochs must be a positive integer, got 0"),
    ({"epochs": -1}, "--epochs must be a positive integer, got -1"),
    ({"epochs": 2.0}, "--epochs must be a positive integer, got 2.0"),
    ({"batch_size": -8}, "--batch-size must be an integer >= 2"),
    ({"batch_size": 0}, "--batch-size must be an integer >= 2"),
    ({"batch_size": 1}, "--batch-size must be an integer >= 2"),
    ({"batch_size": 5000}, "--batch-size 5000 is larger than the training set (1437 images)"),
    ({"seed": -1}, "--seed must be an integer"),
    ({"lr": float("nan")}, "--lr must be a positive finite number"),
    ({"lr": float("inf")}, "--lr must be a positive finite number"),
    ({"lr": -1.0}, "--lr must be a positive finite number"),
    ({"input_features": 63}, "images have 64 values but the config's input_features is 63"),
    ({"num_classes": 12}, "config num_classes 12 but the training labels give 10 classes"),
])
def test_library_train_refuses_settings_that_train_nothing(small_digits, tmp_path, changes, message):
    with pytest.raises(ValueError) as exc:
        train(_config(**changes), small_digits, tmp_path / "run", progress=False)
    assert message in str(exc.value)
    assert not (tmp_path / "run").exists()


def test_batch_size_larger_than_training_set_cli(idx_dir, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--dataset", f"idx:{idx_dir}", "--batch-size", "401",
                           "--out", tmp_path / "run", *TRAIN)
    assert code == 2
    assert_one_line(err, "--batch-size 401", "400 images")
    assert not (tmp_path / "run").exists()


def test_out_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "file", *TRAIN)
    assert code == 2
    assert_one_line(err, "--out", "file", "not a folder")


# --------------------------------------------------------------------------- labels and classes

def test_out_of_range_train_label_names_label_and_file(tmp_path, capsys):
    labels = np.tile(np.arange(4), 10)
    labels[17] = 200
    data = make_idx(tmp_path / "d", labels, np.tile(np.arange(4), 5))
    code, _, err = run_cli(capsys, "train", "--dataset", f"idx:{data}", "--out", tmp_path / "run", *TRAIN)
    assert code == 2
    assert_one_line(err, data / "train-labels-idx1-ubyte", "largest label is 200 (index 17)", "4..199",
                    "--num-classes")
    assert not (tmp_path / "run").exists()


def test_test_label_never_seen_in_training(tmp_path, capsys):
    test = np.tile(np.arange(4), 5)
    test[6] = 4
    data = make_idx(tmp_path / "d", np.tile(np.arange(4), 10), test)
    code, _, err = run_cli(capsys, "train", "--dataset", f"idx:{data}", "--out", tmp_path / "run", *TRAIN)
    assert code == 2
    assert_one_line(err, data / "t10k-labels-idx1-ubyte", "label 4 at index 6", "never occurs in the training set")


def test_num_classes_allows_classes_absent_from_training(tmp_path, capsys):
    """--num-classes 6: class 2 absent from training, a test label 5: trains a 6-class net that exports."""
    train_labels = np.tile([0, 1, 3, 4], 10)
    test = np.tile([0, 1, 3, 4], 5)
    test[3] = 5
    data = make_idx(tmp_path / "d", train_labels, test)
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--dataset", f"idx:{data}", "--num-classes", "6", "--out", run, *TRAIN)
    assert code == 0, err
    assert "6 classes" in out
    assert json.loads((run / "config.json").read_text())["num_classes"] == 6
    assert run_cli(capsys, "export", run, "--generate", "rtl")[0] == 0
    code, out, err = run_cli(capsys, "verify", run)
    assert code == 0 and "PASS" in out, out + err
    # a label beyond the declared count
    code, _, err = run_cli(capsys, "train", "--dataset", f"idx:{data}", "--num-classes", "5",
                           "--out", tmp_path / "r2", *TRAIN)
    assert code == 2
    assert_one_line(err, data / "t10k-labels-idx1-ubyte", "label 5 at index 3", "--num-classes 5", "0..4")


@pytest.mark.parametrize("extra", [[], ["--num-classes", "3"]])
def test_one_class_dataset_is_refused(tmp_path, capsys, extra):
    data = make_idx(tmp_path / "d", np.zeros(40, dtype=int), np.zeros(10, dtype=int))
    code, _, err = run_cli(capsys, "train", "--dataset", f"idx:{data}", "--out", tmp_path / "run", *TRAIN, *extra)
    assert code == 2
    assert_one_line(err, data / "train-labels-idx1-ubyte", "one-class")


def test_negative_label(tmp_path, capsys):
    data = make_idx(tmp_path / "d", np.tile(np.arange(4), 10), np.tile(np.arange(4), 5))
    labels = np.tile(np.arange(4), 10).astype(np.int8)
    labels[5] = -3
    path = data / "train-labels-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 0x09, 1]) + len(labels).to_bytes(4, "big") + labels.tobytes())
    code, _, err = run_cli(capsys, "train", "--dataset", f"idx:{data}", "--out", tmp_path / "run", *TRAIN)
    assert code == 2
    assert_one_line(err, path, "label -3 at index 5", "0..C-1")


@pytest.mark.parametrize("name,content,needles", [
    ("train-images-idx3-ubyte", b"", ["empty file"]),
    ("train-images-idx3-ubyte", b"\x1f\x8b\x08\x00garbage", ["not an IDX file", "bad magic"]),
    ("train-labels-idx1-ubyte", b"\x00\x00\x08\x01\x00\x00", ["truncated header"]),
    ("train-labels-idx1-ubyte", b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", ["unknown IDX element type 0x07"]),
    ("train-labels-idx1-ubyte", b"\x00\x00\x0d\x01\x00\x00\x00\x28" + b"\x00" * 160, ["labels must be integers",
                                                                                      "float32"]),
    ("train-labels-idx1-ubyte", b"\x00\x00\x0c\x01\x00\x00\x00\x28" + b"\x00" * 158, ["not a whole number",
                                                                                      "4-byte"]),
    ("train-labels-idx1-ubyte", b"\x00\x00\x08\x01\x00\x00\x00\x27" + bytes(39), ["40 images", "39 labels"]),
    ("train-labels-idx1-ubyte", b"\x00\x00\x08\x02\x00\x00\x00\x28\x00\x00\x00\x01" + bytes(40),
     ["one label per image"]),
    ("train-images-idx3-ubyte", b"\x00\x00\x08\x03" + bytes(8) + b"\x00\x00\x00\x06", ["holds 0 images"]),
    ("train-images-idx3-ubyte", b"\x00\x00\x08\x01\x00\x00\x00\x28" + bytes(40), ["expected images"]),
    ("train-images-idx3-ubyte", b"\x00\x00\x0b\x03\x00\x00\x00\x28\x00\x00\x00\x06\x00\x00\x00\x06" + bytes(2880),
     ["unsigned bytes", "int16"]),
])
def test_malformed_idx_files_name_file_and_cause(tmp_path, capsys, name, content, needles):
    data = make_idx(tmp_path / "d", np.tile(np.arange(4), 10), np.tile(np.arange(4), 5))
    (data / name).write_bytes(content)
    code, _, err = run_cli(capsys, "train", "--dataset", f"idx:{data}", "--out", tmp_path / "run", *TRAIN)
    assert code == 2
    assert_one_line(err, data, *needles)
    assert not (tmp_path / "run").exists()


def test_corrupt_gzip_idx(tmp_path, capsys):
    data = make_idx(tmp_path / "d", np.tile(np.arange(4), 10), np.tile(np.arange(4), 5))
    (data / "t10k-labels-idx1-ubyte").unlink()
    (data / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xffgarbage")
    code, _, err = run_cli(capsys, "train", "--dataset", f"idx:{data}", "--out", tmp_path / "run", *TRAIN)
    assert code == 2
    assert_one_line(err, data / "t10k-labels-idx1-ubyte.gz", "cannot read")


def test_missing_dataset_folder(tmp_path, capsys):
    for spec, needles in ((f"idx:{tmp_path / 'none'}", ["none", "no such directory"]),
                          ("idx:", ["idx:DIR"]), ("cifar10", ["unknown dataset 'cifar10'"])):
        code, _, err = run_cli(capsys, "train", "--dataset", spec, "--out", tmp_path / "run", *TRAIN)
        assert code == 2
        assert_one_line(err, *needles)


# --------------------------------------------------------------------------- run folders

def _broken_run(digits_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run, ignore=shutil.ignore_patterns("export"))
    return run


@pytest.mark.parametrize("config,needles", [
    ("{not json", ["config.json", "not valid JSON"]),
    ("[1, 2]", ["config.json", "expected a JSON object, got list"]),
    (None, ["config.json", "missing field 'method'"]),
    ({"num_classes": "ten"}, ["config.json", "field 'num_classes' is str 'ten'"]),
    ({"num_classes": 1}, ["config.json", "field 'num_classes' is 1"]),
    ({"input_bits": 9}, ["config.json", "field 'input_bits' is 9"]),
    ({"hidden": "64,32"}, ["config.json", "field 'hidden'"]),
    ({"input_shape": [9, 9]}, ["config.json", "field 'input_shape'"]),
    ({"method": "bnn2"}, ["config.json", "unknown method 'bnn2'"]),
    ({"lr": -1}, ["config.json", "--lr must be a positive finite number"]),
    ({"hidden": [64, 16]}, ["model.pt", "does not match the network of", "config.json", "wrong shape"]),
])
def test_invalid_run_config_names_file_and_field(digits_run, tmp_path, capsys, config, needles):
    run = _broken_run(digits_run, tmp_path)
    path = run / "config.json"
    if isinstance(config, str):
        path.write_text(config)
    else:
        data = json.loads(path.read_text())
        if config is None:
            del data["method"]
        else:
            data.update(config)
        path.write_text(json.dumps(data))
    with pytest.raises(RunError):
        load_run(run)
    for command in ("export", "verify"):
        code, _, err = run_cli(capsys, command, run)
        assert code == 2
        assert_one_line(err, str(run), *needles)


class _NotATensor:
    pass


@pytest.mark.parametrize("kind,needles", [
    ("missing", ["model.pt: missing"]),
    ("garbage", ["model.pt: not a bnnflow model file", "not a torch archive"]),
    ("truncated", ["model.pt: not a bnnflow model file"]),
    ("object", ["model.pt: not a bnnflow model file", "never unpickles"]),
    ("list", ["model.pt: not a bnnflow model file", "got list"]),
])
def test_bad_model_file_names_the_file(digits_run, tmp_path, capsys, kind, needles):
    run = _broken_run(digits_run, tmp_path)
    path = run / "model.pt"
    if kind == "missing":
        path.unlink()
    elif kind == "garbage":
        path.write_bytes(b"\x00garbage" * 10)
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "object":
        torch.save({"head.weight": _NotATensor()}, path)
    else:
        torch.save([torch.zeros(2)], path)
    code, _, err = run_cli(capsys, "export", run)
    assert code == 2
    assert_one_line(err, run / "model.pt", *needles)
    assert "weights_only" not in err


def test_model_file_holds_plain_tensors(digits_run):
    state = torch.load(digits_run / "model.pt", weights_only=True)
    assert type(state) is dict and all(isinstance(v, torch.Tensor) for v in state.values())


def test_plot_errors(digits_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "plot", tmp_path / "none")
    assert code == 2
    assert_one_line(err, "none/metrics.json", "not a training run")
    run = _broken_run(digits_run, tmp_path)
    code, _, err = run_cli(capsys, "plot", run, "--out", tmp_path / "curves.xyz")
    assert code == 2
    assert_one_line(err, "curves.xyz", "unknown image format '.xyz'")
    code, _, err = run_cli(capsys, "plot", run, "--out", tmp_path)
    assert code == 2
    assert_one_line(err, "--out", "is a folder")
    (run / "metrics.json").write_text('{"epochs": [{"epoch": 1}]}')
    code, _, err = run_cli(capsys, "plot", run)
    assert code == 2
    assert_one_line(err, "metrics.json", "epochs[0]", "'loss'")
    (run / "metrics.json").write_text("{")
    code, _, err = run_cli(capsys, "plot", run)
    assert code == 2
    assert_one_line(err, "metrics.json", "not valid JSON")


def test_export_errors(digits_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", digits_run, "--folding", tmp_path / "fold.json")
    assert code == 2
    assert_one_line(err, "fold.json", "not found")
    (tmp_path / "fold.json").write_text('{"layers": [{"pe": 0, "simd": 32}]}')
    code, _, err = run_cli(capsys, "export", digits_run, "--folding", tmp_path / "fold.json")
    assert code == 2
    assert_one_line(err, "fold.json")
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(capsys, "export", digits_run, "--out", tmp_path / "afile")
    assert code == 2
    assert_one_line(err, "--out", "afile", "not a folder")


# --------------------------------------------------------------------------- --debug and internal errors

def test_debug_flag_and_env_show_the_traceback(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nothing"
    code, _, err = run_cli(capsys, "export", missing)
    assert code == 2 and "Traceback" not in err
    with pytest.raises(FileNotFoundError, match="not a training run"):
        main(["--debug", "export", str(missing)])
    with pytest.raises(FileNotFoundError):
        main(["export", str(missing), "--debug"])
    monkeypatch.setenv("BNNFLOW_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(["export", str(missing)])
    monkeypatch.setenv("BNNFLOW_DEBUG", "0")
    assert main(["export", str(missing)]) == 2


def test_unexpected_exception_is_one_line_pointing_at_debug(monkeypatch, capsys):
    import bnnflow.verify

    def boom(*args, **kwargs):
        raise KeyError("layers")

    monkeypatch.setattr(bnnflow.verify, "verify_run", boom)
    code, _, err = run_cli(capsys, "verify", "RUN")
    assert code == 3
    assert_one_line(err, "internal error", "KeyError", "--debug")


def test_tool_log_comes_before_the_error_line(monkeypatch, capsys):
    import bnnflow.verify
    from bnnflow.hlsflow import HlsToolError

    def fail(*args, **kwargs):
        raise HlsToolError("C-simulation compile failed (exit 1):\nfoo.cpp:1: error: bad\nmore")

    monkeypatch.setattr(bnnflow.verify, "verify_run", fail)
    code, _, err = run_cli(capsys, "verify", "RUN")
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[:2] == ["foo.cpp:1: error: bad", "more"]
    assert lines[-1].startswith("bnnflow verify: error: C-simulation compile failed (exit 1)")


def test_dataset_error_is_a_value_error():
    assert issubclass(DatasetError, ValueError) and issubclass(RunError, ValueError)
