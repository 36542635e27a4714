"""The command side: command models and the application service that executes them."""
