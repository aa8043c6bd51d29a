"""The project's real Kubernetes test cluster: scripts that build and run it, and a Helm release driver."""
