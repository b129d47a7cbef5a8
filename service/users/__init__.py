"""Users: accounts, their roles and their passwords."""
