"""`codesign train`: QAT of a Design's network with Brevitas, writing the checkpoint, QONNX model,
metrics, the design and the test split (with reference logits) the HLS backend verifies against."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from codesign.cli_args import finite_float
from hw_space.files import check_output_folder

NAME = "train"
HELP = "quantization-aware training of a design's network (Brevitas) -> checkpoint + QONNX"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("design", help="design YAML file")
    parser.add_argument("--dataset", default="digits",
                        help="digits (embedded, default), mnist, fashion-mnist or cifar10")
    parser.add_argument("--data-dir", help="folder with the dataset: torchvision's layout, or for mnist/fashion-mnist a "
                        "folder holding the four IDX files, plain or .gz (not for digits; see docs/datasets.md)")
    parser.add_argument("--download", action="store_true", help="download the dataset into --data-dir first")
    parser.add_argument("--epochs", type=int, help="training epochs (default 15)")
    parser.add_argument("--batch-size", type=int, help="batch size (default 64)")
    parser.add_argument("--lr", type=finite_float, help="Adam peak learning rate (default 2e-2 if any 1-bit layer, else 3e-3)")
    parser.add_argument("--subset", type=finite_float, help="fraction of the training set to use (default 1.0)")
    parser.add_argument("--patience", type=int,
                        help="early-stopping patience in epochs on a validation split (default 0: off)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default 1; small networks gain little from more)")
    parser.add_argument("--out", required=True, help="output folder")


def _budget_from(args: argparse.Namespace):
    from quant.train import Budget

    changes = {key: getattr(args, key) for key in ("epochs", "batch_size", "lr", "subset", "patience", "threads")
               if getattr(args, key) is not None}
    budget = Budget(seed=args.seed, **changes)
    budget.validate()
    return budget


def _progress_printer(total: int):
    """A progress line per epoch on stderr: a small bar, the mean loss and the validation accuracy."""
    start = time.perf_counter()

    def show(epoch: int, loss: float, val_acc: float | None) -> None:
        filled = round(20 * epoch / total)
        val = f"  val {val_acc:.4f}" if val_acc is not None else ""
        print(f"epoch {epoch:>3}/{total} [{'#' * filled}{'.' * (20 - filled)}] loss {loss:.4f}{val}"
              f"  {time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)

    return show


def run(args: argparse.Namespace) -> int:
    from hw_space.design import atomic_write_text, load_design, save_design

    design = load_design(args.design)
    out = Path(args.out)
    check_output_folder(out)  # before torch is imported and long before training: an unwritable --out fails now

    from quant.checkpoint import save_checkpoint
    from quant.data import check_design_matches, dataset_info, load_dataset
    from quant.export import export_qonnx, save_test_data
    from quant.train import default_lr, train

    network = design.network
    check_design_matches(network, dataset_info(args.dataset))  # before any slow loading
    budget = _budget_from(args)
    data = load_dataset(args.dataset, data_dir=args.data_dir, download=args.download)
    check_design_matches(network, data)
    print(f"training {args.design} on {data.name}: {len(data.y_train)} train / {len(data.y_test)} test samples, "
          f"{budget.epochs} epochs, seed {budget.seed}", file=sys.stderr, flush=True)
    result = train(network, data, budget, progress=_progress_printer(budget.epochs))

    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(result.model, network, out / "model.pt")
    export_qonnx(result.model, network, out / "model.onnx")
    save_design(design, out / "design.yaml")
    save_test_data(result.model, data, out / "test_data.npz")
    metrics = {
        "accuracy": result.accuracy, "epochs": result.epochs, "train_seconds": round(result.train_seconds, 3),
        "seed": budget.seed, "dataset": data.name, "test_samples": result.test_samples,
        "network_hash": network.content_hash(), "reason": result.reason,
        "val_accuracy": result.val_accuracy,
        "budget": {"epochs": budget.epochs, "batch_size": budget.batch_size,
                   "lr": budget.lr if budget.lr is not None else default_lr(network),
                   "subset": budget.subset, "patience": budget.patience, "threads": budget.threads},
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(f"accuracy {result.accuracy:.4f} on {result.test_samples} test samples after {result.epochs} epochs "
          f"in {result.train_seconds:.1f}s ({result.reason}) -> {out}")
    return 0
