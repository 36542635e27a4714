"""The read API: GET routes served from read models; history/audit routes read the event store.

Imports projections' read interfaces and domain only (never commands)."""
