package session

import (
	"encoding/base64"
	"fmt"
	"time"

	"github.com/callflow/callflow/wire"
)

// Number statuses: 8x8's operationalStatus of a virtual number.
const (
	// NumberActive: ready for new sessions.
	NumberActive = "Active"
	// NumberUnhealthy: degraded; not for new sessions, but calls from
	// earlier allocations may still arrive.
	NumberUnhealthy = "Unhealthy"
	// NumberExpiring: soon leaves the pool; not for new sessions.
	NumberExpiring = "Expiring"
	// NumberInactive: not for new sessions.
	NumberInactive = "Inactive"
)

// NumberStatuses lists the statuses in their order of health.
var NumberStatuses = []string{NumberActive, NumberUnhealthy, NumberExpiring, NumberInactive}

func validStatus(s string) bool {
	for _, v := range NumberStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// Number is a virtual number of the pool: which sub-account owns it, how
// healthy 8x8 says it is, and its own out-of-session policy.
type Number struct {
	// Number is the virtual number, as +digits.
	Number string `json:"number"`
	// SubAccountID is the 8x8 sub-account the number belongs to.
	SubAccountID string `json:"subAccountId"`
	// CountryCode is the number's country (ISO 3166 alpha-2), when known.
	CountryCode string `json:"countryCode,omitempty"`
	// Status is one of NumberStatuses; only Active numbers are allocated.
	Status string `json:"status"`
	// OutOfSession answers callers who are in no open session on the
	// number; nil: the sub-account's policy applies.
	OutOfSession *Policy `json:"outOfSession"`
	// Flow is the id of the flow calls to the number start in; "": the
	// sub-account's default flow, else number masking.
	Flow string `json:"flow,omitempty"`
	// ReferenceID is 8x8's number range reference.
	ReferenceID string `json:"referenceId,omitempty"`
	// StatusAt is 8x8's updatedTimestamp of the status held, so that an
	// older update never overwrites a newer one; nil until 8x8 sent one.
	StatusAt *time.Time `json:"statusAt,omitempty"`
	// CreatedAt and UpdatedAt are when the number joined the pool and
	// last changed.
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// NumberRequest registers or updates a number (PUT /v1/numbers/{number}).
// A nil field is left as it is on an update.
type NumberRequest struct {
	// SubAccountID is required when the number is new.
	SubAccountID *string `json:"subAccountId"`
	CountryCode  *string `json:"countryCode"`
	// Status defaults to Active for a new number: 8x8's number-health
	// webhooks correct it.
	Status *string `json:"status"`
	// OutOfSession sets the number's policy; ClearOutOfSession removes it.
	OutOfSession      *Policy `json:"outOfSession"`
	ClearOutOfSession bool    `json:"-"`
	// Flow attaches a flow (of the number's sub-account, or one without
	// a sub-account); "" detaches it.
	Flow *string `json:"flow"`
}

// apply changes n by r at now; n.Number is set.
func (r *NumberRequest) apply(n *Number, now time.Time) error {
	if r.SubAccountID != nil {
		if err := ValidSubAccount(*r.SubAccountID); err != nil {
			return fmt.Errorf("%w: subAccountId: %v", ErrInvalid, err)
		}
		n.SubAccountID = *r.SubAccountID
	}
	if n.SubAccountID == "" {
		return invalid("subAccountId", "required: a number belongs to one sub-account")
	}
	if r.CountryCode != nil {
		if *r.CountryCode != "" && !validCountry(*r.CountryCode) {
			return invalid("countryCode", "%q is not a two-letter country code", *r.CountryCode)
		}
		n.CountryCode = *r.CountryCode
	}
	if r.Status != nil {
		if !validStatus(*r.Status) {
			return invalid("status", "%q: want one of %v", *r.Status, NumberStatuses)
		}
		n.Status = *r.Status
	}
	if n.Status == "" {
		n.Status = NumberActive
	}
	switch {
	case r.ClearOutOfSession:
		n.OutOfSession = nil
	case r.OutOfSession != nil:
		p := *r.OutOfSession
		if err := p.Validate("outOfSession"); err != nil {
			return err
		}
		n.OutOfSession = &p
	}
	if r.Flow != nil {
		if *r.Flow != "" && !ValidFlowName(*r.Flow) {
			return invalid("flow", "no flow %q", *r.Flow)
		}
		n.Flow = *r.Flow
	}
	if n.CreatedAt.IsZero() {
		n.CreatedAt = now
	}
	n.UpdatedAt = now
	return nil
}

// validCountry reports whether c looks like an ISO 3166 alpha-2 code.
func validCountry(c string) bool {
	return len(c) == 2 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z'
}

// ValidSubAccount checks an 8x8 sub-account id: 1 to 128 printable ASCII
// characters without spaces.
func ValidSubAccount(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("must be 1 to 128 characters, got %d", len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%q: only printable ASCII without spaces", id)
		}
	}
	return nil
}

// NumberUpdate is one number of an 8x8 VIRTUAL_NUMBER_UPDATE.
type NumberUpdate struct {
	MSISDN            string    `json:"msisdn"`
	UpdatedTimestamp  time.Time `json:"updatedTimestamp"`
	CountryCode       string    `json:"countryCode"`
	OperationalStatus string    `json:"operationalStatus"`
	ReferenceID       string    `json:"referenceId"`
}

// PoolUpdate is the payload of an 8x8 VIRTUAL_NUMBER_UPDATE webhook.
type PoolUpdate struct {
	SubAccountID string `json:"subAccountId"`
	// UpdateEventType is SNAPSHOT (the sub-account's whole pool) or
	// UPDATES (only what changed).
	UpdateEventType string         `json:"updateEventType"`
	TotalNumbers    int            `json:"totalNumbers"`
	VirtualNumbers  []NumberUpdate `json:"virtualNumbers"`
}

// Update event types of a PoolUpdate.
const (
	PoolSnapshot = "SNAPSHOT"
	PoolUpdates  = "UPDATES"
)

// NumberChange is one change a pool update made: the number before (nil
// when new) and after (nil when removed).
type NumberChange struct {
	Before, After *Number
}

func numberKey(number string) string { return "n." + number[1:] }

// subAccountKey keys a sub-account by its id in base64url: an 8x8 id may
// hold characters a KV key does not allow.
func subAccountKey(id string) string {
	return "a." + base64.RawURLEncoding.EncodeToString([]byte(id))
}

// SubAccount holds a sub-account's settings.
type SubAccount struct {
	SubAccountID string `json:"subAccountId"`
	// OutOfSession answers callers who are in no open session on a
	// number of the sub-account that has no policy of its own; nil: the
	// deciders' default.
	OutOfSession *Policy `json:"outOfSession"`
	// DefaultFlow is the id of the flow calls start in on the
	// sub-account's numbers that have none of their own; "": none.
	DefaultFlow string    `json:"defaultFlow,omitempty"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// SubAccountRequest changes a sub-account's settings (PUT
// /v1/subaccounts/{id}). A nil field is left as it is.
type SubAccountRequest struct {
	// OutOfSession sets the policy; ClearOutOfSession removes it.
	OutOfSession      *Policy
	ClearOutOfSession bool
	// DefaultFlow sets the default flow (of the sub-account, or one
	// without a sub-account); "" removes it.
	DefaultFlow *string
}

// SubAccountChange is a change of a sub-account's settings: before (nil
// when never set) and after.
type SubAccountChange struct {
	Before *SubAccount
	After  SubAccount
}

// Policy answers a caller who is in no open session on the number they
// called: a message and a hangup, or a forward to a line of the call
// centre (an optional announcement, then a makeCall from the virtual
// number to Destination).
type Policy struct {
	// Action is PolicyHangup or PolicyForward.
	Action string `json:"action"`
	// Destination is where PolicyForward connects the caller, as +digits.
	Destination string `json:"destination,omitempty"`
	// Say is said first, when set.
	Say *wire.Say `json:"say,omitempty"`
}

// Policy actions.
const (
	PolicyHangup  = "hangup"
	PolicyForward = "forward"
)

// Validate checks p (in place: the destination is normalized); field names
// it in errors.
func (p *Policy) Validate(field string) error {
	switch p.Action {
	case PolicyHangup:
		if p.Destination != "" {
			return invalid(field+".destination", "only a forward has a destination")
		}
	case PolicyForward:
		d, err := wire.CleanNumber(p.Destination)
		if err != nil {
			return invalid(field+".destination", "%q is not a phone number (8 to 15 digits, optional +)", p.Destination)
		}
		p.Destination = d
	case "":
		return invalid(field+".action", "required: %q or %q", PolicyHangup, PolicyForward)
	default:
		return invalid(field+".action", "%q: want %q or %q", p.Action, PolicyHangup, PolicyForward)
	}
	if p.Say != nil {
		if err := p.Say.Validate(); err != nil {
			return fmt.Errorf("%w: %s.say: %v", ErrInvalid, field, err)
		}
		if len(p.Say.Text) > maxGreeting {
			return invalid(field+".say.text", "longer than %d bytes", maxGreeting)
		}
		if p.Say.VoiceProfile == "" {
			s := *p.Say
			s.VoiceProfile = DefaultVoiceProfile
			p.Say = &s
		}
	}
	return nil
}
