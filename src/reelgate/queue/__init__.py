"""The durable queue: the tasks table itself, claimed with leases, renewed by heartbeats, and the job runner
that turns a claimed task into a video."""

# The wake-up channel of new or requeued work (db/notify.py): creates notify it, workers listen on it.
TASKS_CHANNEL = "reelgate_tasks"
