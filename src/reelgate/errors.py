"""The error vocabulary of the contract (docs/contract.md section 4) and the business codes of failed tasks.

Raise `ApiError` (or a subclass) anywhere in a request; one handler in `api/errors.py` renders the envelope.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorType(StrEnum):
    INVALID_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    INSUFFICIENT_QUOTA = "insufficient_quota_error"
    PERMISSION = "permission_error"
    NOT_FOUND = "not_found_error"
    RATE_LIMIT = "rate_limit_error"
    INTERNAL = "internal_server_error"
    UPSTREAM = "upstream_error"
    SERVICE_UNAVAILABLE = "service_unavailable_error"


# The seed's mapping of HTTP status to error type; anything else we answer maps to its nearest class.
TYPE_FOR_STATUS: dict[int, ErrorType] = {
    400: ErrorType.INVALID_REQUEST,
    401: ErrorType.AUTHENTICATION,
    402: ErrorType.INSUFFICIENT_QUOTA,
    403: ErrorType.PERMISSION,
    404: ErrorType.NOT_FOUND,
    429: ErrorType.RATE_LIMIT,
    500: ErrorType.INTERNAL,
    502: ErrorType.UPSTREAM,
    503: ErrorType.SERVICE_UNAVAILABLE,
}


def type_for_status(status: int) -> ErrorType:
    if status in TYPE_FOR_STATUS:
        return TYPE_FOR_STATUS[status]
    return ErrorType.INTERNAL if status >= 500 else ErrorType.INVALID_REQUEST


class ApiError(Exception):
    """An error a request answers with, in the contract's envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        fallback_suggestion: str | None = None,
        error_type: ErrorType | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.fallback_suggestion = fallback_suggestion
        self.error_type = error_type or type_for_status(status)
        self.headers = headers or {}

    def envelope(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.status, "message": self.message, "type": str(self.error_type)}
        if self.param is not None:
            body["param"] = self.param
        if self.fallback_suggestion is not None:
            body["fallback_suggestion"] = self.fallback_suggestion
        return {"error": body}


class TaskErrorCode(StrEnum):
    """String business codes of a failed task (`error.code`), docs/contract.md section 2."""

    CONTENT_POLICY_VIOLATION = "content_policy_violation"
    INVALID_PARAMETERS = "invalid_parameters"
    IMAGE_PROCESSING_ERROR = "image_processing_error"
    IMAGE_DIMENSION_MISMATCH = "image_dimension_mismatch"
    REQUEST_CANCELLED = "request_cancelled"
    GENERATION_FAILED_NO_CONTENT = "generation_failed_no_content"
    SERVICE_ERROR = "service_error"
    GENERATION_TIMEOUT = "generation_timeout"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    QUOTA_EXCEEDED = "quota_exceeded"
    SERVICE_UNAVAILABLE = "service_unavailable"
    RESOURCE_NOT_FOUND = "resource_not_found"
    UNKNOWN_ERROR = "unknown_error"


class TaskFailure(Exception):
    """Raised inside a job to end its task as `failed` with a business code and a user-facing message."""

    def __init__(self, code: TaskErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
