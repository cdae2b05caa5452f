"""Training loop shared by every method: seeded, with a progress bar, writing a run folder.

A run folder holds ``config.json`` (everything needed to rebuild the model and
reload the data, method defaults filled in), ``model.pt`` (state dict) and
``metrics.json`` (per-epoch loss, train/test accuracy, learning rate and time;
final accuracies, and for BinaryConnect the accuracy with binary and with real
weights).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

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


def train(config: dict[str, Any], dataset, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Train ``build_model(config)`` on ``dataset``; write the run folder; return metrics."""
    config = resolve_config(config)
    out = Path(out_dir)
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
    torch.save(model.state_dict(), out / "model.pt")
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], nn.Module]:
    """(config, model in eval mode) of a trained run folder."""
    run = Path(run_dir)
    config_path = run / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not a training run (run `bnnflow train ... --out {run}` first)")
    config = json.loads(config_path.read_text())
    model = build_model(config)
    model.load_state_dict(torch.load(run / "model.pt", map_location="cpu", weights_only=True))
    model.eval()
    return config, model
