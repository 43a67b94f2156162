"""Drive `imdsguard serve` with the official Elasticsearch Python client (8.x), as an application or
a shipper would: the product check, start-up index management (template, ILM policy, pipeline),
`helpers.bulk` with `create` actions into a data stream, and a single-document index. Exits non-zero
with the reason on the first surprise; prints one JSON line with what it saw."""
import json
import sys

from elasticsearch import Elasticsearch, helpers

url = sys.argv[1]
es = Elasticsearch(url, request_timeout=20, max_retries=0)
seen = {}
info = es.info()
seen["version"] = info["version"]["number"]
# What Beats do at start-up, through the client's own API.
seen["template_before"] = bool(es.indices.exists_index_template(name="filebeat-8.17.0"))
seen["template_put"] = es.indices.put_index_template(
    name="filebeat-8.17.0", index_patterns=["filebeat-8.17.0"], data_stream={}, priority=150
)["acknowledged"]
seen["template_after"] = bool(es.indices.exists_index_template(name="filebeat-8.17.0"))
seen["ilm_put"] = es.ilm.put_lifecycle(name="filebeat", policy={"phases": {"hot": {"actions": {}}}})["acknowledged"]
seen["pipeline_put"] = es.ingest.put_pipeline(id="imds", processors=[])["acknowledged"]
curl = {
    "@timestamp": "2026-05-01T10:00:00Z",
    "host": {"name": "py-client-host", "os": {"type": "linux"}},
    "event": {"category": ["process"], "type": ["start"]},
    "process": {"name": "curl", "pid": 77,
                "command_line": "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/"},
}
ok, errors = helpers.bulk(
    es,
    [{"_op_type": "create", "_index": "logs-endpoint.events.process-default", "_source": curl},
     {"_op_type": "create", "_index": "logs-endpoint.events.process-default",
      "_source": {"@timestamp": "2026-05-01T10:00:01Z", "message": "benign"}}],
    raise_on_error=False,
)
seen["bulk_ok"] = ok
seen["bulk_errors"] = errors
seen["index_result"] = es.index(index="logs-generic-default", document={"@timestamp": "2026-05-01T10:00:02Z", "message": "x"})["result"]
print(json.dumps(seen))
