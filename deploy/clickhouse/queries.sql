-- Example queries over callflow's call history. Each runs as written with
-- clickhouse-client (ClickHouse 18.16 and current releases):
--
--   clickhouse-client --host 127.0.0.1 --port 9000 --multiquery < deploy/clickhouse/queries.sql
--
-- FINAL collapses records archived more than once (a redelivery, a replay,
-- a webhook 8x8 sent twice), so counts are exact. On large ranges prefer
-- uniq(event_id) without FINAL, or the calls_per_minute view.
--
-- On a cluster (--clickhouse-cluster) the same queries answer the same over
-- the Distributed tables: every copy of an event is on one shard, so FINAL
-- still collapses them, and the subqueries and joins say GLOBAL, so that
-- they are read once across the shards (a session's calls are spread over
-- them). GLOBAL changes nothing on one server.

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

-- 2. Answer mix per sub-account: connected to a masking session
--    (makeCall), out of session (told, then hung up), forwarded by an
--    out-of-session policy (makeCall), follow-ups of an earlier answer,
--    fallback, and the share of calls that got the fallback.
SELECT
    sub_account_id,
    count() AS calls,
    countIf(decision_outcome = 'connect') AS connected,
    countIf(decision_outcome = 'out_of_session') AS out_of_session,
    countIf(decision_outcome = 'forward') AS forwarded,
    countIf(decision_outcome = 'follow_up') AS follow_ups,
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

-- 9. Interactions of one masking session (callflow's session id, here an
--    example), newest first: one row per 8x8 call session routed to it,
--    with caller, callee, virtual number, start, whether the callee
--    answered, talk time and outcome. GET /v1/sessions/{id}/interactions
--    runs this query (archiver/history.go; a test keeps the two equal).
--    answered: the callee's leg reached CALL_CONNECTED (or, without call
--    status webhooks, 8x8's session summary says COMPLETED). talk_seconds:
--    the callee leg's callDuration at CALL_DISCONNECTED (without call
--    statuses, the summary's end - start, which includes ringing). outcome:
--    8x8's session status once its summary came, until then callflow's
--    decision. Exact with records archived twice (argMin, argMax,
--    groupUniqArray), no FINAL needed. The scalar subqueries bound the
--    statuses read to the session's sub-accounts and the span of its calls.
SELECT
    masking_session_id,
    session_id,
    first_call_id AS call_id,
    account AS sub_account_id,
    caller_number AS caller,
    callee_number AS callee,
    dialled AS virtual_number,
    decided AS decision,
    started_at,
    summaries > 0 AS summarized,
    summary_end AS ended_at,
    arrayExists((leg, caller_leg) -> ((leg.1 != caller_leg) AND (leg.2 = 'CALL_CONNECTED')), legs, replicate(first_call_id, legs))
        OR (summarized AND (summary_status = 'COMPLETED') AND (decided IN ('connect', 'forward'))) AS answered,
    toUInt32(if(NOT answered, 0,
        if(arrayExists((leg, caller_leg) -> ((leg.1 != caller_leg) AND (leg.2 = 'CALL_DISCONNECTED')), legs, replicate(first_call_id, legs)),
            arrayReduce('max', arrayMap(leg -> leg.3, arrayFilter((leg, caller_leg) -> ((leg.1 != caller_leg) AND (leg.2 = 'CALL_DISCONNECTED')), legs, replicate(first_call_id, legs)))),
            if(summary_end > summary_start, toUInt32(summary_end) - toUInt32(summary_start), 0)))) AS talk_seconds,
    if(summarized, summary_status, decided) AS outcome
