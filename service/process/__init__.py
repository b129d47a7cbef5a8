"""The process: embedded servers, logs, Redis client, hand-over, shutdown and cancellation."""
