"""The process: embedded servers, logs, Redis client, hand-over, the serving loop (uvicorn)."""