FROM
(
    SELECT
        session_id,
        masking_session_id,
        argMin(call_id, (event_time, event_id)) AS first_call_id,
        argMin(sub_account_id, (event_time, event_id)) AS account,
        argMin(source, (event_time, event_id)) AS caller_number,
        argMin(connected_to, (event_time, event_id)) AS callee_number,
        argMin(virtual_number, (event_time, event_id)) AS dialled,
        argMin(decision_outcome, (event_time, event_id)) AS decided,
        min(event_time) AS started_at
    FROM callflow.interaction_calls
    WHERE masking_session_id = '5f1d0c6a2b7e4c1d9a8b3e2f4d6c8a10'
    GROUP BY session_id, masking_session_id
)
GLOBAL ANY LEFT JOIN
(
    SELECT
        session_id,
        groupUniqArrayIf((call_id, call_status, call_duration), event_type = 'CALL_STATUS') AS legs,
        countIf(event_type = 'SESSION_SUMMARY') AS summaries,
        argMaxIf(session_status, (event_time, event_id), event_type = 'SESSION_SUMMARY') AS summary_status,
        argMaxIf(start_time, (event_time, event_id), event_type = 'SESSION_SUMMARY') AS summary_start,
        argMaxIf(end_time, (event_time, event_id), event_type = 'SESSION_SUMMARY') AS summary_end
    FROM callflow.call_events
    WHERE (sub_account_id = '' OR sub_account_id GLOBAL IN (SELECT sub_account_id FROM callflow.interaction_calls WHERE masking_session_id = '5f1d0c6a2b7e4c1d9a8b3e2f4d6c8a10'))
        AND event_type IN ('CALL_STATUS', 'SESSION_SUMMARY')
        AND event_time >= (SELECT min(event_time) FROM callflow.interaction_calls WHERE masking_session_id = '5f1d0c6a2b7e4c1d9a8b3e2f4d6c8a10') - 3600
        AND event_time <= (SELECT max(event_time) FROM callflow.interaction_calls WHERE masking_session_id = '5f1d0c6a2b7e4c1d9a8b3e2f4d6c8a10') + 86400
        AND session_id GLOBAL IN (SELECT session_id FROM callflow.interaction_calls WHERE masking_session_id = '5f1d0c6a2b7e4c1d9a8b3e2f4d6c8a10')
    GROUP BY session_id
) USING (session_id)
ORDER BY started_at DESC, session_id DESC
LIMIT 100;

-- 10. Answer rate and talk time per sub-account and day, over the calls
--     callflow connected (to a masking session, or forwarded by a policy)
--     in the last 30 days; same rules as query 9.
SELECT
    account AS sub_account_id,
    toDate(started_at) AS day,
    decided AS decision,
    count() AS calls,
    sum(answered) AS answered_calls,
    round(100 * answered_calls / calls, 1) AS answer_rate_percent,
    sum(talk_seconds) AS talk_seconds_total,
    round(talk_seconds_total / greatest(answered_calls, 1), 1) AS avg_talk_seconds
FROM
(
    SELECT
        account,
        started_at,
        decided,
        arrayExists((leg, caller_leg) -> ((leg.1 != caller_leg) AND (leg.2 = 'CALL_CONNECTED')), legs, replicate(first_call_id, legs))
            OR ((summaries > 0) AND (summary_status = 'COMPLETED') AND (decided IN ('connect', 'forward'))) AS answered,
        toUInt32(if(NOT answered, 0,
            if(arrayExists((leg, caller_leg) -> ((leg.1 != caller_leg) AND (leg.2 = 'CALL_DISCONNECTED')), legs, replicate(first_call_id, legs)),
                arrayReduce('max', arrayMap(leg -> leg.3, arrayFilter((leg, caller_leg) -> ((leg.1 != caller_leg) AND (leg.2 = 'CALL_DISCONNECTED')), legs, replicate(first_call_id, legs)))),
                if(summary_end > summary_start, toUInt32(summary_end) - toUInt32(summary_start), 0)))) AS talk_seconds
    FROM
    (
        SELECT
            session_id,
            argMin(call_id, (event_time, event_id)) AS first_call_id,
            argMin(sub_account_id, (event_time, event_id)) AS account,
            argMin(decision_outcome, (event_time, event_id)) AS decided,
            min(event_time) AS started_at
        FROM callflow.interaction_calls
        WHERE event_time >= today() - 30
        GROUP BY session_id
    )
    GLOBAL ANY LEFT JOIN
    (
        SELECT
            session_id,
            groupUniqArrayIf((call_id, call_status, call_duration), event_type = 'CALL_STATUS') AS legs,
            countIf(event_type = 'SESSION_SUMMARY') AS summaries,
            argMaxIf(session_status, (event_time, event_id), event_type = 'SESSION_SUMMARY') AS summary_status,
            argMaxIf(start_time, (event_time, event_id), event_type = 'SESSION_SUMMARY') AS summary_start,
            argMaxIf(end_time, (event_time, event_id), event_type = 'SESSION_SUMMARY') AS summary_end
        FROM callflow.call_events
        WHERE event_type IN ('CALL_STATUS', 'SESSION_SUMMARY')
            AND event_time >= toDateTime(today() - 31)
            AND session_id GLOBAL IN (SELECT session_id FROM callflow.interaction_calls WHERE event_time >= today() - 30)
        GROUP BY session_id
    ) USING (session_id)
)
GROUP BY sub_account_id, day, decision
ORDER BY day DESC, sub_account_id, decision;

