package decider

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
)

// maxCachedPolicies bounds the answers an answerCache holds; past it, the
// cache starts over. Each entry is a few hundred bytes.
const maxCachedPolicies = 4096

// answerCache holds the encoded answers of out-of-session policies, keyed
// by the policy's pointer: the session index never changes a policy in
// place (a changed number or sub-account is a new object), so a pointer
// always stands for the same answer, and a lookup costs no allocation. A
// policy replaced in the index stays cached, unused, until the cache
// starts over.
type answerCache struct {
	m sync.Map // *session.Policy → *policyAnswer
	n atomic.Int64
}

// policyAnswer is a policy's callflow for any virtual number: head, the
// virtual number (a forward's makeCall source; +digits need no escaping),
// then tail. A hangup's callflow names no number: all of it is in head.
type policyAnswer struct {
	source     string // whose policy: part of the clientActionId
	head, tail []byte
	virtual    bool // the virtual number goes between head and tail
	verdict    wire.Verdict
}

func (a *policyAnswer) append(dst []byte, virtual string) []byte {
	dst = append(dst, a.head...)
	if a.virtual {
		dst = append(dst, virtual...)
		dst = append(dst, a.tail...)
	}
	return dst
}

// append appends pol's answer on virtual (from source, a wire.Policy*) to
// dst. A policy the deciders cannot carry out (an unknown action, a forward
// without a usable destination: the store validates policies, so only a
// hand-edited bucket holds one) gets dflt, the default answer.
func (c *answerCache) append(dst []byte, pol *session.Policy, source, virtual string, dflt []byte) ([]byte, wire.Verdict) {
	if source == "" {
		source = wire.PolicyDefault
	}
	if v, ok := c.m.Load(pol); ok {
		if a := v.(*policyAnswer); a.source == source {
			return a.append(dst, virtual), a.verdict
		}
	}
	a, ok := encodePolicy(pol, source, virtual, dflt)
	if !ok {
		// Not cacheable: encoded for this call alone.
		return a.append(dst, virtual), a.verdict
	}
	if _, loaded := c.m.LoadOrStore(pol, a); !loaded && c.n.Add(1) > maxCachedPolicies {
		c.m.Clear()
		c.n.Store(0)
	}
	return a.append(dst, virtual), a.verdict
}

// sentinel stands for the virtual number while a forward is encoded once
// for every number; it encodes as \u0000, which no number does.
const sentinel = "\x00"

// encodePolicy encodes pol's answer as a template for any virtual number,
// checked against a plain encoding for virtual; ok is false when the two
// differ (the answer is then that plain encoding, for virtual alone).
func encodePolicy(pol *session.Policy, source, virtual string, dflt []byte) (*policyAnswer, bool) {
	var say []wire.Action
	if pol.Say != nil && pol.Say.Text != "" {
		say = []wire.Action{wire.SayAction(*pol.Say)}
	}
	switch pol.Action {
	case session.PolicyHangup:
		r := wire.Response{ClientActionID: wire.OutOfSessionActionID(false, source), Callflow: append(say, wire.Hangup())}
		return &policyAnswer{source: source, head: r.JSON(), verdict: wire.Verdict{Outcome: wire.OutcomeOutOfSession, Policy: source}}, true
	case session.PolicyForward:
		dest, err := wire.NormalizeNumber(pol.Destination)
		if err != nil {
			break
		}
		id := wire.OutOfSessionActionID(true, source)
		verdict := wire.Verdict{Outcome: wire.OutcomeForward, Policy: source}
		tmpl := wire.Response{ClientActionID: id, Callflow: append(slices.Clip(say), wire.MakeCall(sentinel, dest, false))}
		plain := wire.Response{ClientActionID: id, Callflow: append(slices.Clip(say), wire.MakeCall(virtual, dest, false))}
		b, want := tmpl.JSON(), plain.JSON()
		mark := []byte(`\u0000`) // sentinel, encoded
		if i := bytes.LastIndex(b, mark); i >= 0 {
			a := &policyAnswer{source: source, head: b[:i:i], tail: b[i+len(mark):], virtual: true, verdict: verdict}
			if bytes.Equal(a.append(nil, virtual), want) {
				return a, true
			}
		}
		return &policyAnswer{source: source, head: want, verdict: verdict}, false
	}
	return &policyAnswer{source: source, head: dflt, verdict: defaultVerdict}, true
}
