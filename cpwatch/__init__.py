"""cpwatch: a streaming monitor for crypto-policy events and state/corporate BTC treasuries.

This package is the contract every stage imports: settings, record schemas, topic names, the CLI.
It never imports producers/, streams/, sinks/ or api/ at module level.
"""

__version__ = "0.1.0"
