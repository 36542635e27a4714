"""Errors that mean "a backend TaskFlow depends on is unreachable": answered with 503 NOT_READY
(and Retry-After), never a 500, so clients and load balancers know to retry."""

from __future__ import annotations

import elasticsearch
import eventsourcing.persistence as es_persistence
import psycopg
import psycopg_pool
import redis

DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    redis.ConnectionError,
    redis.TimeoutError,
    # eventsourcing re-raises driver errors as its own types.
    es_persistence.OperationalError,
    es_persistence.InterfaceError,
    # Connection refused or timed out (errors the node answers with are not about availability).
    elasticsearch.ConnectionError,
)