-- 11. Number utilisation: calls and connects per virtual number and day
--     (last 30 days), beside the number's last status reported by 8x8
--     (empty when 8x8 never reported it): calls still arriving on an
--     Unhealthy or Inactive number show here.
SELECT
    virtual_number,
    day,
    calls,
    connects,
    masking_sessions,
    out_of_session_calls,
    fallbacks,
    last_status
FROM
(
    SELECT
        virtual_number,
        toDate(event_time) AS day,
        count() AS calls,
        countIf(decision_outcome = 'connect') AS connects,
        uniqIf(masking_session_id, masking_session_id != '') AS masking_sessions,
        countIf(decision_outcome IN ('out_of_session', 'forward')) AS out_of_session_calls,
        countIf(decision_source = 'fallback') AS fallbacks
    FROM callflow.call_events FINAL
    WHERE event_type = 'CALL_ACTION' AND event_time >= today() - 30 AND virtual_number != ''
    GROUP BY virtual_number, day
)
GLOBAL ANY LEFT JOIN
(
    SELECT
        msisdn AS virtual_number,
        argMax(operational_status, (updated_at, event_id)) AS last_status
    FROM callflow.number_status FINAL
    GROUP BY msisdn
) USING (virtual_number)
ORDER BY day DESC, connects DESC
LIMIT 500;

-- 12. Number health over time: each number's status per day from 8x8's
--     virtual number updates (the day's last report, and every status
--     reported that day), to chart a number going Unhealthy and back.
SELECT
    sub_account_id,
    msisdn,
    toDate(updated_at) AS day,
    argMax(operational_status, (updated_at, event_id)) AS day_end_status,
    groupUniqArray(operational_status) AS statuses_reported,
    max(updated_at) AS last_update
FROM callflow.number_status FINAL
GROUP BY sub_account_id, msisdn, day
ORDER BY sub_account_id, msisdn, day
LIMIT 1000;

-- 13. Pool health now: numbers per sub-account by each number's latest
--     reported status.
SELECT
    sub_account_id,
    latest_status,
    count() AS numbers,
    arraySlice(groupArray(msisdn), 1, 20) AS some_numbers
FROM
(
    SELECT
        sub_account_id,
        msisdn,
        argMax(operational_status, (updated_at, event_id)) AS latest_status
    FROM callflow.number_status FINAL
    GROUP BY sub_account_id, msisdn
)
GROUP BY sub_account_id, latest_status
ORDER BY sub_account_id, numbers DESC;

-- 14. Out-of-session callers by policy: calls from callers in no open
--     session on the number dialled, by whose policy answered them (the
--     number's own, its sub-account's, or the default) and what it did
--     (out_of_session: told and hung up; forward: connected elsewhere).
SELECT
    sub_account_id,
    out_of_session_policy AS policy,
    decision_outcome AS outcome,
    count() AS calls,
    uniq(source) AS callers,
    uniq(virtual_number) AS numbers_dialled,
    arraySlice(arrayFilter(n -> n != '', groupUniqArray(connected_to)), 1, 10) AS forwarded_to
FROM callflow.call_events FINAL
WHERE event_type = 'CALL_ACTION' AND decision_outcome IN ('out_of_session', 'forward')
GROUP BY sub_account_id, policy, outcome
ORDER BY calls DESC;

-- 15. The callers who call a virtual number most while in no session on
--     it (stale contacts, or abuse), per number and policy.
SELECT
    virtual_number,
    source AS caller,
    out_of_session_policy AS policy,
    count() AS calls,
    max(event_time) AS last_call
FROM callflow.call_events FINAL
WHERE event_type = 'CALL_ACTION' AND decision_outcome IN ('out_of_session', 'forward')
GROUP BY virtual_number, caller, policy
ORDER BY calls DESC
LIMIT 10 BY virtual_number
LIMIT 100;

-- 16. One masking session's whole story: its audit records (created,
--     ended, by whom) and every call routed to it, in time order.
SELECT
    event_time,
    event_type,
    decision_outcome,
    source,
    connected_to,
    virtual_number,
    session_id,
    raw
