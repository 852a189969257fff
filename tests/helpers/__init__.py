"""Shared test builders (tiny tokenizers, checkpoint directories). Plain modules, no fixtures."""
