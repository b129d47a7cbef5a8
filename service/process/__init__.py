"""The process: embedded servers, logs, Redis client, hand-over, open files, drain, cancellation."""
