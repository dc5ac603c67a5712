package bench

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of webhook a request carries.
type Kind uint8

// Kinds of webhook, as mixed by Mix.
const (
	// KindInSession is a CALL_ACTION from a session participant to the
	// session's virtual number: it should be connected (makeCall).
	KindInSession Kind = iota
	// KindOutOfSession is a CALL_ACTION from a number in no session: it
	// should get the out-of-session answer.
	KindOutOfSession
	// KindStatus is a CALL_STATUS event.
	KindStatus
	// KindSummary is a SESSION_SUMMARY event (without an eventId, as 8x8
	// sends them: its record id is the ingestor's hash of the body).
	KindSummary
	numKinds
)

var kindNames = [numKinds]string{"in_session", "out_of_session", "status", "summary"}

// String names the traffic kind as reports do.
func (k Kind) String() string { return kindNames[k] }

// IsCall reports whether the webhook is a CALL_ACTION, answered with a
// callflow.
func (k Kind) IsCall() bool { return k == KindInSession || k == KindOutOfSession }

// Session is a masking session the tool creates: numbers as +digits.
type Session struct {
	VirtualNumber string
	Participants  [2]string
}

// Numbers are 15 digits: "99", a role digit, the run's 7-digit tag and a
// 5-digit index, so that every run has its own (no 409 from a session of
// an earlier run still open) and participants, strangers and virtual
// numbers never coincide. +99x is outside every assigned country code.
const (
	roleVirtual  = '1'
	roleA        = '2'
	roleB        = '3'
	roleStranger = '4'
)

// runTag is the 7-digit number of a run id used in its phone numbers.
func runTag(runID string) string {
	h := fnv.New64a()
	h.Write([]byte(runID))
	return fmt.Sprintf("%07d", h.Sum64()%10_000_000)
}

func appendNumber(dst []byte, role byte, tag string, index uint64) []byte {
	dst = append(dst, '+', '9', '9', role)
	dst = append(dst, tag...)
	var d [5]byte
	index %= 100_000
	for i := 4; i >= 0; i-- {
		d[i] = byte('0' + index%10)
		index /= 10
	}
	return append(dst, d[:]...)
}

// MakeSessions returns n sessions with numbers distinct to the run.
func MakeSessions(runID string, n int) []Session {
	tag := runTag(runID)
	out := make([]Session, n)
	for i := range out {
		out[i] = Session{
			VirtualNumber: string(appendNumber(nil, roleVirtual, tag, uint64(i))),
			Participants: [2]string{
				string(appendNumber(nil, roleA, tag, uint64(i))),
				string(appendNumber(nil, roleB, tag, uint64(i))),
			},
		}
	}
	return out
}

