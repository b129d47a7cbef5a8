"""Live events: a Redis Stream shared by every instance, served as Server-Sent Events."""
