"""The durable queue: the tasks table itself, claimed with leases, renewed by heartbeats, and the job runner
that turns a claimed task into a video."""

# The wake-up channel of new or requeued work (db/notify.py): creates notify it, workers listen on it.
TASKS_CHANNEL = "reelgate_tasks"
# A task's visible state changed (status, progress): every write that changes it notifies this channel with the
# task id, after its commit, so event streams in any process see it (tasks/events.py).
TASK_EVENTS_CHANNEL = "reelgate_task_events"
