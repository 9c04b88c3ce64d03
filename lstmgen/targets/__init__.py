"""Deployment targets: what each runtime or device can run."""
