"""Task states. Only these four strings ever leave the service (docs/contract.md section 3).

pending --claim--> processing --finish--> completed
   |                   |  \\--fail-------> failed (error.code says why)
   \\--cancel-----------+--cancel--------> failed (request_cancelled)
processing --lease expired--> pending (attempt+1)   [until max attempts, then failed + refund]

They live in the queue, the lowest package that writes them (claims, leases, fenced finishes); the tasks
package above reads them and writes its client transitions through the queue's repository.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


UNFINISHED = (TaskStatus.PENDING, TaskStatus.PROCESSING)


class CreditsState(StrEnum):
    HELD = "held"
    CAPTURED = "captured"
    RELEASED = "released"
