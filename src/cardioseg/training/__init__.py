"""Training: losses, the Lightning module, callbacks and the `train` entry point."""
