"""Posts: titled texts written by users."""
