package archiver

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ErrInvalidQuery is wrapped by errors about what was asked of History (a
// limit out of range, a cursor it did not write, no session id), as opposed
// to ClickHouse failing to answer.
var ErrInvalidQuery = errors.New("invalid history query")

// Page sizes of Interactions.
const (
	DefaultInteractionsLimit = 100
	MaxInteractionsLimit     = 1000
)

// History reads call history from the archive for the admin API.
type History struct {
	conn    driver.Conn
	db      string
	timeout time.Duration
}

// OpenHistory connects to the archive's ClickHouse (lazily, as Connect
// does) with the archiver's defaults for what cfg leaves unset. It reads
// the tables the archiver creates; before an archiver has run against the
// database, queries fail.
func OpenHistory(cfg ClickHouseConfig) (*History, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	conn, err := Connect(cfg)
	if err != nil {
		return nil, err
	}
	return &History{conn: conn, db: cfg.Database, timeout: cfg.QueryTimeout}, nil
}

// Close closes the ClickHouse connections.
func (h *History) Close() error { return h.conn.Close() }

// Check reports whether ClickHouse answers, for readiness probes.
func (h *History) Check(ctx context.Context) error {
	if err := h.conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	return nil
}

// Interaction is one call of a masking session: one 8x8 call session whose
// call action callflow routed to the masking session, with what 8x8 later
// reported about it.
type Interaction struct {
	// MaskingSessionID is callflow's session the call was routed to.
	MaskingSessionID string `json:"maskingSessionId"`
	// SessionID is 8x8's call session; CallID the caller's call leg.
	SessionID string `json:"sessionId"`
	CallID    string `json:"callId"`
	// SubAccountID is the 8x8 sub-account of the call.
	SubAccountID string `json:"subAccountId"`
	// Caller is the number that called (the call action's source); Callee
	// the number it was connected to (the makeCall destination); both as
	// +digits when they are numbers.
	Caller string `json:"caller"`
	Callee string `json:"callee"`
	// VirtualNumber is the masking number dialled.
	VirtualNumber string `json:"virtualNumber"`
	// StartedAt is the call action's time (8x8's timestamp, seconds).
	StartedAt time.Time `json:"startedAt"`
	// EndedAt is the session's end from 8x8's session summary; nil until
	// the summary arrived.
	EndedAt *time.Time `json:"endedAt"`
	// Answered: the callee's leg connected (8x8's call status), or, where
	// call statuses are not sent, the session summary says COMPLETED.
	Answered bool `json:"answered"`
	// TalkSeconds is the callee leg's call duration from its
	// CALL_DISCONNECTED status; where call statuses are not sent, the
	// session summary's end minus start (which includes ringing). 0 when
	// not answered.
	TalkSeconds uint32 `json:"talkSeconds"`
	// Outcome is 8x8's session status (COMPLETED, NO_ANSWER, BUSY,
	// CANCELED, FAILED, ERROR) once the session summary arrived, until then
	// callflow's decision (connect).
	Outcome string `json:"outcome"`
	// Decision is callflow's decision outcome for the call action.
	Decision string `json:"decision"`
}

// InteractionPage is a page of a masking session's interactions, newest
// first, as the admin API returns it.
type InteractionPage struct {
	// Interactions is never nil: an empty page encodes as [].
	Interactions []Interaction `json:"interactions"`
	// NextCursor fetches the next page; nil on the last one.
	NextCursor *string `json:"nextCursor"`
}

// interactionsSQL is the interactions of the masking session bound to
// @masking_session, one row per 8x8 call session; deploy/clickhouse/queries.sql
// holds the same query for analysts (a test keeps them equal).
//
// It runs on ClickHouse 18.16 (one GLOBAL ANY LEFT JOIN ... USING per SELECT, no
// window functions) and on current releases, and gives the same answer
// with any record archived more than once: the left side groups the call
// actions by 8x8 session and takes the first (argMin by event time and id),
// the right side takes 8x8's call statuses as a set (groupUniqArray) and the
// latest session summary (argMaxIf).
//
// The left side is read by key from interaction_calls. The right side reads
// call_events, whose key is (sub_account_id, event_type, event_time, ...):
// the scalar subqueries bound it to the session's sub-accounts (and the
// empty one, for statuses that name none), the two event types, and the
// span of its calls (from an hour before the first, for clocks that
// differ, to a day after the last: a call and its summary end within it),
// so ClickHouse reads the granules of that span only. A table of statuses
// sorted by 8x8 session, filled by a materialized view, would make this a
// key lookup too, but cost every insert about a quarter more ClickHouse
// CPU (measured on 18.16: statuses are most of the records), and a history
// read is rare beside them.
//
// No alias repeats a column name, which the old and the new query
// analyzers resolve differently. The lambdas get the caller's leg as an
// argument (replicate) rather than capturing first_call_id: 18.16 drops a
// joined subquery's column that only a lambda captures when the query
// around does not select it ("Unknown identifier").
//
// Answered: a leg of the 8x8 session other than the caller's (the callee's,
// which 8x8 opened with the makeCall) reached CALL_CONNECTED; the caller's
// own leg is connected for any answer, a say included, so it does not
// count. Without call statuses (no VCS webhook configured), a COMPLETED
// session summary of a call that was connected counts.
//
// Talk time: the callee leg's callDuration from its CALL_DISCONNECTED
// status. A leg's callDuration is its connected time, and the callee's leg
// is connected only from the callee's answer to the hangup, so it is the
// conversation itself; the caller's leg is connected earlier (8x8 answers
// it to play ringback or an announcement), and the session summary's
// endTime - startTime counts the whole 8x8 session, ringing included. The
// summary's span is used only when no call status came: it is the best
// figure there is then, and an upper bound.
const interactionsSQL = `SELECT
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
    FROM {database}.interaction_calls
    WHERE masking_session_id = @masking_session
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
    FROM {database}.call_events
    WHERE (sub_account_id = '' OR sub_account_id GLOBAL IN (SELECT sub_account_id FROM {database}.interaction_calls WHERE masking_session_id = @masking_session))
        AND event_type IN ('CALL_STATUS', 'SESSION_SUMMARY')
        AND event_time >= (SELECT min(event_time) FROM {database}.interaction_calls WHERE masking_session_id = @masking_session) - 3600
        AND event_time <= (SELECT max(event_time) FROM {database}.interaction_calls WHERE masking_session_id = @masking_session) + 86400
        AND session_id GLOBAL IN (SELECT session_id FROM {database}.interaction_calls WHERE masking_session_id = @masking_session)
    GROUP BY session_id
) USING (session_id)`

// InteractionsSQL returns the interactions query for database, with the
// masking session as the bound parameter @masking_session.
func InteractionsSQL(database string) string {
	return strings.ReplaceAll(interactionsSQL, "{database}", database)
}

// interactionsPage wraps the interactions query: newest first, after the
// cursor's position when there is one (keyset paging on start time and 8x8
// session id, so rows arriving meanwhile shift no page).
func (h *History) interactionsPage(after bool) string {
	var b strings.Builder
	// The flags are cast to UInt8: what a logical expression returns is
	// UInt8 on 18.16, and a release may make it Bool.
	b.WriteString(`SELECT masking_session_id, session_id, call_id, sub_account_id, caller, callee, virtual_number, decision,
    started_at, toUInt8(summarized), ended_at, toUInt8(answered), talk_seconds, outcome
FROM
(
`)
	b.WriteString(InteractionsSQL(h.db))
	b.WriteString("\n)\n")
	if after {
		b.WriteString("WHERE (toUInt32(started_at) < @after_time) OR ((toUInt32(started_at) = @after_time) AND (session_id < @after_session))\n")
	}
	b.WriteString("ORDER BY started_at DESC, session_id DESC\nLIMIT @limit")
	return b.String()
}

// Interactions returns a page of the interactions of the masking session
// maskingSessionID, newest first: at most limit of them (0 means
// DefaultInteractionsLimit; more than MaxInteractionsLimit is refused),
// after the position cursor names ("" for the first page; else the
// NextCursor of the page before). A session without interactions, or that
// does not exist, gives an empty page. Errors about the arguments wrap
// ErrInvalidQuery; any other error means the archive did not answer.
func (h *History) Interactions(ctx context.Context, maskingSessionID string, limit int, cursor string) (InteractionPage, error) {
	page := InteractionPage{Interactions: []Interaction{}}
	switch {
	case maskingSessionID == "" || len(maskingSessionID) > 128:
		return page, fmt.Errorf("%w: a masking session id of 1 to 128 bytes is required", ErrInvalidQuery)
	case limit < 0 || limit > MaxInteractionsLimit:
		return page, fmt.Errorf("%w: limit %d: want 1 to %d", ErrInvalidQuery, limit, MaxInteractionsLimit)
	case limit == 0:
		limit = DefaultInteractionsLimit
	}
	args := []any{clickhouse.Named("masking_session", maskingSessionID), clickhouse.Named("limit", limit+1)}
	if cursor != "" {
		t, sid, err := decodeCursor(cursor)
		if err != nil {
			return page, err
		}
		args = append(args, clickhouse.Named("after_time", t), clickhouse.Named("after_session", sid))
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	rows, err := h.conn.Query(ctx, h.interactionsPage(cursor != ""), args...)
	if err != nil {
		return page, fmt.Errorf("interactions of %s: %w", maskingSessionID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			in                   Interaction
			ended                time.Time
			summarized, answered uint8
		)
		if err := rows.Scan(&in.MaskingSessionID, &in.SessionID, &in.CallID, &in.SubAccountID, &in.Caller, &in.Callee,
			&in.VirtualNumber, &in.Decision, &in.StartedAt, &summarized, &ended, &answered, &in.TalkSeconds, &in.Outcome); err != nil {
			return page, fmt.Errorf("interactions of %s: %w", maskingSessionID, err)
		}
		in.StartedAt = in.StartedAt.UTC()
		if summarized == 1 && ended.Unix() > 0 {
			ended = ended.UTC()
			in.EndedAt = &ended
		}
		in.Answered = answered == 1
		in.Caller = normalized(in.Caller)
		page.Interactions = append(page.Interactions, in)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("interactions of %s: %w", maskingSessionID, err)
	}
	if len(page.Interactions) > limit {
		page.Interactions = page.Interactions[:limit]
		last := page.Interactions[limit-1]
		next := encodeCursor(last.StartedAt, last.SessionID)
		page.NextCursor = &next
	}
	return page, nil
}

// A cursor is opaque to clients: "i1:" + start time in Unix seconds + ":"
// + 8x8 session id, in unpadded URL-safe base64.
const cursorPrefix = "i1:"

func encodeCursor(t time.Time, sessionID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(t.Unix(), 10) + ":" + sessionID))
}

func decodeCursor(c string) (uint32, string, error) {
	bad := fmt.Errorf("%w: cursor %q was not written by this server", ErrInvalidQuery, c)
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", bad
	}
	rest, ok := strings.CutPrefix(string(b), cursorPrefix)
	if !ok {
		return 0, "", bad
	}
	ts, sid, ok := strings.Cut(rest, ":")
	t, err := strconv.ParseUint(ts, 10, 32)
	if !ok || err != nil {
		return 0, "", bad
	}
	return uint32(t), sid, nil
}
