"""Session-scoped pytest fixtures for the Kubernetes control plane and node agent."""
