package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Update event types of a VIRTUAL_NUMBER_UPDATE.
const (
	// VNUSnapshot lists the sub-account's whole pool: a number it does not
	// list has left it.
	VNUSnapshot = "SNAPSHOT"
	// VNUUpdates lists only the numbers that changed.
	VNUUpdates = "UPDATES"
)

// operationalStatuses are 8x8's operationalStatus values, as 8x8 spells
// them.
var operationalStatuses = []string{"Active", "Unhealthy", "Expiring", "Inactive"}

// VirtualNumberUpdate is a VIRTUAL_NUMBER_UPDATE as the number pool reads
// it: the sub-account, whether it is the whole pool, and its numbers,
// cleaned up. ParseVirtualNumberUpdate says what it accepts.
type VirtualNumberUpdate struct {
	// SubAccountID is the sub-account whose pool this is.
	SubAccountID string
	// UpdateEventType is VNUSnapshot or VNUUpdates.
	UpdateEventType string
	// TotalNumbers is the payload's totalNumbers (0 when absent).
	TotalNumbers int
	// Numbers are the usable entries of virtualNumbers, in their order.
	Numbers []VirtualNumber
	// Ignored says, for logs, what of the payload was left out or read
	// differently from how it was sent: entries skipped, fields
	// unreadable, a SNAPSHOT read as UPDATES. Empty for a clean payload.
	Ignored []string
}

// VirtualNumber is one entry of a VIRTUAL_NUMBER_UPDATE's virtualNumbers.
type VirtualNumber struct {
	// MSISDN is the number as '+' and digits.
	MSISDN string
	// UpdatedAt is the entry's updatedTimestamp in UTC; zero when absent
	// or unreadable (the reader dates it by when the webhook came).
	UpdatedAt time.Time
	// CountryCode is ISO 3166 alpha-2 in upper case; "" when absent or not
	// two letters.
	CountryCode string
	// OperationalStatus is Active, Unhealthy, Expiring or Inactive when it
	// is one of them in any case; any other value is kept as sent (none of
	// them is Active); "" when absent.
	OperationalStatus string
	// ReferenceID is the number range's reference.
	ReferenceID string
}

// ParseVirtualNumberUpdate reads a VIRTUAL_NUMBER_UPDATE webhook body (the
// envelope, as recorded) for the number pool. It refuses, with an error
// matching ErrInvalidEvent that names the field, only what cannot be a
// pool update: a body that is not a JSON object, an eventType other than
// VIRTUAL_NUMBER_UPDATE, a payload that is not an object, no subAccountId,
// a virtualNumbers that is not a list (absent or null is an empty list for
// UPDATES, and refused for a SNAPSHOT, which would otherwise empty the
// pool).
//
// Everything else is read liberally, and what was left out is listed in
// Ignored:
//   - unknown fields are skipped; a string field may also come as a JSON
//     number (msisdn, subAccountId, referenceId), and totalNumbers as a
//     numeric string;
//   - an entry that is not an object or has no usable msisdn (8 to 15
//     digits, optional '+'; spaces, dashes, dots and parentheses are
//     removed) is skipped;
//   - updatedTimestamp may be RFC 3339 with or without fractional seconds
//     and with "Z" or a ±hh:mm offset; a ±hhmm offset; no zone at all
//     (UTC), with 'T' or a space between date and time; or epoch time as a
//     JSON number or numeric string, in seconds (below 1e11, fractions
//     allowed) or milliseconds. Anything else reads as zero;
//   - operationalStatus and updateEventType are matched in any case and
//     with surrounding spaces; an updateEventType other than SNAPSHOT
//     (absent included) reads as UPDATES, which never deactivates a
//     number by leaving it out;
//   - countryCode is upper-cased; one that is not two letters is ignored.
//
// A SNAPSHOT is read as UPDATES when it cannot be the whole pool: when an
// entry was skipped (the number it meant cannot be told) or when it lists
// fewer entries than its totalNumbers (one page of several). Listed
// numbers are still applied; none is deactivated for being absent.
func ParseVirtualNumberUpdate(body []byte) (*VirtualNumberUpdate, error) {
	var env struct {
		EventType json.RawMessage `json:"eventType"`
		Payload   json.RawMessage `json:"payload"`
	}
	if !isObject(body) {
		return nil, fieldErr("body", "must be a JSON object")
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fieldErr("body", "%v", err)
	}
	if et := jsonText(env.EventType); et != EventVirtualNumberUpdate {
		return nil, fieldErr("eventType", "%q: want %s", et, EventVirtualNumberUpdate)
	}
	if !isObject(env.Payload) {
		return nil, fieldErr("payload", "must be an object")
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		return nil, fieldErr("payload", "%v", err)
	}
	u := &VirtualNumberUpdate{UpdateEventType: VNUUpdates}
	if u.SubAccountID = strings.TrimSpace(jsonText(rawField(p, "subAccountId"))); u.SubAccountID == "" {
		return nil, fieldErr("payload.subAccountId", "required")
	}
	switch t := strings.ToUpper(strings.TrimSpace(jsonText(rawField(p, "updateEventType")))); t {
	case VNUSnapshot, VNUUpdates:
		u.UpdateEventType = t
	case "":
		u.Ignore("payload.updateEventType absent: read as UPDATES")
	default:
		u.Ignore(fmt.Sprintf("payload.updateEventType %q: read as UPDATES", t))
	}
	if raw := rawField(p, "totalNumbers"); raw != nil {
		if n, err := strconv.Atoi(jsonText(raw)); err == nil && n >= 0 {
			u.TotalNumbers = n
		} else {
			u.Ignore(fmt.Sprintf("payload.totalNumbers %s unreadable", truncated(raw)))
		}
	}
	var entries []json.RawMessage
	switch raw := rawField(p, "virtualNumbers"); {
	case raw == nil && u.UpdateEventType == VNUSnapshot:
		return nil, fieldErr("payload.virtualNumbers", "required in a SNAPSHOT (the whole pool)")
	case raw == nil:
	case bytes.HasPrefix(raw, []byte("[")):
		if err := json.Unmarshal(raw, &entries); err != nil {
			return nil, fieldErr("payload.virtualNumbers", "%v", err)
		}
	default:
		return nil, fieldErr("payload.virtualNumbers", "must be a list")
	}
	skipped := 0
	for i, e := range entries {
		n, problem, note := readVirtualNumber(e)
		if problem != "" {
			u.Ignore(fmt.Sprintf("payload.virtualNumbers[%d] skipped: %s", i, problem))
			skipped++
			continue
		}
		if note != "" {
			u.Ignore(fmt.Sprintf("payload.virtualNumbers[%d].%s", i, note))
		}
		u.Numbers = append(u.Numbers, n)
	}
	if u.UpdateEventType == VNUSnapshot {
		switch {
		case skipped > 0:
			u.UpdateEventType = VNUUpdates
			u.Ignore(fmt.Sprintf("SNAPSHOT read as UPDATES: %d of its %d entries skipped", skipped, len(entries)))
		case u.TotalNumbers > len(entries):
			u.UpdateEventType = VNUUpdates
			u.Ignore(fmt.Sprintf("SNAPSHOT read as UPDATES: it lists %d of totalNumbers %d", len(entries), u.TotalNumbers))
		}
	}
	return u, nil
}

