package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Numbers used throughout: a virtual number and participants, as +digits.
const (
	vn1 = "+6598765432"
	vn2 = "+6598765433"
	pA  = "+6512345678"
	pB  = "+6587654321"
	pC  = "+6511112222"
	pD  = "+6533334444"
)

// testCtx bounds every storage call of a test.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startJS starts a real in-process NATS server with JetStream and connects.
func startJS(t testing.TB) jetstream.JetStream {
	t.Helper()
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	return js
}

// openStore opens a Store that is closed when t ends.
func openStore(t testing.TB, js jetstream.JetStream, cfg session.Config) *session.Store {
	t.Helper()
	st, err := session.Open(testCtx(t), js, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

func mustCreate(t testing.TB, st *session.Store, req session.Request) session.Session {
	t.Helper()
	s, err := st.Create(testCtx(t), req)
	if err != nil {
		t.Fatalf("Create(%+v): %v", req, err)
	}
	return s
}

func TestRequestValidation(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})

	long := strings.Repeat("a", 1001)
	tests := []struct {
		name string
		req  session.Request
		// On success: the normalized fields expected.
		wantVN    string
		wantParts [2]string
		// On failure: a word the error must contain (the field).
		wantErr string
	}{
		{name: "minimal", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}},
			wantVN: vn1, wantParts: [2]string{pA, pB}},
		{name: "typed numbers are cleaned", req: session.Request{VirtualNumber: "+65 9876-5432", Participants: []string{"(65) 1234.5678", " +65 8765 4321 "}},
			wantVN: vn1, wantParts: [2]string{pA, pB}},
		{name: "numbers without plus", req: session.Request{VirtualNumber: "6598765432", Participants: []string{"6512345678", "6587654321"}},
			wantVN: vn1, wantParts: [2]string{pA, pB}},
		{name: "8 and 15 digits", req: session.Request{VirtualNumber: "+12345678", Participants: []string{"+123456789012345", pB}},
			wantVN: "+12345678", wantParts: [2]string{"+123456789012345", pB}},
		{name: "ttl at MaxTTL", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLSeconds: int64(session.MaxTTL / time.Second)},
			wantVN: vn1, wantParts: [2]string{pA, pB}},

		{name: "virtual number with letters", req: session.Request{VirtualNumber: "+65ABCD5432", Participants: []string{pA, pB}}, wantErr: "virtualNumber"},
		{name: "virtual number too short", req: session.Request{VirtualNumber: "+1234567", Participants: []string{pA, pB}}, wantErr: "virtualNumber"},
		{name: "virtual number too long", req: session.Request{VirtualNumber: "+1234567890123456", Participants: []string{pA, pB}}, wantErr: "virtualNumber"},
		{name: "virtual number leading 0", req: session.Request{VirtualNumber: "+0598765432", Participants: []string{pA, pB}}, wantErr: "virtualNumber"},
		{name: "virtual number missing", req: session.Request{Participants: []string{pA, pB}}, wantErr: "virtualNumber"},
		{name: "virtual number double plus", req: session.Request{VirtualNumber: "++6598765432", Participants: []string{pA, pB}}, wantErr: "virtualNumber"},
		{name: "no participants", req: session.Request{VirtualNumber: vn1}, wantErr: "participants"},
		{name: "one participant", req: session.Request{VirtualNumber: vn1, Participants: []string{pA}}, wantErr: "participants"},
		{name: "three participants", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, pB, pC}}, wantErr: "participants"},
		{name: "participant with letters", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, "anonymous"}}, wantErr: "participants[1]"},
		{name: "participant too short", req: session.Request{VirtualNumber: vn1, Participants: []string{"123", pB}}, wantErr: "participants[0]"},
		{name: "participant leading 0", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, "06587654321"}}, wantErr: "participants[1]"},
		{name: "participant empty", req: session.Request{VirtualNumber: vn1, Participants: []string{"", pB}}, wantErr: "participants[0]"},
		{name: "same participant twice", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, pA}}, wantErr: "participants"},
		{name: "same participant after cleaning", req: session.Request{VirtualNumber: vn1, Participants: []string{"+65 1234 5678", "6512345678"}}, wantErr: "participants"},
		{name: "participant is the virtual number", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, vn1}}, wantErr: "participants[1]"},
		{name: "participant is the virtual number after cleaning", req: session.Request{VirtualNumber: vn1, Participants: []string{"65-9876-5432", pB}}, wantErr: "participants[0]"},
		{name: "ttl negative", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLSeconds: -1}, wantErr: "ttlSeconds"},
		{name: "ttl beyond MaxTTL", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLSeconds: int64(session.MaxTTL/time.Second) + 1}, wantErr: "ttlSeconds"},
		{name: "ttl that overflows a Duration", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLSeconds: 10_000_000_000}, wantErr: "ttlSeconds"},
		{name: "ttl that wraps to a small positive Duration", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, TTLSeconds: 18446744074}, wantErr: "ttlSeconds"},
		{name: "greeting without text", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, Greeting: &wire.Say{VoiceProfile: "en-US-ZiraRUS"}}, wantErr: "greeting"},
		{name: "greeting negative repetition", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, Greeting: &wire.Say{Text: "hi", Repetition: -1}}, wantErr: "greeting"},
		{name: "greeting negative speed", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, Greeting: &wire.Say{Text: "hi", Speed: -1}}, wantErr: "greeting"},
		{name: "greeting too long", req: session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, Greeting: &wire.Say{Text: long}}, wantErr: "greeting.text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.Create(testCtx(t), tt.req)
			if tt.wantErr != "" {
				if !errors.Is(err, session.ErrInvalid) {
					t.Fatalf("Create error = %v, want ErrInvalid", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not name %q", err, tt.wantErr)
				}
				if got.ID != "" {
					t.Errorf("Create returned a session %+v with its error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			// Free the numbers for the next case.
			t.Cleanup(func() {
				if _, err := st.Delete(context.Background(), got.ID); err != nil {
					t.Errorf("Delete: %v", err)
				}
			})
			if !session.ValidID(got.ID) {
				t.Errorf("ID %q is not a valid id", got.ID)
			}
			if got.VirtualNumber != tt.wantVN || got.Participants != tt.wantParts {
				t.Errorf("got %s %v, want %s %v", got.VirtualNumber, got.Participants, tt.wantVN, tt.wantParts)
			}
		})
	}
}

