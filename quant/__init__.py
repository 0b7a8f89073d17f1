"""quant: Brevitas QAT networks built from a hw_space Network, datasets, training, checkpoints, QONNX export.

Importing this package imports torch and brevitas; CLI commands import it inside run().
"""

from quant.build import LayerInfo, QuantNet, build, describe, input_integers
from quant.checkpoint import load_checkpoint, save_checkpoint
from quant.data import (
    DATASETS,
    Dataset,
    DatasetInfo,
    check_design_matches,
    dataset_info,
    load_dataset,
)
from quant.export import execute_qonnx, export_qonnx, network_of_qonnx, save_test_data
from quant.train import Budget, EpochStats, TrainResult, evaluate, predict, train

__all__ = [
    "DATASETS", "Budget", "Dataset", "DatasetInfo", "EpochStats", "LayerInfo", "QuantNet", "TrainResult",
    "build", "check_design_matches", "input_integers", "dataset_info", "describe", "evaluate", "execute_qonnx", "export_qonnx",
    "load_checkpoint", "load_dataset", "network_of_qonnx", "predict", "save_checkpoint", "save_test_data", "train",
]