// Body templates: @ID@ is the event id (bench-<run>-<n>), @SRC@, @DST@
// and @VN@ are numbers; @TS@ is fixed at the run's start. The timestamp is
// the same for all requests of a run so that any body can be rebuilt from
// its index alone (the audit does, to know the record id of a summary).
const (
	callActionTemplate = `{"namespace":"VOICE","eventType":"CALL_ACTION","description":"Action request of a call",` +
		`"payload":{"eventId":"@ID@","callId":"@ID@-call","sessionId":"@ID@-vcs","subAccountId":"bench",` +
		`"callStatus":"CALL_RECEIVED","callDirection":"INBOUND","callType":"PSTN","source":"@SRC@","destination":"@DST@",` +
		`"sourceFormat":"MSISDN","destinationFormat":"MSISDN","sourceCountryCode":"SG","destinationCountryCode":"SG",` +
		`"destinationRefId":"vn-ref-1","callDuration":0,"sipCode":200,"timestamp":"@TS@"}}`
	callStatusTemplate = `{"namespace":"VOICE","eventType":"CALL_STATUS","description":"Call status update",` +
		`"payload":{"eventId":"@ID@","callId":"@ID@-call","sessionId":"@ID@-vcs","subAccountId":"bench",` +
		`"callStatus":"CALL_DISCONNECTED","callDirection":"OUTBOUND","callType":"PSTN","source":"@VN@","destination":"@DST@",` +
		`"sourceFormat":"MSISDN","destinationFormat":"MSISDN","sourceCountryCode":"SG","destinationCountryCode":"SG",` +
		`"destinationRefId":"vn-ref-1","callDuration":37,"sipCode":200,"timestamp":"@TS@"}}`
	summaryTemplate = `{"namespace":"VOICE","eventType":"SESSION_SUMMARY","description":"Session summary",` +
		`"payload":{"sessionId":"@ID@","subAccountId":"bench","sessionStatus":"COMPLETED","startTime":"@TS@","endTime":"@TS@",` +
		`"lastAction":"makeCall","callCount":2,"details":{` +
		`"callA":{"callId":"@ID@-a","callDirection":"INBOUND","callType":"PSTN","initiatedTimestamp":"@TS@",` +
		`"connectedTimestamp":"@TS@","disconnectedTimestamp":"@TS@","source":"@SRC@","destination":"@VN@","callDuration":38,"sipCode":200},` +
		`"callB":{"callId":"@ID@-b","callDirection":"OUTBOUND","callType":"PSTN","initiatedTimestamp":"@TS@",` +
		`"connectedTimestamp":"@TS@","disconnectedTimestamp":"@TS@","source":"@VN@","destination":"@DST@","callDuration":37,"sipCode":200}}}}`
)

type slot uint8

const (
	slotID slot = iota
	slotSrc
	slotDst
	slotVN
)

var slotNames = map[string]slot{"@ID@": slotID, "@SRC@": slotSrc, "@DST@": slotDst, "@VN@": slotVN}

// template is a body split at its slots: lits[0] slot[0] lits[1] ... lits[n].
type template struct {
	lits  [][]byte
	slots []slot
}

func compileTemplate(s, ts string) template {
	s = strings.ReplaceAll(s, "@TS@", ts)
	var t template
	for {
		i := strings.IndexByte(s, '@')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i+1:], '@')
		name := s[i : i+j+2]
		sl, ok := slotNames[name]
		if !ok {
			panic("bench: unknown template slot " + name)
		}
		t.lits = append(t.lits, []byte(s[:i]))
		t.slots = append(t.slots, sl)
		s = s[i+j+2:]
	}
	t.lits = append(t.lits, []byte(s))
	return t
}

type slotValues [4][]byte

func (t *template) append(dst []byte, v *slotValues) []byte {
	for i, sl := range t.slots {
		dst = append(dst, t.lits[i]...)
		dst = append(dst, v[sl]...)
	}
	return append(dst, t.lits[len(t.lits)-1]...)
}

// Traffic generates the request bodies of a run. Body n is a pure function
// of the run id, the sessions, the mix and n, so it can be rebuilt later;
// Append allocates nothing. Safe for concurrent use.
type Traffic struct {
	runID      string
	idPrefix   []byte // bench-<run>-
	tag        string
	seed       uint64
	sessions   []Session
	sessNums   [][3][]byte // virtual, A, B
	thresholds [numKinds]uint64
	tmpl       [numKinds]template
}

