"""The process: embedded servers, logging, Redis client, shipped files, migration state, signals."""
