"""BRD Edge training side: models, data, losses, checkpoints and the distillation runner."""
__version__ = "0.1.0"
