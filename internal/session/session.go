package session

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/callflow/callflow/wire"
)

// Session statuses.
const (
	StatusOpen   = "open"
	StatusClosed = "closed"
)

// Why a session closed.
const (
	ClosedExpired  = "expired"   // its TTL or expiresAt passed
	ClosedMaxCalls = "max_calls" // it connected maxCalls calls
	ClosedByClient = "closed"    // closed through the API (or its number left the pool)
	ClosedDeleted  = "deleted"   // deleted through the API; in audit records only
)

// TTL modes.
const (
	TTLAbsolute = "absolute" // the TTL runs from creation (the default)
	TTLIdle     = "idle"     // the TTL runs from the last connected call
)

// Session binds two participants to one virtual number: a call from either
// participant to the virtual number is connected to the other, while the
// session is open.
type Session struct {
	// ID identifies the session (32 hex digits).
	ID string `json:"id"`
	// SubAccountID, when set, limits the session to calls whose webhook
	// carries this 8x8 sub-account.
	SubAccountID string `json:"subAccountId,omitempty"`
	// VirtualNumber is the number both participants call, as +digits.
	VirtualNumber string `json:"virtualNumber"`
	// Participants are the two numbers bound together, as +digits.
	Participants [2]string `json:"participants"`
	// CallRecording asks 8x8 to record the connected calls.
	CallRecording bool `json:"callRecording"`
	// Greeting, when set, is played to the caller before connecting.
	Greeting *wire.Say `json:"greeting,omitempty"`
	// TTLMode is TTLAbsolute or TTLIdle.
	TTLMode string `json:"ttlMode"`
	// TTLSeconds is the session's lifetime (see TTLMode); 0 when it has
	// none or ends at a fixed ExpiresAt.
	TTLSeconds int64 `json:"ttlSeconds,omitempty"`
	// ExpiresAt is when the session closes by itself, or nil.
	ExpiresAt *time.Time `json:"expiresAt"`
	// MaxCalls closes the session after that many connected calls; 0: no
	// limit.
	MaxCalls int64 `json:"maxCalls,omitempty"`
	// Ref is the integrator's reference (an order or ticket id).
	Ref string `json:"ref,omitempty"`
	// PIN, when set, is the code (PINMinLength to PINMaxLength digits) a
	// caller enters in a flow's pin step to reach this session; unique
	// among the open sessions of its number. A session with a pin is
	// routed only by its pin (Store.LookupPIN), never by its participants
	// alone, so it may share its number and participants with other
	// sessions with a pin. It never changes.
	PIN string `json:"pin,omitempty"`
	// Status is StatusOpen or StatusClosed.
	Status string `json:"status"`
	// ClosedReason says why a closed session closed (Closed* constants);
	// nil while open.
	ClosedReason *string `json:"closedReason"`
	// CallCount counts the calls connected in this session.
	CallCount int64 `json:"callCount"`
	// LastCallAt is when the last call was connected, or nil.
	LastCallAt *time.Time `json:"lastCallAt"`
	// CreatedAt, UpdatedAt and ClosedAt are when the session was created,
	// last changed and closed.
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
	ClosedAt  *time.Time `json:"closedAt,omitempty"`
}

// Open reports whether the session routes calls at t: not closed, and not
// past its expiry.
func (s *Session) Open(t time.Time) bool {
	return s.Status != StatusClosed && (s.ExpiresAt == nil || t.Before(*s.ExpiresAt))
}

// At returns the session as it stands at t: a session past its expiry
// reads as closed, "expired", at its expiry time. Sessions stored by older
// versions (no status) read as open.
func (s Session) At(t time.Time) Session {
	s.fill()
	if s.Status == StatusOpen && s.ExpiresAt != nil && !t.Before(*s.ExpiresAt) {
		s.Status = StatusClosed
		s.ClosedReason = reason(ClosedExpired)
		exp := *s.ExpiresAt
		s.ClosedAt = &exp
	}
	return s
}

