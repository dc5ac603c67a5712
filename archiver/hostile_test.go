package archiver

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Strings that reach ClickHouse are values of a typed batch, never SQL:
// quotes, comment markers, statement separators, backslashes, NUL and
// invalid UTF-8 in any field are stored and read back as the bytes sent,
// and the tables are intact afterwards. An audit record of the admin API
// is archived beside the calls.
func TestHostileValuesStoredInertly(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	hostile := []string{
		`'; DROP TABLE call_events; --`,
		`\'); SELECT 1; --`,
		"back\\slash and \"quotes\" and `ticks`",
		"nul\u0000byte",
		"tab\tnewline\ncr\r",
		"{{ $labels }} ${VAR} %s %n",
		"ユニコード ☎",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, h := range hostile {
		payload := map[string]any{
			"eventId": fmt.Sprintf("hostile-%d", i), "callId": h, "sessionId": h, "subAccountId": h,
			"callStatus": h, "source": h, "destination": h, "clientActionId": h,
		}
		body, err := json.Marshal(map[string]any{"namespace": "VOICE", "eventType": wire.EventCallStatus, "payload": payload})
		if err != nil {
			t.Fatal(err)
		}
		rec := wire.Record{Version: wire.RecordVersion, ID: fmt.Sprintf("hostile-%d", i), EventType: wire.EventCallStatus,
			ReceivedAt: time.Now(), Instance: h, Event: body}
		if _, err := e.js.Publish(ctx, wire.Subject(wire.EventCallStatus, h), rec.AppendJSON(nil), jetstream.WithMsgID(rec.ID)); err != nil {
			t.Fatal(err)
		}
	}
	audit := wire.Audit{ID: "audit-1", Timestamp: time.Now().UTC(), Operation: wire.AuditCreate, SessionID: "s-'1",
		VirtualNumber: "+6512345678", Participants: []string{"+6511111111", "+6522222222"}, Actor: wire.Actor{Token: "sha256:abc", Address: "10.0.0.1"}}
	arec := wire.Record{Version: wire.RecordVersion, ID: audit.ID, EventType: wire.EventSessionAudit, ReceivedAt: time.Now(), Instance: "i", Event: audit.Event()}
	if _, err := e.js.Publish(ctx, wire.AuditSubject(wire.AuditCreate), arec.AppendJSON(nil), jetstream.WithMsgID(audit.ID)); err != nil {
		t.Fatal(err)
	}

	_, stop := e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events FINAL", uint64(len(hostile)+1))
	stop()
	for i, h := range hostile {
		var callID, session, sub, status, src, dst, action, instance string
		err := e.ch.QueryRow(context.Background(), "SELECT call_id, session_id, sub_account_id, call_status, source, destination, client_action_id, instance FROM "+
			e.db+".call_events FINAL WHERE event_id = ?", fmt.Sprintf("hostile-%d", i)).Scan(&callID, &session, &sub, &status, &src, &dst, &action, &instance)
		if err != nil {
			t.Fatalf("hostile-%d: %v", i, err)
		}
		for name, got := range map[string]string{"call_id": callID, "session_id": session, "sub_account_id": sub, "call_status": status,
			"source": src, "destination": dst, "client_action_id": action, "instance": instance} {
			if got != h {
				t.Errorf("hostile-%d %s = %q, want %q", i, name, got, h)
			}
		}
	}
	if n := e.count(t, "SELECT count() FROM DB.rejected_records"); n != 0 {
		t.Errorf("%d records set aside, want none", n)
	}
	var session, raw string
	if err := e.ch.QueryRow(context.Background(), "SELECT session_id, raw FROM "+e.db+".call_events FINAL WHERE event_type = 'SESSION_AUDIT'").Scan(&session, &raw); err != nil {
		t.Fatalf("audit row: %v", err)
	}
	if session != "s-'1" || raw != string(audit.Event()) {
		t.Errorf("audit row: session %q raw %s", session, raw)
	}
}
