"""What composes the services: the CLI, the local dev stack and the simulated municipality."""
