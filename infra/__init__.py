"""Settings, the composition root, adapters for each backend, runners and the CLI."""
