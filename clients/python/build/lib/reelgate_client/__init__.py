"""The Python SDK of reelgate, the self-hosted Kling-O1 image-to-video API.

from reelgate_client import Client
task = Client().videos.create_and_wait(model="kling-o1-image-to-video", prompt="slow push in",
                                       image_urls=["https://example.com/first-frame.jpg"])
"""

from reelgate_client import webhooks
from reelgate_client._async import AsyncClient
from reelgate_client._core import __version__
from reelgate_client._errors import (
    APIConnectionError,
    AuthenticationError,
    InsufficientQuotaError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReelgateError,
    ServiceUnavailableError,
    TaskFailedError,
    UpstreamError,
    WaitTimeoutError,
    WebhookVerificationError,
)
from reelgate_client._sync import Client
from reelgate_client._types import FileList, FileQuota, ListedFile, Task, TaskError, TaskEvent, TaskPage, UploadedFile

__all__ = [
    "APIConnectionError",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "FileList",
    "FileQuota",
    "InsufficientQuotaError",
    "InternalServerError",
    "InvalidRequestError",
    "ListedFile",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReelgateError",
    "ServiceUnavailableError",
    "Task",
    "TaskError",
    "TaskEvent",
    "TaskFailedError",
    "TaskPage",
    "UploadedFile",
    "UpstreamError",
    "WaitTimeoutError",
    "WebhookVerificationError",
    "__version__",
    "webhooks",
]
