"""Tasks: data, formatting for each family (text-to-text or head), output parsing and metrics."""

from xlt.tasks.base import PAPER_INIT_TEXTS, OutputType, Split, Task, check_template
from xlt.tasks.data import ClassificationData, Example, TaskDataError, load_examples
from xlt.tasks.metrics import UnseenLabels, classification_metrics, unseen_labels
from xlt.tasks.registry import BUILTIN, build_task, emoji_task, register_task_type
from xlt.tasks.text_classification import FileClassificationTask, TextClassificationTask

__all__ = [
    "BUILTIN",
    "PAPER_INIT_TEXTS",
    "ClassificationData",
    "Example",
    "FileClassificationTask",
    "OutputType",
    "Split",
    "Task",
    "TaskDataError",
    "TextClassificationTask",
    "UnseenLabels",
    "build_task",
    "check_template",
    "classification_metrics",
    "emoji_task",
    "load_examples",
    "register_task_type",
    "unseen_labels",
]
