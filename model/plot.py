"""Training curves of a run folder as a PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

from ..extras import require
from ..jsonfile import read_json_object


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write loss and accuracy per epoch of ``run_dir`` to ``out`` (default RUN/curves.png)."""
    matplotlib = require("matplotlib", "train", "bnnflow plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run_dir)
    metrics_path = run / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path}: not a training run (no metrics.json; run `bnnflow train "
                                f"... --out {run}` first)")
    metrics = read_json_object(metrics_path)
    history = metrics.get("epochs")
    if history == [] and isinstance(metrics.get("imported"), dict):
        raise ValueError(f"{run} was imported (bnnflow import-qonnx), not trained here: it has no training curves")
    if not isinstance(history, list) or not history:
        raise ValueError(f"{metrics_path}: field 'epochs' is {history!r}, expected a list of per-epoch records")
    for i, record in enumerate(history):
        for key in ("epoch", "loss", "test_acc"):
            if not isinstance(record, dict) or not isinstance(record.get(key), (int, float)) \
                    or isinstance(record.get(key), bool):
                raise ValueError(f"{metrics_path}: epochs[{i}] has no number '{key}'")
    config = read_json_object(run / "config.json") if (run / "config.json").is_file() else {}
    if out is not None:
        from matplotlib.backend_bases import FigureCanvasBase

        suffix = Path(out).suffix.lstrip(".").lower()
        formats = FigureCanvasBase.get_supported_filetypes()
        if suffix and suffix not in formats:
            raise ValueError(f"--out {out}: unknown image format '.{suffix}'; use one of "
                             f"{', '.join('.' + f for f in sorted(formats))}")
        if Path(out).is_dir():
            raise ValueError(f"--out {out}: is a folder; give a file name such as {Path(out) / 'curves.png'}")
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["loss"] for h in history], label=f"train loss ({config.get('loss', '?')})")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    if "train_acc" in history[0]:
        ax_acc.plot(epochs, [100 * h["train_acc"] for h in history], label="train (running, in training mode)")
    ax_acc.plot(epochs, [100 * h["test_acc"] for h in history], label="test")
    for key in sorted(k for k in history[0] if k.startswith("test_acc_")):
        ax_acc.plot(epochs, [100 * h[key] for h in history], "--", label=f"test, {key[9:]} weights")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(loc="lower right")
    title = f"{run.name}: {config.get('method', '?')} on {config.get('dataset', '?')}, " \
            f"final test {100 * metrics.get('test_acc', float('nan')):.2f}%"
    fig.suptitle(title)
    fig.tight_layout()
    target = Path(out) if out else run / "curves.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
