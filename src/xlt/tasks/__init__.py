"""Tasks: data, formatting for each family (text-to-text or head), output parsing and metrics."""

from xlt.tasks.classification import ClassificationData, TaskDataError, load_examples

__all__ = ["ClassificationData", "TaskDataError", "load_examples"]