FROM callflow.call_events FINAL
WHERE masking_session_id = '5f1d0c6a2b7e4c1d9a8b3e2f4d6c8a10'
ORDER BY event_time, event_id;

-- 17. IVR funnel: per flow, version and step, the calls that reached the
--     step (an answer played its prompt, or connected or ended the call
--     there), the callers, the answers given there (more than calls: tries
--     asked again), and the share of the version's calls that got there.
--     flow_step is where the caller is after each answer (see schema.sql).
SELECT
    flow_id,
    flow_version,
    flow_step,
    calls,
    callers,
    answers,
    round(100 * calls / flow_calls, 1) AS percent_of_calls
FROM
(
    SELECT
        flow_id,
        flow_version,
        flow_step,
        uniq(call_id) AS calls,
        uniq(source) AS callers,
        count() AS answers
    FROM callflow.call_events FINAL
    WHERE event_type = 'CALL_ACTION' AND flow_id != ''
    GROUP BY flow_id, flow_version, flow_step
)
GLOBAL ANY LEFT JOIN
(
    SELECT flow_id, flow_version, uniq(call_id) AS flow_calls
    FROM callflow.call_events FINAL
    WHERE event_type = 'CALL_ACTION' AND flow_id != ''
    GROUP BY flow_id, flow_version
) USING (flow_id, flow_version)
ORDER BY flow_id, flow_version DESC, calls DESC, flow_step
LIMIT 1000;

-- 18. Where callers leave each flow: every call's last flow answer (by
--     callId), grouped by the step it was at and how the call left:
--     connected (a transfer, or a PIN or masking step that connected),
--     ended by the flow (a hangup step, or tries used up without an
--     onFailure), or left at the prompt (the caller hung up while asked,
--     or the call is still under way). With the answers and seconds the
--     calls spent in the flow.
SELECT
    last_flow AS flow_id,
    last_version AS flow_version,
    last_step,
    multiIf(last_outcome = 'connect', 'connected', last_hangup, 'ended by the flow', 'left at the prompt') AS left_by,
    count() AS calls,
    round(avg(answers), 1) AS avg_answers,
    round(avg(seconds), 1) AS avg_seconds_in_flow,
    arraySlice(groupArray(call_id), 1, 10) AS some_calls
FROM
(
    SELECT
        call_id,
        argMax(flow_id, (event_time, event_id)) AS last_flow,
        argMax(flow_version, (event_time, event_id)) AS last_version,
        argMax(flow_step, (event_time, event_id)) AS last_step,
        argMax(decision_outcome, (event_time, event_id)) AS last_outcome,
        argMax(position(callflow, '"action":"hangup"') > 0, (event_time, event_id)) AS last_hangup,
        count() AS answers,
        toUInt32(max(event_time)) - toUInt32(min(event_time)) AS seconds
    FROM callflow.call_events FINAL
    WHERE event_type = 'CALL_ACTION' AND flow_id != ''
    GROUP BY call_id
)
GROUP BY last_flow, last_version, last_step, left_by
ORDER BY last_flow, last_version DESC, calls DESC, last_step, left_by
LIMIT 1000;

-- 19. Digits chosen at each menu step, and where they led: the step asked
--     is the one in the clientActionId 8x8 echoed back (the previous
--     answer's flow state, flow:<flow>:<version>:<step>:<tries>), the
--     digits are what the caller pressed at it ('(none)': nothing before
--     the timeout), led_to the step answered next (the same step again:
--     not an option). A PIN step lists the PINs entered: leave it out
--     with AND parts[4] != '<step>' when that is not wanted.
SELECT
    parts[2] AS flow_id,
    toUInt64OrZero(parts[3]) AS flow_version,
    parts[4] AS asked_at,
    if(digits = '', '(none)', digits) AS pressed,
    flow_step AS led_to,
    count() AS times,
    uniq(call_id) AS calls
FROM
(
    SELECT splitByChar(':', client_action_id) AS parts, digits, flow_step, call_id
    FROM callflow.call_events FINAL
    WHERE event_type = 'CALL_ACTION' AND startsWith(client_action_id, 'flow:')
)
GROUP BY flow_id, flow_version, asked_at, pressed, led_to
ORDER BY flow_id, flow_version DESC, asked_at, times DESC, pressed, led_to
LIMIT 1000;
