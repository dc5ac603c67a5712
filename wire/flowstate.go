package wire

import "strconv"

// FlowState is where a caller is in a flow. It travels in the
// clientActionId of every answer a flow gives (ClientActionID), and 8x8
// echoes it in the call's next CALL_ACTION, so that any decider can answer
// the next step without keeping per-call state.
//
// The encoding is
//
//	flow:<flow>:<version>:<step>:<tries>[:r][:<session>]
//
// with <flow> and <step> names as ValidFlowName allows (no ':'), <version>
// and <tries> canonical decimals (no sign, no leading zero), "r" when
// Restarted, and <session> a masking session id (32 lowercase hex digits)
// when Session is set. Every state has one encoding and every encoding one
// state; anything else does not decode (ParseFlowState).
type FlowState struct {
	// Flow is the flow's id (see ValidFlowName).
	Flow string
	// Version is the flow's version the call started on: 1 to
	// MaxFlowVersion. A call finishes on it.
	Version uint64
	// Step is the step the caller is at (see ValidFlowName): the step
	// whose prompt the answer carrying this state plays.
	Step string
	// Tries counts the failed tries at Step so far: 0 to MaxFlowTries.
	Tries int
	// Restarted is set once the flow was restarted because a
	// clientActionId did not decode or named a version no longer kept:
	// a second such failure ends the call (see DECISIONS, "Flows").
	Restarted bool
	// Session is the masking session a step connects the caller to (a
	// PIN step's makeCall), 32 lowercase hex digits; "" otherwise.
	Session string
}

// Limits of a FlowState.
const (
	// MaxFlowNameLength is the longest flow id or step name, in bytes.
	MaxFlowNameLength = 64
	// MaxFlowVersion is the largest flow version: 2^53-1, the largest
	// integer every JSON reader holds exactly (versions travel in records
	// and the admin API as JSON numbers).
	MaxFlowVersion = 1<<53 - 1
	// MaxFlowTries is the largest Tries.
	MaxFlowTries = 99
)

// flowPrefix starts every flow state clientActionId.
const flowPrefix = "flow:"

// ValidFlowName reports whether s can be a flow id or a step name: 1 to
// MaxFlowNameLength bytes, each an ASCII letter, digit, '_' or '-'.
func ValidFlowName(s string) bool {
	if len(s) == 0 || len(s) > MaxFlowNameLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// Valid reports whether s can be encoded: its names as ValidFlowName
// allows, Version from 1 to MaxFlowVersion, Tries from 0 to MaxFlowTries,
// and Session empty or a masking session id.
func (s FlowState) Valid() bool {
	return ValidFlowName(s.Flow) && ValidFlowName(s.Step) &&
		s.Version >= 1 && s.Version <= MaxFlowVersion &&
		s.Tries >= 0 && s.Tries <= MaxFlowTries &&
		(s.Session == "" || isSessionID(s.Session))
}

// ClientActionID is the clientActionId that carries s, for example
// "flow:main-menu:3:welcome:0". It is "" when s is not Valid (a call
// answered so restarts its flow on its next CALL_ACTION).
func (s FlowState) ClientActionID() string {
	if !s.Valid() {
		return ""
	}
	return string(s.AppendClientActionID(make([]byte, 0, len(flowPrefix)+len(s.Flow)+len(s.Step)+64)))
}

// AppendClientActionID appends s's ClientActionID to dst (nothing when s
// is not Valid), for encoders that build the answer in a buffer.
func (s FlowState) AppendClientActionID(dst []byte) []byte {
	if !s.Valid() {
		return dst
	}
	dst = append(dst, flowPrefix...)
	dst = append(dst, s.Flow...)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, s.Version, 10)
	dst = append(dst, ':')
	dst = append(dst, s.Step...)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(s.Tries), 10)
	if s.Restarted {
		dst = append(dst, ":r"...)
	}
	if s.Session != "" {
		dst = append(dst, ':')
		dst = append(dst, s.Session...)
	}
	return dst
}

// maxFlowStateLength bounds an encoded FlowState: longer ids are refused
// before they are split.
const maxFlowStateLength = len(flowPrefix) + MaxFlowNameLength + 1 + 16 + 1 + MaxFlowNameLength + 1 + 2 + 2 + 1 + 32

// ParseFlowState decodes a clientActionId written by
// FlowState.ClientActionID. ok is false for anything else: another prefix,
// fields missing or extra, a name outside ValidFlowName, a version or
// tries that is not a canonical decimal within its range, a session that
// is not 32 lowercase hex digits. It never panics, allocates nothing, and
// the state's strings share id's memory. A state that decodes encodes
// back to id exactly.
func ParseFlowState(id string) (FlowState, bool) {
	if len(id) > maxFlowStateLength || len(id) < len(flowPrefix) || id[:len(flowPrefix)] != flowPrefix {
		return FlowState{}, false
	}
	var f [6]string
	n := 0
	for rest := id[len(flowPrefix):]; ; {
		if n == len(f) {
			return FlowState{}, false
		}
		i := 0
		for i < len(rest) && rest[i] != ':' {
			i++
		}
		f[n] = rest[:i]
		n++
		if i == len(rest) {
			break
		}
		rest = rest[i+1:]
	}
	if n < 4 || !ValidFlowName(f[0]) || !ValidFlowName(f[2]) {
		return FlowState{}, false
	}
	version, ok := canonicalDecimal(f[1], MaxFlowVersion)
	if !ok || version < 1 {
		return FlowState{}, false
	}
	tries, ok := canonicalDecimal(f[3], MaxFlowTries)
	if !ok {
		return FlowState{}, false
	}
	s := FlowState{Flow: f[0], Version: version, Step: f[2], Tries: int(tries)}
	k := 4
	if k < n && f[k] == "r" {
		s.Restarted = true
		k++
	}
	if k < n && isSessionID(f[k]) {
		s.Session = f[k]
		k++
	}
	if k != n {
		return FlowState{}, false
	}
	return s, true
}

// canonicalDecimal reads s as a decimal from 0 to limit written the one
// way strconv writes it: digits only, no leading zero but for "0" itself.
func canonicalDecimal(s string, limit uint64) (uint64, bool) {
	if len(s) == 0 || len(s) > 20 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (limit-d)/10 {
			return 0, false // v*10+d > limit
		}
		v = v*10 + d
	}
	return v, true
}
