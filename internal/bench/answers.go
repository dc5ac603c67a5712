package bench

import (
	"bytes"
	"encoding/json"

	"github.com/callflow/callflow/wire"
)

// Answer is what a 200 answer was.
type Answer uint8

// Kinds of answer.
const (
	// AnswerConnect is a callflow with a makeCall.
	AnswerConnect Answer = iota
	// AnswerOutOfSession is the out-of-session callflow (clientActionId
	// wire.ClientActionOutOfSession).
	AnswerOutOfSession
	// AnswerFallback is the fallback callflow (clientActionId
	// wire.ClientActionFallback):
	// no decider answered.
	AnswerFallback
	// AnswerAck is the JSON answer to a webhook that is not a CALL_ACTION.
	AnswerAck
	// AnswerOther is a valid callflow that is none of the above.
	AnswerOther
	// AnswerBad is an answer 8x8 could not use: not a valid callflow for a
	// CALL_ACTION, not a JSON object for another event.
	AnswerBad
	numAnswers
)

var answerNames = [numAnswers]string{"connect", "out_of_session", "fallback", "ack", "other", "bad"}

// String names the answer kind as reports do.
func (a Answer) String() string { return answerNames[a] }

// ClassifyCallflow classifies the 200 answer to a CALL_ACTION.
func ClassifyCallflow(body []byte) Answer {
	r, err := wire.ParseResponse(body)
	if err != nil {
		return AnswerBad
	}
	switch r.ClientActionID {
	case wire.ClientActionFallback:
		return AnswerFallback
	case wire.ClientActionOutOfSession:
		return AnswerOutOfSession
	}
	for _, a := range r.Callflow {
		if a.Action == wire.ActionMakeCall {
			return AnswerConnect
		}
	}
	return AnswerOther
}

// ClassifyAck classifies the 200 answer to any other event: a JSON object
// is an acknowledgement.
func ClassifyAck(body []byte) Answer {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' || !json.Valid(b) {
		return AnswerBad
	}
	return AnswerAck
}

// classifier classifies answers for one worker. Callflow answers repeat
// (one per session, one out-of-session, one fallback), so they are
// remembered by their bytes and parsed once: the load generator shares the
// machine with the system it measures and must stay cheap.
type classifier struct {
	seen map[string]Answer
}

const classifierCacheSize = 4096

func newClassifier() *classifier { return &classifier{seen: make(map[string]Answer)} }

func (c *classifier) classify(kind Kind, body []byte) Answer {
	if !kind.IsCall() {
		return ClassifyAck(body)
	}
	if a, ok := c.seen[string(body)]; ok {
		return a
	}
	a := ClassifyCallflow(body)
	if len(c.seen) < classifierCacheSize {
		c.seen[string(body)] = a
	}
	return a
}
