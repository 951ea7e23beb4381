"""Callbacks: Standard Webhooks signing, the delivery outbox, the deliverer and the delivery log."""