// Ignore notes something the reading left out.
func (u *VirtualNumberUpdate) Ignore(what string) { u.Ignored = append(u.Ignored, what) }

// readVirtualNumber reads one entry: problem says why it is unusable,
// note what of it was ignored.
func readVirtualNumber(raw json.RawMessage) (n VirtualNumber, problem, note string) {
	if !isObject(raw) {
		return n, "not an object", ""
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(raw, &f); err != nil {
		return n, err.Error(), ""
	}
	msisdn := jsonText(rawField(f, "msisdn"))
	if msisdn == "" {
		return n, "no msisdn", ""
	}
	vn, err := CleanNumber(msisdn)
	if err != nil {
		return n, fmt.Sprintf("msisdn %q is not a phone number", MaskNumber(msisdn)), ""
	}
	n.MSISDN = vn
	if ts := rawField(f, "updatedTimestamp"); ts != nil {
		if n.UpdatedAt = parseFlexibleTime(ts); n.UpdatedAt.IsZero() {
			note = fmt.Sprintf("updatedTimestamp %s unreadable", truncated(ts))
		}
	}
	if c := strings.ToUpper(strings.TrimSpace(jsonText(rawField(f, "countryCode")))); len(c) == 2 && isUpperAlpha(c) {
		n.CountryCode = c
	}
	n.OperationalStatus = canonicalStatus(jsonText(rawField(f, "operationalStatus")))
	n.ReferenceID = strings.TrimSpace(jsonText(rawField(f, "referenceId")))
	return n, "", note
}

// canonicalStatus spells a known operationalStatus as 8x8 does.
func canonicalStatus(s string) string {
	s = strings.TrimSpace(s)
	for _, known := range operationalStatuses {
		if strings.EqualFold(s, known) {
			return known
		}
	}
	return s
}

// Layouts of updatedTimestamp beyond RFC 3339; those without a zone are
// UTC.
var timeLayouts = []string{
	"2006-01-02T15:04:05.999999999-0700",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999-0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
}

// parseFlexibleTime reads a timestamp in the forms ParseVirtualNumberUpdate
// lists; anything else is the zero time.
func parseFlexibleTime(raw json.RawMessage) time.Time {
	s := strings.TrimSpace(jsonText(raw))
	if s == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || v >= 1e15 {
		return time.Time{}
	}
	if v < 1e11 { // seconds (until the year 5138)
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC()
	}
	return time.UnixMilli(int64(v)).UTC()
}

// rawField is f[key], nil when absent or null.
func rawField(f map[string]json.RawMessage, key string) json.RawMessage {
	v := f[key]
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	return v
}

// jsonText is a JSON string's value or a JSON number's text; "" for
// anything else.
func jsonText(raw json.RawMessage) string {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 {
		return ""
	}
	if b[0] == '"' {
		var s string
		if json.Unmarshal(b, &s) == nil {
			return s
		}
		return ""
	}
	var n json.Number
	if json.Unmarshal(b, &n) == nil {
		return n.String()
	}
	return ""
}

// isObject reports whether raw is a JSON object (by its first byte).
func isObject(raw []byte) bool {
	b := bytes.TrimSpace(raw)
	return len(b) > 0 && b[0] == '{'
}

func isUpperAlpha(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// truncated is raw for a log line: at most 40 bytes.
func truncated(raw json.RawMessage) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}
