"""The task domain: what a client creates, polls, lists and cancels, and what commits when a task ends."""
