"""Training loop shared by every method: seeded, with a progress bar, writing a run folder.

A run folder holds ``config.json`` (everything needed to rebuild the model and
reload the data, method defaults filled in), ``model.pt`` (state dict) and
``metrics.json`` (per-epoch loss, train/test accuracy, learning rate and time;
final accuracies, and for BinaryConnect the accuracy with binary and with real
weights).
"""

from __future__ import annotations

import json
import math
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..jsonfile import read_json_object
from .layers import clip_weights
from .methods import resolve_config
from .networks import build_model, eval_modes, set_eval_weights
from .optim import get_loss, make_optimizer, make_scheduler


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def to_tensor(x: np.ndarray) -> torch.Tensor:
    """Unsigned integer pixels as float32 (exact: values < 2^24)."""
    return torch.from_numpy(np.asarray(x, dtype=np.float32))


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> float:
    """Accuracy of argmax(scores), ties to the lowest index (torch.argmax's rule)."""
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = model(to_tensor(x[start:start + batch_size]))
        correct += int((logits.argmax(dim=1).numpy() == y[start:start + batch_size]).sum())
    return correct / max(1, len(x))


def evaluate_modes(model: nn.Module, x: np.ndarray, y: np.ndarray, primary: str | None) -> dict[str, float]:
    """{mode: accuracy} for each extra evaluation mode (BinaryConnect binary/real weights); restores ``primary``."""
    out = {}
    modes = eval_modes(model)
    for mode in modes:
        set_eval_weights(model, mode)
        out[mode] = evaluate(model, x, y)
    if modes and primary:
        set_eval_weights(model, primary)
    return out


def primary_eval_mode(config: dict[str, Any]) -> str | None:
    """BinaryConnect: det nets are evaluated with binary weights, stoch nets with real ones (as the paper)."""
    if config["method"] != "binaryconnect":
        return None
    return "real" if config.get("variant") == "stoch" else "binary"


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


MAX_SEED = 2**32 - 1


def check_training_setup(config: dict[str, Any], dataset) -> None:
    """ValueError naming the option when ``config`` and ``dataset`` would not train a meaningful net."""
    from ..datasets import check_classes

    epochs, batch_size, seed = config.get("epochs"), config.get("batch_size"), config.get("seed", 0)
    x_tr, y_tr = np.asarray(dataset.x_train), np.asarray(dataset.y_train)
    x_te, y_te = np.asarray(dataset.x_test), np.asarray(dataset.y_test)
    name = getattr(dataset, "name", "dataset")
    if x_tr.ndim != 2 or len(x_tr) < 2:
        raise ValueError(f"{name}: the training set needs at least 2 images as rows of a 2-D array, "
                         f"got shape {x_tr.shape}")
    if not _is_int(epochs) or epochs < 1:
        raise ValueError(f"--epochs must be a positive integer, got {epochs!r}")
    if not _is_int(batch_size) or batch_size < 2:
        raise ValueError(f"--batch-size must be an integer >= 2 (BatchNorm needs two samples per batch), "
                         f"got {batch_size!r}")
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"--seed must be an integer 0..{MAX_SEED}, got {seed!r}")
    lr = config.get("lr")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"--lr must be a positive finite number, got {lr!r}")
    if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
        raise ValueError(f"{name}: {len(x_tr)} train images but {len(y_tr)} labels, "
                         f"{len(x_te)} test images but {len(y_te)} labels")
    if batch_size > len(x_tr):
        raise ValueError(f"--batch-size {batch_size} is larger than the training set ({len(x_tr)} images): "
                         f"use at most {len(x_tr)}")
    features = config.get("input_features")
    if features is not None and (x_tr.shape[1] != features or (x_te.ndim == 2 and x_te.shape[1] != features)):
        raise ValueError(f"{name}: images have {x_tr.shape[1]} values but the config's input_features is {features}")
    declared = getattr(dataset, "num_classes_declared", False)
    checked = check_classes(dataset, config.get("num_classes") if declared else None)
    if config.get("num_classes") != checked.num_classes:
        raise ValueError(f"config num_classes {config.get('num_classes')!r} but the training labels give "
                         f"{checked.num_classes} classes (declare another count with --num-classes)")


