"""tcptune: inspect and tune Linux TCP TIME_WAIT / CLOSE_WAIT related sysctls."""

__version__ = "0.1.0"
