-- callflow's ClickHouse schema. The archiver applies it at start (every
-- statement is IF NOT EXISTS); deploy/clickhouse/schema.sql is the same with
-- the database named callflow. It runs on ClickHouse 18.16 and on current
-- releases: plain DateTime (no DateTime64) and String (no LowCardinality).

CREATE DATABASE IF NOT EXISTS {database};

-- One row per webhook. A record delivered twice (an archiver crash between
-- insert and ack, a replay, 8x8 sending a webhook twice) has the same
-- event_id and the same sorting key, so ReplacingMergeTree collapses the
-- copies: query with FINAL (or uniq(event_id)) for exact counts. Partition
-- and sorting key use only values identical in every copy of an event: its
-- own time and id, never received_at (FINAL does not merge across
-- partitions). Events without a timestamp have event_time 0.
CREATE TABLE IF NOT EXISTS {database}.call_events
(
    event_id                 String,
    event_type               String,
    namespace                String,
    call_id                  String,
    session_id               String,
    sub_account_id           String,
    call_status              String,
    call_direction           String,
    call_type                String,
    source                   String,
    destination              String,
    source_country_code      String,
    destination_country_code String,
    destination_ref_id       String,
    call_duration            UInt32,
    sip_code                 UInt16,
    client_action_id         String,
    session_status           String,
    start_time               DateTime,
    end_time                 DateTime,
    last_action              String,
    call_count               UInt32,
    error_code               String,
    error_message            String,
    event_time               DateTime,
    received_at              DateTime,
    instance                 String,
    decision_source          String,
    decision_outcome         String,
    fallback_reason          String,
    decision_latency_us      UInt32,
    callflow                 String,
    raw                      String,
    record_version           UInt8,
    stream_sequence          UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (sub_account_id, event_type, event_time, event_id);

-- Records ClickHouse refused for their content (or that are not records at
-- all): set aside here, with the reason, instead of blocking the stream.
CREATE TABLE IF NOT EXISTS {database}.rejected_records
(
    rejected_at     DateTime,
    stream_sequence UInt64,
    subject         String,
    record_id       String,
    reason          String,
    data            String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(rejected_at)
ORDER BY (rejected_at, stream_sequence);

-- Calls per minute per sub-account and outcome, for dashboards. uniqState
-- counts distinct event ids, so duplicates inserted before a merge do not
-- inflate it. Read with uniqMerge(calls).
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.calls_per_minute
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (sub_account_id, minute, outcome)
AS SELECT
    sub_account_id,
    toStartOfMinute(event_time) AS minute,
    decision_outcome AS outcome,
    uniqState(event_id) AS calls
FROM {database}.call_events
WHERE event_type = 'CALL_ACTION'
GROUP BY sub_account_id, minute, outcome;
