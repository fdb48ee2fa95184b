"""cpwatch stage: sinks."""
