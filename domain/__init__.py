"""TaskFlow's write model: aggregates, their events and the rules they enforce.

Imports nothing but the standard library and ``eventsourcing.domain``.
"""