// NewTraffic returns the generator of a run started at start. With no
// sessions, the in-session share goes to out-of-session calls.
func NewTraffic(runID string, start time.Time, sessions []Session, mix Mix) (*Traffic, error) {
	if err := mix.validate(); err != nil {
		return nil, err
	}
	if len(sessions) == 0 {
		mix.OutOfSession += mix.InSession
		mix.InSession = 0
	}
	t := &Traffic{runID: runID, idPrefix: []byte("bench-" + runID + "-"), tag: runTag(runID), sessions: sessions}
	h := fnv.New64a()
	h.Write([]byte(runID))
	t.seed = h.Sum64()
	for _, s := range sessions {
		t.sessNums = append(t.sessNums, [3][]byte{[]byte(s.VirtualNumber), []byte(s.Participants[0]), []byte(s.Participants[1])})
	}
	weights := [numKinds]float64{mix.InSession, mix.OutOfSession, mix.Status, mix.Summary}
	var sum, cum float64
	for _, w := range weights {
		sum += w
	}
	for k, w := range weights {
		cum += w
		t.thresholds[k] = uint64(cum / sum * (1 << 53))
	}
	// Everything beyond the last non-zero weight (rounding) goes to it.
	for k := int(numKinds) - 1; k >= 0; k-- {
		if weights[k] > 0 {
			t.thresholds[k] = 1 << 53
			break
		}
	}
	ts := start.UTC().Truncate(time.Second).Format(time.RFC3339)
	t.tmpl[KindInSession] = compileTemplate(callActionTemplate, ts)
	t.tmpl[KindOutOfSession] = t.tmpl[KindInSession]
	t.tmpl[KindStatus] = compileTemplate(callStatusTemplate, ts)
	t.tmpl[KindSummary] = compileTemplate(summaryTemplate, ts)
	return t, nil
}

// RunID is the run id of the traffic.
func (t *Traffic) RunID() string { return t.runID }

// IDPrefix is the prefix of every event id of the run: bench-<run>-.
func (t *Traffic) IDPrefix() string { return string(t.idPrefix) }

// splitmix64 is the finalizer of SplitMix64: a cheap, well-mixed hash.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Kind is the kind of request n.
func (t *Traffic) Kind(n uint64) Kind {
	u := splitmix64(t.seed^n) >> 11
	for k := range numKinds {
		if u < t.thresholds[k] {
			return Kind(k)
		}
	}
	return numKinds - 1
}

// AppendID appends the event id of request n (for summaries: the id put
// in their sessionId; their record id is a hash of the body).
func (t *Traffic) AppendID(dst []byte, n uint64) []byte {
	dst = append(dst, t.idPrefix...)
	return strconv.AppendUint(dst, n, 10)
}

// Append appends the body of request n and returns it with its kind.
func (t *Traffic) Append(dst []byte, n uint64) ([]byte, Kind) {
	kind := t.Kind(n)
	r := splitmix64(t.seed ^ n ^ 0x5bd1e9955bd1e995)
	var idBuf [64]byte
	var strangerBuf, vnBuf [16]byte
	var v slotValues
	v[slotID] = t.AppendID(idBuf[:0], n)
	var vn, a, b []byte
	if len(t.sessNums) > 0 {
		s := &t.sessNums[(r>>8)%uint64(len(t.sessNums))]
		vn, a, b = s[0], s[1], s[2]
		if r&1 == 1 {
			a, b = b, a
		}
	} else {
		// No sessions: numbers nobody holds a session on.
		vn = appendNumber(vnBuf[:0], roleVirtual, t.tag, r>>8)
		a = appendNumber(strangerBuf[:0], roleStranger, t.tag, r>>24)
		b = a
	}
	switch kind {
	case KindInSession:
		v[slotSrc], v[slotDst] = a, vn
	case KindOutOfSession:
		v[slotSrc], v[slotDst] = appendNumber(strangerBuf[:0], roleStranger, t.tag, r>>24), vn
	case KindStatus:
		v[slotVN], v[slotDst] = vn, b
	case KindSummary:
		v[slotSrc], v[slotVN], v[slotDst] = a, vn, b
	}
	return t.tmpl[kind].append(dst, &v), kind
}

// appendCall appends a CALL_ACTION with the given event id from src to dst.
func (t *Traffic) appendCall(dst []byte, id, src, to string) []byte {
	var v slotValues
	v[slotID], v[slotSrc], v[slotDst] = []byte(id), []byte(src), []byte(to)
	return t.tmpl[KindInSession].append(dst, &v)
}
