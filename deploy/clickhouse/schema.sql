-- callflow's ClickHouse schema. The archiver applies it at start (every
-- statement is IF NOT EXISTS); deploy/clickhouse/schema.sql is the same with
-- the database named callflow. It runs on ClickHouse 18.16 and on current
-- releases: plain DateTime (no DateTime64) and String (no LowCardinality).
--
-- Changes are additive: new tables and views, and new columns at the end of
-- a table's column list. After each CREATE TABLE the archiver compares the
-- table in ClickHouse (system.columns) with the column list here and adds
-- what is missing with ALTER TABLE ... ADD COLUMN, so an older table is
-- brought up to date in place (18.16 has no ADD COLUMN IF NOT EXISTS). A
-- column is never dropped, renamed or retyped, and a view is never
-- redefined: a different view gets a new name.

CREATE DATABASE IF NOT EXISTS callflow;

-- One row per webhook. A record delivered twice (an archiver crash between
-- insert and ack, a replay, 8x8 sending a webhook twice) has the same
-- event_id and the same sorting key, so ReplacingMergeTree collapses the
-- copies: query with FINAL (or uniq(event_id)) for exact counts. Partition
-- and sorting key use only values identical in every copy of an event: its
-- own time and id, never received_at (FINAL does not merge across
-- partitions). Events without a timestamp have event_time 0.
--
-- Added for number masking (filled for CALL_ACTION records from the
-- record's decision): masking_session_id is callflow's session the call was
-- routed to (session_id is 8x8's call session), virtual_number the number
-- dialled (+digits), out_of_session_policy whose policy answered a caller
-- in no session (number, subaccount, default), connected_to the makeCall
-- destination of the answer (the callee of a connected or forwarded call).
-- SESSION_AUDIT records carry their session in masking_session_id and its
-- number in virtual_number.
--
-- Added for IVR flows: event_dtmf and event_asr are a CALL_ACTION's
-- eventData.dtmf (the digits a sayAndCapture collected) and
-- eventData.asrCaptured; empty when 8x8 sent none. flow_id, flow_version
-- and flow_step say where in an IVR flow the caller is after the answer
-- (the step whose prompt it plays, or the step that connected or ended the
-- call), from the record's decision; digits is what the caller pressed in
-- answer to the step before (the decision's digits: eventData.dtmf as the
-- ingestor passed it to the decider). Empty and 0 outside flows.
CREATE TABLE IF NOT EXISTS callflow.call_events
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
    stream_sequence          UInt64,
    masking_session_id       String,
    virtual_number           String,
    out_of_session_policy    String,
    connected_to             String,
    event_dtmf               String,
    event_asr                String,
    flow_id                  String,
    flow_version             UInt64,
    flow_step                String,
    digits                   String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (sub_account_id, event_type, event_time, event_id);

-- Records ClickHouse refused for their content (or that are not records at
-- all): set aside here, with the reason, instead of blocking the stream.
CREATE TABLE IF NOT EXISTS callflow.rejected_records
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
CREATE MATERIALIZED VIEW IF NOT EXISTS callflow.calls_per_minute
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (sub_account_id, minute, outcome)
AS SELECT
    sub_account_id,
    toStartOfMinute(event_time) AS minute,
    decision_outcome AS outcome,
    uniqState(event_id) AS calls
FROM callflow.call_events
WHERE event_type = 'CALL_ACTION'
GROUP BY sub_account_id, minute, outcome;

-- Virtual number health: one row per number listed in a
-- VIRTUAL_NUMBER_UPDATE record (a SNAPSHOT lists the sub-account's whole
-- pool, UPDATES only what changed), so that a number's operational status
-- (Active, Unhealthy, Expiring, Inactive) can be followed over time. The
-- record itself is in call_events as well. updated_at is the number's
-- updatedTimestamp (the event's own time when it has none); a record
-- archived twice has the same key and collapses through FINAL. received_at,
-- when callflow learned it, is not part of the key: it differs between
-- copies of a webhook 8x8 sent twice.
CREATE TABLE IF NOT EXISTS callflow.number_status
(
    sub_account_id     String,
    msisdn             String,
    updated_at         DateTime,
    event_id           String,
    operational_status String,
    country_code       String,
    reference_id       String,
    update_event_type  String,
    received_at        DateTime
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(updated_at)
ORDER BY (sub_account_id, msisdn, updated_at, event_id);

-- Interactions of masking sessions. A session's interactions join its call
-- actions with 8x8's CALL_STATUS and SESSION_SUMMARY records of the same
-- 8x8 call session (see the interactions query in
-- deploy/clickhouse/queries.sql and archiver/history.go). call_events is
-- sorted for analytics (sub-account, type, time), not by masking session:
-- interaction_calls, filled by a materialized view, holds the call actions
-- answered with a makeCall (connect and forward) sorted by masking session,
-- so that a session's calls are found by key. It collapses copies of an
-- event like call_events does, and is read with GROUP BY and argMin, which
-- give the same answer with copies present. It starts empty on an upgraded
-- deployment (earlier call actions carry no masking session anyway).
CREATE TABLE IF NOT EXISTS callflow.interaction_calls
(
    masking_session_id String,
    session_id         String,
    event_id           String,
    event_time         DateTime,
    call_id            String,
    sub_account_id     String,
    source             String,
    connected_to       String,
    virtual_number     String,
    decision_outcome   String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (masking_session_id, session_id, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS callflow.interaction_calls_mv
TO callflow.interaction_calls
AS SELECT
    masking_session_id,
    session_id,
    event_id,
    event_time,
    call_id,
    sub_account_id,
    source,
    connected_to,
    virtual_number,
    decision_outcome
FROM callflow.call_events
WHERE event_type = 'CALL_ACTION' AND connected_to != '';
