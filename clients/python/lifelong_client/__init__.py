"""The Python client of the lifelong HTTP API, on httpx: numpy in, numpy out.

`Client` (client.py) has one method per endpoint; refusals are `LifelongError` subclasses (errors.py);
jobs are `Job`s (jobs.py), drawn as they run by `ProgressBar` (progress.py, the CLI's bar too);
predictions are `Prediction`s (prediction.py); answers' shapes are in schemas.py.
It needs none of the service's own packages, and is versioned with the service.
"""

from lifelong_client.client import DEFAULT_URL, Client, client_version
from lifelong_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Invalid,
    LifelongError,
    NotFound,
    ServerError,
    TooLarge,
    Unauthorized,
    Unavailable,
    WaitTimeout,
    error_for,
)
from lifelong_client.jobs import FINISHED, Job
from lifelong_client.prediction import NPY, Inputs, Prediction
from lifelong_client.progress import Epochs, ProgressBar
from lifelong_client.schemas import (
    AliasInfo,
    AliasMove,
    ClassScores,
    Data,
    DatasetInfo,
    DriftReport,
    DriftResult,
    DriftVerdict,
    Evaluation,
    EvaluationRow,
    KeyInfo,
    ModelInfo,
    NewKeyInfo,
    Predictor,
    Progress,
    Promotion,
    QueueName,
    Scores,
    SelectionRule,
    ShadowState,
    TaskFreeDetail,
    TaskFreeOptions,
    TaskFreeScores,
    TaskFreeTask,
    VersionDetail,
    VersionInfo,
    WebhookDeliveryInfo,
    WebhookInfo,
)

__version__ = client_version()

__all__ = [
    "DEFAULT_URL", "FINISHED", "NPY", "AliasInfo", "AliasMove", "BadRequest", "ClassScores", "Client", "Conflict",
    "ConnectionFailed", "Data", "DatasetInfo", "DriftReport", "DriftResult", "DriftVerdict", "Epochs", "Evaluation",
    "EvaluationRow", "Forbidden", "Inputs", "Invalid", "Job", "KeyInfo", "LifelongError", "ModelInfo", "NewKeyInfo",
    "NotFound", "Prediction", "Predictor", "Progress", "ProgressBar", "Promotion", "QueueName", "Scores",
    "SelectionRule", "ServerError", "ShadowState", "TaskFreeDetail", "TaskFreeOptions", "TaskFreeScores",
    "TaskFreeTask", "TooLarge", "Unauthorized", "Unavailable", "VersionDetail", "VersionInfo", "WaitTimeout",
    "WebhookDeliveryInfo", "WebhookInfo", "client_version", "error_for",
]
