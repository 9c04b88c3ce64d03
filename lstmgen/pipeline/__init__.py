"""The build pipeline: layout, initializers, resolve, the verify gate and the steps that run them in order."""
