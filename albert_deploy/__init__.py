"""albert-deploy: profiles in, a healthy Albert API stack out."""

__version__ = "0.1.0"
