package session

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/callflow/callflow/wire"
)

// Session binds two participants to one virtual number: a call from either
// participant to the virtual number is connected to the other.
type Session struct {
	// ID identifies the session (32 hex digits).
	ID string `json:"id"`
	// VirtualNumber is the number both participants call, as +digits.
	VirtualNumber string `json:"virtualNumber"`
	// Participants are the two numbers bound together, as +digits.
	Participants [2]string `json:"participants"`
	// CallRecording asks 8x8 to record the connected calls.
	CallRecording bool `json:"callRecording"`
	// Greeting, when set, is played to the caller before connecting.
	Greeting *wire.Say `json:"greeting,omitempty"`
	// TTLSeconds is the session's lifetime from creation; 0 means no expiry.
	TTLSeconds int64 `json:"ttlSeconds,omitempty"`
	// CreatedAt is when the session was created.
	CreatedAt time.Time `json:"createdAt"`
	// ExpiresAt is when the session ends, or nil when it does not.
	ExpiresAt *time.Time `json:"expiresAt"`
}

// Open reports whether the session routes calls at t.
func (s *Session) Open(t time.Time) bool {
	return s.ExpiresAt == nil || t.Before(*s.ExpiresAt)
}

// Other returns the participant a call from caller is connected to, and
// whether caller is a participant at all.
func (s *Session) Other(caller string) (string, bool) {
	switch caller {
	case s.Participants[0]:
		return s.Participants[1], true
	case s.Participants[1]:
		return s.Participants[0], true
	}
	return "", false
}

// Request is what a client asks for when creating a session. Only
// VirtualNumber and Participants are required.
type Request struct {
	VirtualNumber string    `json:"virtualNumber"`
	Participants  []string  `json:"participants"`
	TTLSeconds    int64     `json:"ttlSeconds"`
	CallRecording bool      `json:"callRecording"`
	Greeting      *wire.Say `json:"greeting"`
}

// DefaultVoiceProfile is the greeting's voice when the request names none.
const DefaultVoiceProfile = "en-US-ZiraRUS"

// MaxTTL is the longest session lifetime accepted.
const MaxTTL = 366 * 24 * time.Hour

// maxGreeting bounds the greeting text: a TTS prompt, not a document.
const maxGreeting = 1000

// build validates r and returns the session it describes, created at now.
func (r *Request) build(now time.Time) (Session, error) {
	vn, err := wire.CleanNumber(r.VirtualNumber)
	if err != nil {
		return Session{}, fmt.Errorf("%w: virtualNumber: %q is not a phone number (8 to 15 digits, optional +)", ErrInvalid, r.VirtualNumber)
	}
	if len(r.Participants) != 2 {
		return Session{}, fmt.Errorf("%w: participants: exactly two numbers required, got %d", ErrInvalid, len(r.Participants))
	}
	s := Session{VirtualNumber: vn, CallRecording: r.CallRecording, CreatedAt: now.UTC()}
	for i, p := range r.Participants {
		n, err := wire.CleanNumber(p)
		if err != nil {
			return Session{}, fmt.Errorf("%w: participants[%d]: %q is not a phone number (8 to 15 digits, optional +)", ErrInvalid, i, p)
		}
		if n == vn {
			return Session{}, fmt.Errorf("%w: participants[%d]: a participant cannot be the virtual number", ErrInvalid, i)
		}
		s.Participants[i] = n
	}
	if s.Participants[0] == s.Participants[1] {
		return Session{}, fmt.Errorf("%w: participants: the two numbers must differ", ErrInvalid)
	}
	if r.TTLSeconds < 0 || r.TTLSeconds > int64(MaxTTL/time.Second) {
		return Session{}, fmt.Errorf("%w: ttlSeconds: must be from 0 (no expiry) to %d", ErrInvalid, int64(MaxTTL/time.Second))
	}
	if r.TTLSeconds > 0 {
		s.TTLSeconds = r.TTLSeconds
		exp := s.CreatedAt.Add(time.Duration(r.TTLSeconds) * time.Second)
		s.ExpiresAt = &exp
	}
	if g := r.Greeting; g != nil {
		if err := g.Validate(); err != nil {
			return Session{}, fmt.Errorf("%w: greeting: %v", ErrInvalid, err)
		}
		if len(g.Text) > maxGreeting {
			return Session{}, fmt.Errorf("%w: greeting.text: longer than %d bytes", ErrInvalid, maxGreeting)
		}
		gc := *g
		if gc.VoiceProfile == "" {
			gc.VoiceProfile = DefaultVoiceProfile
		}
		s.Greeting = &gc
	}
	s.ID = newID()
	return s, nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// ValidID reports whether id has the shape of a session id, so that a
// client cannot address other keys of the bucket through it.
func ValidID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !strings.ContainsRune(hexDigits, rune(id[i])) {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

func sessionKey(id string) string { return "s." + id }

func routeKey(virtual, participant string) string {
	return "p." + virtual[1:] + "." + participant[1:]
}
