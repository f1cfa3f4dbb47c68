"""Data stage: the bundled default dataset, file loaders, fitting data to a model, deterministic batches."""

from litetrain.data.batching import BatchPlan, plan_batches
from litetrain.data.dataset import Dataset, load_dataset

__all__ = ["BatchPlan", "Dataset", "load_dataset", "plan_batches"]