def train(config: dict[str, Any], dataset, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Train ``build_model(config)`` on ``dataset``; write the run folder; return metrics.

    Raises ValueError (naming the option) for settings that would train nothing
    or silently the wrong thing: epochs or batch size below 1 (batch size below
    2: BatchNorm needs two samples), a batch larger than the training set, a
    seed outside 0..2**32-1, labels outside 0..num_classes-1 or classes absent
    from training (unless the dataset's class count was declared, see
    :func:`bnnflow.datasets.check_classes`), a one-class dataset, or inputs
    whose size is not the config's ``input_features``.
    """
    config = resolve_config(config)
    check_training_setup(config, dataset)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    set_seed(config["seed"])
    model = build_model(config)
    generator = torch.Generator().manual_seed(config["seed"])
    optimizer = make_optimizer(config["optim"], model, config["lr"], config["lr_scale"],
                               gbits=config.get("gbits") or 8,
                               generator=torch.Generator().manual_seed(config["seed"] + 1))
    epochs = config["epochs"]
    scheduler = make_scheduler(config["schedule"], optimizer, epochs)
    loss_fn = get_loss(config["loss"])
    primary = primary_eval_mode(config)
    x_tr, y_tr = dataset.x_train, dataset.y_train
    history = []
    bar = tqdm(range(epochs), desc=f"train {config['method']}", disable=not progress, unit="epoch")
    for epoch in bar:
        model.train()
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        order = torch.randperm(len(x_tr), generator=generator).numpy()
        total, count, correct = 0.0, 0, 0
        for start in range(0, len(order), config["batch_size"]):
            idx = order[start:start + config["batch_size"]]
            if len(idx) < 2:   # BatchNorm needs two samples
                continue
            logits = model(to_tensor(x_tr[idx]))
            target = torch.from_numpy(y_tr[idx])
            loss = loss_fn(logits, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            clip_weights(model)
            if not torch.isfinite(loss):
                raise RuntimeError(f"training diverged at epoch {epoch + 1} (loss {loss.item()}); "
                                   f"try a smaller --lr")
            total += loss.item() * len(idx)
            count += len(idx)
            correct += int((logits.detach().argmax(1) == target).sum())
        scheduler.step()
        seconds = time.perf_counter() - started
        test_acc = evaluate(model, dataset.x_test, dataset.y_test)
        record = {"epoch": epoch + 1, "loss": total / max(1, count), "train_acc": correct / max(1, count),
                  "test_acc": test_acc, "lr": lr, "seconds": seconds}
        for mode, acc in evaluate_modes(model, dataset.x_test, dataset.y_test, primary).items():
            record[f"test_acc_{mode}"] = acc
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", test_acc=f"{test_acc:.3f}")
    metrics = {
        "train_acc": evaluate(model, x_tr, y_tr),
        "test_acc": evaluate(model, dataset.x_test, dataset.y_test),
        "epochs": history,
        "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])) if history else 0.0,
    }
    for mode, acc in evaluate_modes(model, dataset.x_test, dataset.y_test, primary).items():
        metrics[f"test_acc_{mode}"] = acc
    if primary:
        metrics["eval_weights"] = primary
    # plain tensors only, so that load_run's torch.load(weights_only=True) reads it
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / "model.pt")
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


class RunError(ValueError):
    """A run folder that is missing, incomplete or malformed (the message names the file and field)."""


#: config.json fields the model is rebuilt from, with their types (method defaults are filled in later).
_RUN_FIELDS = {
    "method": str,
    "input_features": int,
    "input_bits": int,
    "num_classes": int,
    "dataset": str,
}


def check_run_config(config: Any, path: Path | str = "config.json") -> dict[str, Any]:
    """RunError naming ``path`` and the field when a run's config cannot describe a model."""
    if not isinstance(config, dict):
        raise RunError(f"{path}: expected a JSON object, got {type(config).__name__}")
    for key, kind in _RUN_FIELDS.items():
        if key not in config:
            raise RunError(f"{path}: missing field '{key}'")
        value = config[key]
        ok = _is_int(value) if kind is int else isinstance(value, kind)
        if not ok:
            raise RunError(f"{path}: field '{key}' is {type(value).__name__} {value!r}, expected {kind.__name__}")
    if config["input_features"] < 1:
        raise RunError(f"{path}: field 'input_features' is {config['input_features']}, expected >= 1")
    if not 1 <= config["input_bits"] <= 8:
        raise RunError(f"{path}: field 'input_bits' is {config['input_bits']}, expected 1..8")
    if config["num_classes"] < 2:
        raise RunError(f"{path}: field 'num_classes' is {config['num_classes']}, expected >= 2")
    arch = config.get("arch", "mlp")
    if not isinstance(arch, str):
        raise RunError(f"{path}: field 'arch' is {type(arch).__name__} {arch!r}, expected str")
    if arch == "mlp":
        hidden = config.get("hidden")
        if not isinstance(hidden, list) or not all(_is_int(h) and h >= 1 for h in hidden):
            raise RunError(f"{path}: field 'hidden' is {hidden!r}, expected a list of positive integers")
    shape = config.get("input_shape")
    if shape is not None:
        if not isinstance(shape, list) or not shape or not all(_is_int(d) and d >= 1 for d in shape):
            raise RunError(f"{path}: field 'input_shape' is {shape!r}, expected a list of positive integers")
        if int(np.prod(shape)) != config["input_features"]:
            raise RunError(f"{path}: field 'input_shape' {shape} does not hold input_features="
                           f"{config['input_features']} values")
    if "split_seed" in config and not _is_int(config["split_seed"]):
        raise RunError(f"{path}: field 'split_seed' is {config['split_seed']!r}, expected an integer")
    try:
        return resolve_config(config)
    except ValueError as exc:
        raise RunError(f"{path}: {exc}") from None


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a model.pt, loaded without unpickling code (weights_only)."""
    if not path.is_file():
        raise RunError(f"{path}: missing (the run folder is incomplete; train it again)")
    if not zipfile.is_zipfile(path):
        raise RunError(f"{path}: not a bnnflow model file (not a torch archive)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:     # noqa: BLE001 - torch raises many types for a bad archive
        text = str(exc)
        reason = ("it holds objects other than tensors and plain data, which bnnflow never unpickles"
                  if "weights_only" in text or "Unsupported global" in text
                  else f"{type(exc).__name__}: {text.strip().splitlines()[0] if text.strip() else 'unreadable'}")
        raise RunError(f"{path}: not a bnnflow model file ({reason})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise RunError(f"{path}: not a bnnflow model file (expected a state dict of named tensors, "
                       f"got {type(state).__name__})")
    return state


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], nn.Module]:
    """(config, model in eval mode) of a trained run folder.

    Raises :class:`RunError` (a ValueError) naming the file and the field for a
    missing folder, a ``config.json`` that is not JSON, not an object, lacks a
    field or has one of the wrong type, and a ``model.pt`` that is missing, not
    a torch archive, holds anything but tensors, or does not fit the config.
    ``model.pt`` is read with ``torch.load(weights_only=True)``: no pickled code runs.
    """
    run = Path(run_dir)
    config_path = run / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not a training run (run `bnnflow train ... --out {run}` first)")
    config = read_json_object(config_path, RunError)
    check_run_config(config, config_path)
    try:
        model = build_model(config)
    except ValueError as exc:
        raise RunError(f"{config_path}: {exc}") from None
    state = _load_state(run / "model.pt")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"{label}: {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                 if items]
        raise RunError(f"{run / 'model.pt'}: does not match the network of {config_path} ({'; '.join(parts)})")
    model.load_state_dict(state)
    model.eval()
    return config, model
