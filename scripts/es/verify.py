#!/usr/bin/env python3
"""Smoke check of the local Elasticsearch node with the official Python client.

Usage: python verify.py [URL] [--after-restart]

Needs the `elasticsearch` package (9.x, same major as the node). Without --after-restart it
(re)creates the index `tf-verify-v1`/`tf-verify-v2` and exercises what TaskFlow relies on: the
client's product check, explicit mappings with the standard analyzer and keyword fields, external
versioning (an older version is rejected with 409), fuzzy multi_match with highlighting, a terms
aggregation, and an atomic alias swap. With --after-restart it only checks that the documents
written by an earlier run are still there (run it after scripts/es/stop + scripts/es/start).
"""
import sys

from elasticsearch import ConflictError, Elasticsearch, helpers

URL = next((a for a in sys.argv[1:] if not a.startswith("--")), "http://127.0.0.1:59200")
AFTER_RESTART = "--after-restart" in sys.argv
ALIAS, V1, V2 = "tf-verify", "tf-verify-v1", "tf-verify-v2"

MAPPING = {
    "properties": {
        "title": {"type": "text", "analyzer": "standard"},
        "body": {"type": "text", "analyzer": "standard"},
        "status": {"type": "keyword"},
        "tags": {"type": "keyword"},
        "seq": {"type": "long"},
    }
}
DOCS = {
    "t1": {"title": "Write the search service", "body": "Index tasks into Elasticsearch", "status": "open", "tags": ["search", "backend"], "seq": 3},
    "t2": {"title": "Fix login bug", "body": "Users cannot sign in with SSO", "status": "done", "tags": ["auth"], "seq": 5},
    "t3": {"title": "Plan the release", "body": "Collect the changelog for the release", "status": "open", "tags": ["release"], "seq": 2},
}


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAIL: {what}")
    print(f"ok   {what}")


def main():
    es = Elasticsearch(URL, request_timeout=30)
    info = es.info()  # raises UnsupportedProductError if the product check fails
    check(info["version"]["number"].startswith("9."), f"info(): Elasticsearch {info['version']['number']} (product check passed)")
    check(es.ping(), "ping()")

    if AFTER_RESTART:
        es.cluster.health(index=ALIAS, wait_for_status="yellow", timeout="30s")
        check(es.indices.get_alias(name=ALIAS).keys() == {V2}, f"alias {ALIAS} -> {V2} survived the restart")
        check(es.count(index=ALIAS)["count"] == len(DOCS), f"{len(DOCS)} documents survived the restart")
        doc = es.get(index=ALIAS, id="t2")
        check(doc["_version"] == 5 and doc["_source"]["status"] == "done", "external version and source survived the restart")
        hits = es.search(index=ALIAS, query={"multi_match": {"query": "relaese", "fields": ["title", "body"], "fuzziness": "AUTO"}})["hits"]["hits"]
        check(hits and hits[0]["_id"] == "t3", "fuzzy search works after the restart")
        print("ALL OK (after restart)")
        return

    es.indices.delete(index=f"{V1},{V2}", ignore_unavailable=True)
    settings = {"number_of_shards": 1, "number_of_replicas": 0}
    es.indices.create(index=V1, settings=settings, mappings=MAPPING, aliases={ALIAS: {}})
    got = es.indices.get_mapping(index=V1)[V1]["mappings"]["properties"]
    check(got["title"]["analyzer"] == "standard" and got["status"]["type"] == "keyword", "explicit mapping (standard analyzer text + keyword)")

    # External versioning: the version comes from the event stream.
    for doc_id, doc in DOCS.items():
        r = es.index(index=ALIAS, id=doc_id, document=doc, version=doc["seq"], version_type="external")
        check(r["_version"] == doc["seq"], f"index {doc_id} with external version {doc['seq']}")
    try:
        es.index(index=ALIAS, id="t2", document={**DOCS["t2"], "status": "stale"}, version=4, version_type="external")
        check(False, "older external version rejected")
    except ConflictError as e:
        check(e.meta.status == 409, "older external version rejected with 409 conflict")
    try:
        es.index(index=ALIAS, id="t2", document=DOCS["t2"], version=5, version_type="external")
        check(False, "equal external version rejected")
    except ConflictError:
        check(True, "equal external version rejected with 409 conflict")
    # Bulk with external versions: one stale item fails, the rest apply.
    ok, errors = helpers.bulk(
        es,
        [
            {"_op_type": "index", "_index": ALIAS, "_id": "t1", "version": 6, "version_type": "external", "_source": {**DOCS["t1"], "seq": 6}},
            {"_op_type": "index", "_index": ALIAS, "_id": "t3", "version": 1, "version_type": "external", "_source": DOCS["t3"]},
        ],
        raise_on_error=False,
    )
    check(ok == 1 and len(errors) == 1 and errors[0]["index"]["status"] == 409, "bulk with external versions (stale item -> 409)")
    es.indices.refresh(index=ALIAS)

    # Fuzzy multi_match with highlighting ("serch" -> "search", "relaese" -> "release").
    r = es.search(
        index=ALIAS,
        query={"multi_match": {"query": "serch servise", "fields": ["title^2", "body"], "fuzziness": "AUTO"}},
        highlight={"fields": {"title": {}, "body": {}}},
    )
    hits = r["hits"]["hits"]
    check(hits and hits[0]["_id"] == "t1", "fuzzy multi_match finds a document despite typos")
    check("<em>search</em>" in " ".join(hits[0]["highlight"]["title"]), f"highlight fragments: {hits[0]['highlight']}")

    # Facets.
    r = es.search(index=ALIAS, size=0, aggs={"by_status": {"terms": {"field": "status"}}, "by_tag": {"terms": {"field": "tags"}}})
    buckets = {b["key"]: b["doc_count"] for b in r["aggregations"]["by_status"]["buckets"]}
    check(buckets == {"open": 2, "done": 1}, f"terms aggregation: {buckets}")

    # Rebuild into a new index and swap the alias atomically.
    es.indices.create(index=V2, settings=settings, mappings=MAPPING)
    helpers.bulk(es, ({"_index": V2, "_id": i, "version": d["seq"], "version_type": "external", "_source": d} for i, d in DOCS.items()), refresh=True)
    es.indices.update_aliases(actions=[{"remove": {"index": V1, "alias": ALIAS}}, {"add": {"index": V2, "alias": ALIAS}}])
    check(es.indices.get_alias(name=ALIAS).keys() == {V2}, f"alias {ALIAS} swapped atomically {V1} -> {V2}")
    check(es.count(index=ALIAS)["count"] == len(DOCS), "search through the swapped alias")
    es.indices.delete(index=V1)
    print("ALL OK")


if __name__ == "__main__":
    main()
