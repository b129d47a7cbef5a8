"""What only the CLI runs: migrations, their lint, deploy checks, the route table."""
