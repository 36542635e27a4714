"""The analyst's view: per-project flow metrics, rebuildable from the event history.

``projection`` keeps per-task facts and status periods (and holds the metric definitions applied
when events are projected); ``reports`` turns those rows into the series the read API serves.
"""
