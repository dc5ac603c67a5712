package archiver

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/callflow/callflow/wire"
)

// The row shapes of the archive benchmark (TestArchiveThroughput and its
// baseline, TestInsertBaseline): the same i gives the same record in both
// processes, its receivedAt aside.
const (
	// shapeBench is record's: short ids, a body of about 290 bytes and a
	// 55-byte callflow (a record of about 550 bytes).
	shapeBench = "bench"
	// shapeRealistic is what 8x8 sends and callflow answers: UUID ids, a
	// body of 600 to 730 bytes, a callflow of about 200 bytes, four calls
	// in five connected with a makeCall (so also written to
	// interaction_calls by its view); a record of about 1,200 bytes.
	shapeRealistic = "realistic"
)

// benchRecord is record i of a shape.
func benchRecord(shape string, i int) (subject, id string, data []byte) {
	if shape == shapeRealistic {
		return realisticRecord(i)
	}
	return record(i, wire.EventCallAction)
}

// uuidFor is a UUID-shaped id derived from i and a label.
func uuidFor(label string, i int) string {
	h := fnv.New128a()
	fmt.Fprintf(h, "%s-%d", label, i)
	b := h.Sum(nil)
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", binary.BigEndian.Uint32(b[0:4]), binary.BigEndian.Uint16(b[4:6]),
		binary.BigEndian.Uint16(b[6:8]), binary.BigEndian.Uint16(b[8:10]), b[10:16])
}

func realisticRecord(i int) (subject, id string, data []byte) {
	id = uuidFor("event", i)
	account := fmt.Sprintf("acme_voice_%02d", i%40)
	caller := fmt.Sprintf("+6591%06d", (i*7919)%1000000)
	virtual := fmt.Sprintf("+6560%06d", i%5000)
	callee := fmt.Sprintf("+6598%06d", (i*104729)%1000000)
	ts := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * 3 * time.Millisecond)
	body := fmt.Sprintf(`{"namespace":"VOICE","eventType":"CALL_ACTION","description":"Action request of a call","payload":{"eventId":%q,"callId":%q,"sessionId":%q,"subAccountId":%q,"callStatus":"CALL_RECEIVED","callDirection":"INBOUND","callType":"PSTN","source":%q,"destination":%q,"sourceFormat":"MSISDN","destinationFormat":"MSISDN","sourceCountryCode":"SG","destinationCountryCode":"SG","destinationRefId":%q,"callDuration":0,"sipCode":200,"timestamp":%q,"clientActionId":"%%s"}}`,
		id, uuidFor("call", i), uuidFor("session", i), account, caller, virtual, fmt.Sprintf("vn-%d", i%5000), ts.Format(time.RFC3339Nano))
	// A clientActionId of the length that brings the body to 600-730 bytes.
	want := 600 + (i*37)%131
	body = fmt.Sprintf(body, strings.Repeat("x", max(want-len(body)+2, 0)))
	masking := uuidFor("masking", i%20000)
	d := &wire.Decision{Source: wire.SourceDecider, Outcome: wire.OutcomeConnect, LatencyMicros: int64(300 + i%900),
		MaskingSessionID: masking, VirtualNumber: virtual,
		Callflow: fmt.Appendf(nil, `{"clientActionId":"mask:%s","callflow":[{"action":"makeCall","params":{"source":%q,"destination":%q,"callRecording":true}}]}`, masking, virtual, callee)}
	if i%5 == 4 {
		d = &wire.Decision{Source: wire.SourceDecider, Outcome: wire.OutcomeOutOfSession, LatencyMicros: int64(300 + i%900),
			VirtualNumber: virtual, Policy: wire.PolicySubAccount,
			Callflow: []byte(`{"clientActionId":"oos","callflow":[{"action":"say","params":{"text":"The number you have dialled is no longer in use. Please check the number and try again.","language":"en-US","voiceProfile":"en-US-Standard-C"}},{"action":"hangup"}]}`)}
	}
	rec := wire.Record{Version: wire.RecordVersion, ID: id, EventType: wire.EventCallAction, ReceivedAt: time.Now(), Instance: "ingest-7f9c", Decision: d, Event: []byte(body)}
	return wire.Subject(wire.EventCallAction, account), id, rec.AppendJSON(nil)
}
