"""Backbone adapters: the only code that knows π0 / π0.5 / SmolVLA internals."""
