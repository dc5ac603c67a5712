// Package archiver moves call records from the JetStream stream into
// ClickHouse, where analysts query call history.
//
// Records are read with a durable pull consumer shared by every archiver,
// inserted in batches (sent on a row count, a byte size or an age), and
// acknowledged only after ClickHouse accepted the batch: delivery is at
// least once. Storage is idempotent: call_events is a ReplacingMergeTree
// keyed by values identical in every copy of an event, so a record
// delivered twice reads once through FINAL. A record ClickHouse refuses for
// its content is set aside in rejected_records; an outage is retried with
// backoff while the records wait in JetStream.
package archiver
