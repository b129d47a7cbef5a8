"""The process: embedded servers, logs, Redis client, hand-over to workers, signals."""