// fill sets what sessions stored by older versions lack.
func (s *Session) fill() {
	if s.Status == "" {
		s.Status = StatusOpen
	}
	if s.TTLMode == "" {
		s.TTLMode = TTLAbsolute
	}
	if s.UpdatedAt.IsZero() {
		s.UpdatedAt = s.CreatedAt
	}
}

// CountsMatter reports whether the session's lifecycle turns on its
// connected calls: it closes at MaxCalls, or its expiry runs from its
// last call. Its calls are then counted as they come; the others'
// callCount and lastCallAt are only read, and may be counted later.
func (s *Session) CountsMatter() bool {
	return s.MaxCalls > 0 || s.TTLMode == TTLIdle
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

// Admits reports whether a call of subAccount may be routed to s: a
// session without a sub-account admits any.
func (s *Session) Admits(subAccount string) bool {
	return s.SubAccountID == "" || s.SubAccountID == subAccount
}

func reason(r string) *string { return &r }

// close marks s closed at now for why.
func (s *Session) close(now time.Time, why string) {
	s.Status = StatusClosed
	s.ClosedReason = reason(why)
	s.ClosedAt = &now
	s.UpdatedAt = now
}

// expireFrom sets ExpiresAt from the TTL, counted from base.
func (s *Session) expireFrom(base time.Time) {
	if s.TTLSeconds <= 0 {
		return
	}
	exp := base.Add(time.Duration(s.TTLSeconds) * time.Second)
	s.ExpiresAt = &exp
}

// Request is what a client asks for when creating a session. Participants
// are required, and VirtualNumber unless SubAccountID is given, in which
// case a number is allocated from that sub-account's pool.
type Request struct {
	SubAccountID  string   `json:"subAccountId"`
	VirtualNumber string   `json:"virtualNumber"`
	CountryCode   string   `json:"countryCode"`
	Participants  []string `json:"participants"`
	// TTLMode is "absolute" (default) or "idle".
	TTLMode string `json:"ttlMode"`
	// TTLSeconds and ExpiresAt (RFC 3339) are alternatives; neither means
	// no expiry.
	TTLSeconds    int64      `json:"ttlSeconds"`
	ExpiresAt     *time.Time `json:"expiresAt"`
	MaxCalls      int64      `json:"maxCalls"`
	Ref           string     `json:"ref"`
	CallRecording bool       `json:"callRecording"`
	Greeting      *wire.Say  `json:"greeting"`
	// PIN gives the session a pin: PINMinLength to PINMaxLength digits,
	// or PINAuto to have one generated (returned in the session).
	PIN string `json:"pin"`
}

// DefaultVoiceProfile is the greeting's voice when the request names none.
const DefaultVoiceProfile = "en-US-ZiraRUS"

// Limits on session fields.
const (
	// MaxTTL is the longest session lifetime accepted.
	MaxTTL = 366 * 24 * time.Hour
	// MaxRef bounds the integrator's reference.
	MaxRef = 128
	// MaxCallsLimit bounds maxCalls.
	MaxCallsLimit = 1_000_000
	// maxGreeting bounds the greeting text: a TTS prompt, not a document.
	maxGreeting = 1000
)

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

// build validates r and returns the session it describes, created at now,
// with its virtual number still empty when it is to be allocated.
func (r *Request) build(now time.Time) (Session, error) {
	now = now.UTC()
	s := Session{
		Status: StatusOpen, CallRecording: r.CallRecording, Ref: r.Ref, MaxCalls: r.MaxCalls,
		CreatedAt: now, UpdatedAt: now, TTLMode: TTLAbsolute,
	}
	if r.SubAccountID != "" {
		if err := ValidSubAccount(r.SubAccountID); err != nil {
			return Session{}, fmt.Errorf("%w: subAccountId: %v", ErrInvalid, err)
		}
		s.SubAccountID = r.SubAccountID
	}
	switch {
	case r.VirtualNumber != "":
		vn, err := wire.CleanNumber(r.VirtualNumber)
		if err != nil {
			return Session{}, invalid("virtualNumber", "%q is not a phone number (8 to 15 digits, optional +)", r.VirtualNumber)
		}
		s.VirtualNumber = vn
		if r.CountryCode != "" {
			return Session{}, invalid("countryCode", "only for a number allocated from the pool; give virtualNumber or countryCode, not both")
		}
	case r.SubAccountID == "":
		return Session{}, invalid("virtualNumber", "required, or subAccountId to allocate one from the sub-account's pool")
	case r.CountryCode != "" && !validCountry(r.CountryCode):
		return Session{}, invalid("countryCode", "%q is not a two-letter country code", r.CountryCode)
	}
	if len(r.Participants) != 2 {
		return Session{}, invalid("participants", "exactly two numbers required, got %d", len(r.Participants))
	}
	for i, p := range r.Participants {
		n, err := wire.CleanNumber(p)
		if err != nil {
			return Session{}, invalid(fmt.Sprintf("participants[%d]", i), "%q is not a phone number (8 to 15 digits, optional +)", p)
		}
		if n == s.VirtualNumber {
			return Session{}, invalid(fmt.Sprintf("participants[%d]", i), "a participant cannot be the virtual number")
		}
		s.Participants[i] = n
	}
	if s.Participants[0] == s.Participants[1] {
		return Session{}, invalid("participants", "the two numbers must differ")
	}
	switch r.TTLMode {
	case "", TTLAbsolute:
	case TTLIdle:
		s.TTLMode = TTLIdle
	default:
		return Session{}, invalid("ttlMode", "%q: want %q or %q", r.TTLMode, TTLAbsolute, TTLIdle)
	}
	if err := s.setExpiry(r.TTLSeconds, r.ExpiresAt, now, r.TTLSeconds != 0 && r.ExpiresAt != nil); err != nil {
		return Session{}, err
	}
	if s.TTLMode == TTLIdle && s.TTLSeconds == 0 {
		return Session{}, invalid("ttlMode", "idle needs ttlSeconds (the idle time allowed)")
	}
	if err := checkRef(r.Ref); err != nil {
		return Session{}, err
	}
	switch {
	case r.PIN == "" || r.PIN == PINAuto:
	case ValidPIN(r.PIN):
		s.PIN = r.PIN
	default:
		return Session{}, invalid("pin", "want %d to %d digits, or %q to have one generated", PINMinLength, PINMaxLength, PINAuto)
	}
	if r.MaxCalls < 0 || r.MaxCalls > MaxCallsLimit {
		return Session{}, invalid("maxCalls", "must be from 0 (no limit) to %d", MaxCallsLimit)
	}
	g, err := checkGreeting(r.Greeting)
	if err != nil {
		return Session{}, err
	}
	s.Greeting = g
	s.ID = newID()
	return s, nil
}

// setExpiry applies a ttlSeconds or an expiresAt (both is an error) at
// now: the TTL counts from creation, or in idle mode from the last call.
func (s *Session) setExpiry(ttl int64, at *time.Time, now time.Time, both bool) error {
	if both {
		return invalid("expiresAt", "give ttlSeconds or expiresAt, not both")
	}
	if ttl < 0 || ttl > int64(MaxTTL/time.Second) {
		return invalid("ttlSeconds", "must be from 0 (no expiry) to %d", int64(MaxTTL/time.Second))
	}
	switch {
	case at != nil:
		if s.TTLMode == TTLIdle {
			return invalid("expiresAt", "an idle session expires ttlSeconds after its last call; give ttlSeconds")
		}
		exp := at.UTC()
		if !exp.After(now) {
			return invalid("expiresAt", "%s is not in the future", exp.Format(time.RFC3339))
		}
		if exp.Sub(now) > MaxTTL {
			return invalid("expiresAt", "more than %d days ahead", int(MaxTTL.Hours()/24))
		}
		s.TTLSeconds, s.ExpiresAt = 0, &exp
	case ttl > 0:
		s.TTLSeconds, s.ExpiresAt = ttl, nil
		base := s.CreatedAt
		if s.TTLMode == TTLIdle && s.LastCallAt != nil {
			base = *s.LastCallAt
		}
		s.expireFrom(base)
	default:
		s.TTLSeconds, s.ExpiresAt = 0, nil
	}
	return nil
}

func checkRef(ref string) error {
	if len(ref) > MaxRef {
		return invalid("ref", "longer than %d bytes", MaxRef)
	}
	for _, c := range ref {
		if c < ' ' || c == 0x7f {
			return invalid("ref", "control characters are not allowed")
		}
	}
	return nil
}

func checkGreeting(g *wire.Say) (*wire.Say, error) {
	if g == nil {
		return nil, nil
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("%w: greeting: %v", ErrInvalid, err)
	}
	if len(g.Text) > maxGreeting {
		return nil, invalid("greeting.text", "longer than %d bytes", maxGreeting)
	}
	gc := *g
	if gc.VoiceProfile == "" {
		gc.VoiceProfile = DefaultVoiceProfile
	}
	return &gc, nil
}

// Patch changes an open session. A nil field is left as it is.
type Patch struct {
	// TTLSeconds (0: no expiry) or ExpiresAt moves the expiry, forwards
	// or back; both is an error.
	TTLSeconds *int64
	ExpiresAt  *time.Time
	// Greeting replaces the greeting; ClearGreeting removes it.
	Greeting      *wire.Say
	ClearGreeting bool
	CallRecording *bool
	// MaxCalls 0 removes the limit; a limit already reached closes the
	// session.
	MaxCalls *int64
	Ref      *string
	// Close closes the session (it never reopens).
	Close bool
}

// apply changes s (open) by p at now.
func (p *Patch) apply(s *Session, now time.Time) error {
	if p.TTLSeconds != nil || p.ExpiresAt != nil {
		ttl := s.TTLSeconds
		if p.TTLSeconds != nil {
			ttl = *p.TTLSeconds
		}
		if p.ExpiresAt != nil && p.TTLSeconds == nil {
			ttl = 0
		}
		if err := s.setExpiry(ttl, p.ExpiresAt, now, p.TTLSeconds != nil && p.ExpiresAt != nil); err != nil {
			return err
		}
		if s.TTLMode == TTLIdle && s.TTLSeconds == 0 {
			return invalid("ttlSeconds", "an idle session needs a ttlSeconds above 0")
		}
	}
	if p.ClearGreeting {
		s.Greeting = nil
	} else if p.Greeting != nil {
		g, err := checkGreeting(p.Greeting)
		if err != nil {
			return err
		}
		s.Greeting = g
	}
	if p.CallRecording != nil {
		s.CallRecording = *p.CallRecording
	}
	if p.Ref != nil {
		if err := checkRef(*p.Ref); err != nil {
			return err
		}
		s.Ref = *p.Ref
	}
	if p.MaxCalls != nil {
		if *p.MaxCalls < 0 || *p.MaxCalls > MaxCallsLimit {
			return invalid("maxCalls", "must be from 0 (no limit) to %d", MaxCallsLimit)
		}
		s.MaxCalls = *p.MaxCalls
	}
	s.UpdatedAt = now
	switch {
	case p.Close:
		s.close(now, ClosedByClient)
	case s.MaxCalls > 0 && s.CallCount >= s.MaxCalls:
		s.close(now, ClosedMaxCalls)
	}
	return nil
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

// claimKeys are the keys a session holds while open, in the order they
// are claimed (sorted, so that two creates of the same pair given in
// opposite orders cannot each hold one key and both lose): its pin key
// when it has a pin, else a route key per participant.
func claimKeys(s *Session) []string {
	if s.PIN != "" {
		return []string{pinKey(s.VirtualNumber, s.PIN)}
	}
	keys := []string{routeKey(s.VirtualNumber, s.Participants[0]), routeKey(s.VirtualNumber, s.Participants[1])}
	if keys[1] < keys[0] {
		keys[0], keys[1] = keys[1], keys[0]
	}
	return keys
}

// conflictError is what a create is refused with when another open
// session holds one of its keys.
func conflictError(s *Session) error {
	if s.PIN != "" {
		return ErrPINConflict
	}
	return ErrConflict
}
