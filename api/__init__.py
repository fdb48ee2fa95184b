"""cpwatch stage: api."""
