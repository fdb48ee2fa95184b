"""cpwatch stage: producers."""
