"""Authentication: passwords, bearer tokens, the login rate limit."""