func TestCreateFields(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	ctx := testCtx(t)

	tests := []struct {
		name        string
		req         session.Request
		wantTTL     int64
		wantGreet   *wire.Say
		wantRecord  bool
		wantExpires bool
	}{
		{name: "no ttl no greeting", req: session.Request{Participants: []string{pA, pB}}},
		{name: "ttl", req: session.Request{Participants: []string{pA, pB}, TTLSeconds: 3600}, wantTTL: 3600, wantExpires: true},
		{name: "recording", req: session.Request{Participants: []string{pA, pB}, CallRecording: true}, wantRecord: true},
		{name: "greeting gets the default voice", req: session.Request{Participants: []string{pA, pB}, Greeting: &wire.Say{Text: "Connecting you"}},
			wantGreet: &wire.Say{Text: "Connecting you", VoiceProfile: session.DefaultVoiceProfile}},
		{name: "greeting keeps its voice", req: session.Request{Participants: []string{pA, pB}, Greeting: &wire.Say{Text: "Hola", VoiceProfile: "es-ES-HelenaRUS", Language: "es-ES", Repetition: 2, Speed: 1.5}},
			wantGreet: &wire.Say{Text: "Hola", VoiceProfile: "es-ES-HelenaRUS", Language: "es-ES", Repetition: 2, Speed: 1.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.VirtualNumber = vn1
			var greetIn wire.Say
			if tt.req.Greeting != nil {
				greetIn = *tt.req.Greeting
			}
			before := time.Now().UTC()
			got := mustCreate(t, st, tt.req)
			defer func() {
				if _, err := st.Delete(ctx, got.ID); err != nil {
					t.Errorf("Delete: %v", err)
				}
			}()
			if tt.req.Greeting != nil && *tt.req.Greeting != greetIn {
				t.Errorf("Create modified the request's greeting: %+v", *tt.req.Greeting)
			}
			if got.CreatedAt.Before(before.Add(-time.Second)) || got.CreatedAt.After(time.Now().Add(time.Second)) {
				t.Errorf("CreatedAt %v not about now", got.CreatedAt)
			}
			if got.CreatedAt.Location() != time.UTC {
				t.Errorf("CreatedAt %v not in UTC", got.CreatedAt)
			}
			if got.TTLSeconds != tt.wantTTL {
				t.Errorf("TTLSeconds = %d, want %d", got.TTLSeconds, tt.wantTTL)
			}
			if tt.wantExpires {
				if got.ExpiresAt == nil || !got.ExpiresAt.Equal(got.CreatedAt.Add(time.Duration(tt.wantTTL)*time.Second)) {
					t.Errorf("ExpiresAt = %v, want CreatedAt+%ds", got.ExpiresAt, tt.wantTTL)
				}
			} else if got.ExpiresAt != nil {
				t.Errorf("ExpiresAt = %v, want nil", got.ExpiresAt)
			}
			if got.CallRecording != tt.wantRecord {
				t.Errorf("CallRecording = %v", got.CallRecording)
			}
			switch {
			case tt.wantGreet == nil && got.Greeting != nil:
				t.Errorf("Greeting = %+v, want none", *got.Greeting)
			case tt.wantGreet != nil && (got.Greeting == nil || *got.Greeting != *tt.wantGreet):
				t.Errorf("Greeting = %+v, want %+v", got.Greeting, *tt.wantGreet)
			}
			// What Get reads back from the bucket is what Create returned.
			back, err := st.Get(ctx, got.ID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !sameSession(back, got) {
				t.Errorf("Get = %+v, want %+v", back, got)
			}
		})
	}
}

// sameSession compares sessions field by field (times with Equal).
func sameSession(a, b session.Session) bool {
	if a.ID != b.ID || a.VirtualNumber != b.VirtualNumber || a.Participants != b.Participants ||
		a.CallRecording != b.CallRecording || a.TTLSeconds != b.TTLSeconds || !a.CreatedAt.Equal(b.CreatedAt) {
		return false
	}
	if (a.Greeting == nil) != (b.Greeting == nil) || (a.Greeting != nil && *a.Greeting != *b.Greeting) {
		return false
	}
	if (a.ExpiresAt == nil) != (b.ExpiresAt == nil) || (a.ExpiresAt != nil && !a.ExpiresAt.Equal(*b.ExpiresAt)) {
		return false
	}
	return true
}

func TestSessionOpen(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	exp := now.Add(time.Minute)
	tests := []struct {
		name    string
		expires *time.Time
		at      time.Time
		want    bool
	}{
		{"no expiry", nil, now.Add(100 * 365 * 24 * time.Hour), true},
		{"before expiry", &exp, now, true},
		{"just before expiry", &exp, exp.Add(-time.Nanosecond), true},
		{"at expiry", &exp, exp, false},
		{"after expiry", &exp, exp.Add(time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := session.Session{ExpiresAt: tt.expires}
			if got := s.Open(tt.at); got != tt.want {
				t.Errorf("Open(%v) = %v, want %v", tt.at, got, tt.want)
			}
		})
	}
}

func TestSessionOther(t *testing.T) {
	s := session.Session{VirtualNumber: vn1, Participants: [2]string{pA, pB}}
	tests := []struct {
		caller    string
		want      string
		wantFound bool
	}{
		{pA, pB, true},
		{pB, pA, true},
		{pC, "", false},
		{vn1, "", false},
		{"6512345678", "", false}, // Other expects +digits
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.caller, func(t *testing.T) {
			got, ok := s.Other(tt.caller)
			if got != tt.want || ok != tt.wantFound {
				t.Errorf("Other(%q) = %q, %v; want %q, %v", tt.caller, got, ok, tt.want, tt.wantFound)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"0123456789abcdef0123456789abcdef", true},
		{"ffffffffffffffffffffffffffffffff", true},
		{"", false},
		{"0123456789abcdef0123456789abcde", false},   // 31
		{"0123456789abcdef0123456789abcdef0", false}, // 33
		{"0123456789ABCDEF0123456789ABCDEF", false},  // upper case
		{"0123456789abcdef0123456789abcdeg", false},
		{"0123456789abcdef.123456789abcdef", false},
		{"0123456789abcdef*123456789abcdef", false},
		{"0123456789abcdef>123456789abcdef", false},
		{"p.6598765432.6512345678.aaaaaaaa", false},
		{"0123456789abcdef0123456789abcdé", false},
	}
	for _, tt := range tests {
		if got := session.ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestSessionJSON(t *testing.T) {
	// The admin API answers with the session as JSON: "id" and "expiresAt"
	// are always there (null when the session does not expire).
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	exp := created.Add(time.Hour)
	maxCalls := session.ClosedMaxCalls
	tests := []struct {
		name string
		s    session.Session
		want string
	}{
		{"no expiry", session.Session{ID: "0123456789abcdef0123456789abcdef", VirtualNumber: vn1, Participants: [2]string{pA, pB},
			TTLMode: session.TTLAbsolute, Status: session.StatusOpen, CreatedAt: created, UpdatedAt: created},
			`{"id":"0123456789abcdef0123456789abcdef","virtualNumber":"+6598765432","participants":["+6512345678","+6587654321"],"callRecording":false,"ttlMode":"absolute","expiresAt":null,"status":"open","closedReason":null,"callCount":0,"lastCallAt":null,"createdAt":"2025-01-02T03:04:05Z","updatedAt":"2025-01-02T03:04:05Z"}`},
		{"all fields", session.Session{ID: "0123456789abcdef0123456789abcdef", SubAccountID: "acme", VirtualNumber: vn1, Participants: [2]string{pA, pB}, CallRecording: true,
			Greeting: &wire.Say{Text: "Hi", VoiceProfile: "en-US-ZiraRUS"}, TTLMode: session.TTLIdle, TTLSeconds: 3600, ExpiresAt: &exp, MaxCalls: 3, Ref: "order-1",
			Status: session.StatusClosed, ClosedReason: &maxCalls, CallCount: 3, LastCallAt: &created, CreatedAt: created, UpdatedAt: exp, ClosedAt: &exp},
			`{"id":"0123456789abcdef0123456789abcdef","subAccountId":"acme","virtualNumber":"+6598765432","participants":["+6512345678","+6587654321"],"callRecording":true,"greeting":{"text":"Hi","voiceProfile":"en-US-ZiraRUS"},"ttlMode":"idle","ttlSeconds":3600,"expiresAt":"2025-01-02T04:04:05Z","maxCalls":3,"ref":"order-1","status":"closed","closedReason":"max_calls","callCount":3,"lastCallAt":"2025-01-02T03:04:05Z","createdAt":"2025-01-02T03:04:05Z","updatedAt":"2025-01-02T04:04:05Z","closedAt":"2025-01-02T04:04:05Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(&tt.s)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("JSON =\n%s\nwant\n%s", b, tt.want)
			}
			var back session.Session
			if err := json.Unmarshal(b, &back); err != nil || !sameSession(back, tt.s) {
				t.Errorf("round trip = %+v, %v", back, err)
			}
		})
	}
}
