"""Python clients of the stream manager: TCP (:mod:`.tcp`) and HTTP API (:mod:`.http`), sync and async.

Importing this package loads neither OpenCV, onnxruntime nor Celery (tested).
"""

from services.client.errors import (
    CommunicationProtocolError,
    ConnectivityError,
    ProcessesManagerAuthorisationError,
    ProcessesManagerClientError,
    ProcessesManagerInternalError,
    ProcessesManagerInvalidPayload,
    ProcessesManagerNotFoundError,
    ProcessesManagerOperationError,
)
from services.client.http import ApiClient, AsyncApiClient
from services.client.models import (
    CommandContext,
    CommandResponse,
    ConsumeResponse,
    FrameMetadata,
    InitialiseWebRTCResponse,
    ListPipelinesResponse,
    ListWorkersResponse,
    ListWorkflowsResponse,
    PutWorkflowResponse,
    StatusReport,
    StatusResponse,
    WorkerDrain,
    WorkerInfo,
    WorkerResponse,
    WorkflowResponse,
    WorkflowSummary,
)
from services.client.tcp import AsyncManagerClient, ManagerClient

__all__ = [
    "ApiClient",
    "AsyncApiClient",
    "AsyncManagerClient",
    "CommandContext",
    "CommandResponse",
    "CommunicationProtocolError",
    "ConnectivityError",
    "ConsumeResponse",
    "FrameMetadata",
    "InitialiseWebRTCResponse",
    "ListPipelinesResponse",
    "ListWorkersResponse",
    "ListWorkflowsResponse",
    "ManagerClient",
    "ProcessesManagerAuthorisationError",
    "ProcessesManagerClientError",
    "ProcessesManagerInternalError",
    "ProcessesManagerInvalidPayload",
    "ProcessesManagerNotFoundError",
    "ProcessesManagerOperationError",
    "PutWorkflowResponse",
    "StatusReport",
    "StatusResponse",
    "WorkerDrain",
    "WorkerInfo",
    "WorkerResponse",
    "WorkflowResponse",
    "WorkflowSummary",
]
