"""The task domain: what a client creates, polls, lists and cancels."""
