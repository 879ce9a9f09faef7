"""Tasks: data, formatting for each family (text-to-text or head), output parsing and metrics."""

from xlt.tasks.base import Split, Task
from xlt.tasks.classification import ClassificationData, Example, TaskDataError, load_examples
from xlt.tasks.metrics import classification_metrics
from xlt.tasks.registry import BUILTIN, build_task, emoji_task, register_task_type
from xlt.tasks.text_classification import TextClassificationTask

__all__ = [
    "BUILTIN",
    "ClassificationData",
    "Example",
    "Split",
    "Task",
    "TaskDataError",
    "TextClassificationTask",
    "build_task",
    "classification_metrics",
    "emoji_task",
    "load_examples",
    "register_task_type",
]
