"""cpwatch stage: streams."""
