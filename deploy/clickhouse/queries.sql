-- Example queries over callflow's call history. Each runs as written with
-- clickhouse-client (ClickHouse 18.16 and current releases):
--
--   clickhouse-client --host 127.0.0.1 --port 9000 --multiquery < deploy/clickhouse/queries.sql
--
-- FINAL collapses records archived more than once (a redelivery, a replay,
-- a webhook 8x8 sent twice), so counts are exact. On large ranges prefer
-- uniq(event_id) without FINAL, or the calls_per_minute view.

-- 1. Calls per hour per sub-account (call actions: calls that reached us).
SELECT
    sub_account_id,
    toStartOfHour(event_time) AS hour,
    count() AS calls
FROM callflow.call_events FINAL
WHERE event_type = 'CALL_ACTION'
GROUP BY sub_account_id, hour
ORDER BY hour DESC, calls DESC
LIMIT 100;

-- 2. Answer mix per sub-account: connected (makeCall), out of session,
--    fallback, and the share of calls that got the fallback.
SELECT
    sub_account_id,
    count() AS calls,
    countIf(decision_outcome = 'connect') AS connected,
    countIf(decision_outcome = 'out_of_session') AS out_of_session,
    countIf(decision_source = 'fallback') AS fallback,
    round(100 * fallback / calls, 2) AS fallback_percent
FROM callflow.call_events FINAL
WHERE event_type = 'CALL_ACTION'
GROUP BY sub_account_id
ORDER BY calls DESC;

-- 3. Why callers got the fallback (breaker open, timeout, no responders...).
SELECT
    fallback_reason,
    count() AS calls,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen
FROM callflow.call_events FINAL
WHERE event_type = 'CALL_ACTION' AND decision_source = 'fallback'
GROUP BY fallback_reason
ORDER BY calls DESC;

-- 4. Decision latency percentiles (microseconds) per hour: how long callers
--    listened to silence while we decided.
SELECT
    toStartOfHour(event_time) AS hour,
    count() AS calls,
    quantiles(0.5, 0.9, 0.99, 0.999)(decision_latency_us) AS p50_p90_p99_p999_us,
    max(decision_latency_us) AS max_us
FROM callflow.call_events FINAL
WHERE event_type = 'CALL_ACTION'
GROUP BY hour
ORDER BY hour DESC
LIMIT 48;

-- 5. Session outcomes from 8x8's session summaries: status mix, average
--    duration and calls per session, error codes.
SELECT
    sub_account_id,
    session_status,
    count() AS sessions,
    avg(end_time - start_time) AS avg_duration_s,
    avg(call_count) AS avg_calls,
    groupUniqArray(error_code) AS error_codes
FROM callflow.call_events FINAL
WHERE event_type = 'SESSION_SUMMARY'
GROUP BY sub_account_id, session_status
ORDER BY sessions DESC;

-- 6. Top callers per virtual number (the number dialled is the call
--    action's destination).
SELECT
    destination AS virtual_number,
    source AS caller,
    count() AS calls,
    countIf(decision_outcome = 'connect') AS connected
FROM callflow.call_events FINAL
WHERE event_type = 'CALL_ACTION'
GROUP BY virtual_number, caller
ORDER BY calls DESC
LIMIT 10 BY virtual_number
LIMIT 100;

-- 7. Calls per minute per sub-account and outcome, from the materialized
--    view (cheap enough for a dashboard refreshing every few seconds).
SELECT
    sub_account_id,
    minute,
    outcome,
    uniqMerge(calls) AS calls
FROM callflow.calls_per_minute
GROUP BY sub_account_id, minute, outcome
ORDER BY minute DESC, sub_account_id, outcome
LIMIT 500;

-- 8. Records set aside because ClickHouse refused them or they were not
--    records: look here when an alert says the archiver rejected something.
SELECT rejected_at, stream_sequence, subject, record_id, reason
FROM callflow.rejected_records
ORDER BY rejected_at DESC
LIMIT 50;
