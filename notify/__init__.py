"""The notify stage: alert subscriptions, matching, lifecycle and digests, delivery channels.

Reads ``policy-events`` and ``alerts`` from Kafka and delivers to subscribers. The API imports
its library modules (models, matching, senders), never an ``*_agent`` module, so the API process
does not load Faust.
"""
