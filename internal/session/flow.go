package session

import (
	"slices"
	"time"

	"github.com/callflow/callflow/wire"
)

// Flow is an IVR flow: named steps, each of one kind, that a call walks
// from Start. A flow is attached to a number (Number.Flow) or made the
// default of a sub-account (SubAccount.DefaultFlow); a CALL_RECEIVED on
// such a number starts at Start. As JSON:
//
//	{
//	  "id": "main-menu",
//	  "subAccountId": "acme",
//	  "start": "welcome",
//	  "steps": {
//	    "welcome": {"menu": {"say": {"text": "For sales press 1. For your driver press 2."},
//	                         "maxDigits": 1, "timeoutSeconds": 5, "tries": 3,
//	                         "options": {"1": "sales", "2": "driver"}, "onFailure": "bye"}},
//	    "sales":   {"transfer": {"destination": "+6560000001", "say": {"text": "Connecting you to sales."}}},
//	    "driver":  {"pin": {"say": {"text": "Enter your order PIN, then hash."},
//	                        "minDigits": 4, "maxDigits": 8, "tries": 2, "onFailure": "bye"}},
//	    "bye":     {"hangup": {"say": {"text": "Goodbye."}}}
//	  },
//	  "version": 3,
//	  "updatedAt": "2026-05-01T10:00:00Z"
//	}
//
// Every stored version of a flow is immutable: a change is a new version
// (Version+1), and a call already in a flow finishes on the version it
// started with (Store.FlowVersion) while Config.FlowRetention keeps it.
// Flows handed out by the Store are shared: never change them.
type Flow struct {
	// ID names the flow: 1 to 64 of A-Z a-z 0-9 _ -.
	ID string `json:"id"`
	// SubAccountID, when set, makes the flow its sub-account's: seen only
	// by tokens covering it, attached only to its numbers and to it. A
	// flow without one is seen only by unlimited tokens and may be
	// attached anywhere.
	SubAccountID string `json:"subAccountId,omitempty"`
	// Start is the step a call begins at.
	Start string `json:"start"`
	// Steps are the flow's steps by name (names as IDs).
	Steps map[string]Step `json:"steps"`
	// Version counts the flow's changes from 1. In a PUT it is optional:
	// when given it must be the version the change replaces, so that a
	// change made meanwhile is not overwritten (ErrFlowChanged).
	Version uint64 `json:"version,omitempty"`
	// UpdatedAt is when this version was stored; ignored in a PUT.
	UpdatedAt time.Time `json:"updatedAt"`
}

// Step kinds: a Step holds exactly one of them. Their names are the
// step's JSON key ({"menu": {...}}).
const (
	StepMenu     = "menu"
	StepTransfer = "transfer"
	StepPIN      = "pin"
	StepMasking  = "masking"
	StepPlay     = "play"
	StepHangup   = "hangup"
)

// StepKinds lists the step kinds in the order errors name them.
var StepKinds = []string{StepMenu, StepTransfer, StepPIN, StepMasking, StepPlay, StepHangup}

// Step is one step of a flow: exactly one of its fields is set.
type Step struct {
	Menu     *MenuStep     `json:"menu,omitempty"`
	Transfer *TransferStep `json:"transfer,omitempty"`
	PIN      *PINStep      `json:"pin,omitempty"`
	Masking  *MaskingStep  `json:"masking,omitempty"`
	Play     *PlayStep     `json:"play,omitempty"`
	Hangup   *HangupStep   `json:"hangup,omitempty"`

	// unknown holds the keys of the step's JSON object that name no step
	// kind, for Validate to refuse by name.
	unknown []string
}

// Kind returns the step's kind (one of the Step* constants) when it has
// exactly one, else "".
func (s Step) Kind() string {
	kinds := s.kinds()
	if len(kinds) != 1 || len(s.unknown) > 0 {
		return ""
	}
	return kinds[0]
}

// kinds returns the kinds set, in StepKinds order.
func (s Step) kinds() []string {
	var out []string
	for i, set := range []bool{s.Menu != nil, s.Transfer != nil, s.PIN != nil, s.Masking != nil, s.Play != nil, s.Hangup != nil} {
		if set {
			out = append(out, StepKinds[i])
		}
	}
	return out
}

// Prompt is what a step says or plays to the caller: a text to speech
// (Say) or an audio file (PlayFile). A play step needs one of them, not
// both; transfer (an announcement) and hangup (a goodbye) may have one.
// A menu or pin step captures digits with a sayAndCapture, whose text is
// its Say: Say is required, and a PlayFile, when given, plays before it
// (8x8 has no capture of its own after a file).
type Prompt struct {
	Say *wire.Say `json:"say,omitempty"`
	// PlayFile plays an audio file: fileUrl (an https URL, as
	// wire.PlayFile.Validate accepts) and repetition.
	PlayFile *wire.PlayFile `json:"playFile,omitempty"`
}

// Given reports whether the prompt says or plays anything.
func (p Prompt) Given() bool { return p.Say != nil || p.PlayFile != nil }

// MenuStep asks the caller to choose by pressing keys: the prompt (the
// playFile, when given, then the say that captures), then up to
// MaxDigits keys within TimeoutSeconds; the keys pressed pick an
// option. An invalid choice or no input is a failed try: the caller hears
// Retry (when set) and the prompt again, until Tries have failed, then
// goes to OnFailure (none: the call ends politely).
type MenuStep struct {
	Prompt
	// MaxDigits is how many keys are captured (1 to MaxFlowDigits;
	// default: the longest option's length).
	MaxDigits int `json:"maxDigits"`
	// TimeoutSeconds is how long the caller has to choose (1 to
	// MaxFlowTimeoutSeconds; default DefaultMenuTimeoutSeconds).
	TimeoutSeconds int `json:"timeoutSeconds"`
	// Tries is how often the caller is asked (1 to MaxFlowTries; default
	// DefaultFlowTries).
	Tries int `json:"tries"`
	// Options maps the keys pressed (1 to MaxDigits of 0-9 and *; never
	// #, which ends the input) to the step they lead to.
	Options map[string]string `json:"options"`
	// OnFailure is where a caller goes once every try failed; "" ends the
	// call.
	OnFailure string `json:"onFailure,omitempty"`
	// Retry is said before the prompt is asked again after a failed try
	// ("Sorry, that is not an option.").
	Retry *wire.Say `json:"retry,omitempty"`
}

// TransferStep connects the caller to Destination: the prompt (an
// optional announcement), then a makeCall from the virtual number called.
type TransferStep struct {
	Prompt
	// Destination is the number called, as +digits.
	Destination string `json:"destination"`
	// CallRecording asks 8x8 to record the call.
	CallRecording bool `json:"callRecording,omitempty"`
}

// PINStep asks the caller for a session PIN: the prompt (as a menu's),
// then MinDigits to MaxDigits digits (ended by # or TimeoutSeconds). A caller
// who is a participant of the open session on the number called whose pin
// equals them (Store.LookupPIN) is connected to the other participant;
// anything else is a failed try, retried like a menu's, then OnFailure
// (none: the call ends politely).
type PINStep struct {
	Prompt
	// MinDigits and MaxDigits bound the digits captured, within the
	// lengths of a session PIN (PINMinLength to PINMaxLength; defaults
	// those).
	MinDigits int `json:"minDigits"`
	MaxDigits int `json:"maxDigits"`
	// TimeoutSeconds is how long the caller has to enter it (1 to
	// MaxFlowTimeoutSeconds; default DefaultPINTimeoutSeconds).
	TimeoutSeconds int `json:"timeoutSeconds"`
	// Tries: as a menu's.
	Tries     int       `json:"tries"`
	OnFailure string    `json:"onFailure,omitempty"`
	Retry     *wire.Say `json:"retry,omitempty"`
}

// MaskingStep routes the call as number masking does without a flow: a
// caller who is a participant of an open session (without a pin) on the
// number called is connected to the other participant.
type MaskingStep struct {
	// OnFailure is where a caller in no such session goes; "" answers
	// with the out-of-session policy of the number, its sub-account or
	// the deciders, as without a flow.
	OnFailure string `json:"onFailure,omitempty"`
}

// PlayStep says or plays its prompt, then goes to Next ("" ends the
// call).
type PlayStep struct {
	Prompt
	Next string `json:"next,omitempty"`
}

// HangupStep ends the call, after its prompt when one is given.
type HangupStep struct {
	Prompt
}

// Transition is a way out of a step: the field that names it (relative
// to the step, as "menu.options.1"), the step it leads to, and whether
// the caller chose it (a menu option) or the flow goes there by itself
// (next, onFailure).
type Transition struct {
	Field  string
	To     string
	Chosen bool
}

// Transitions returns the ways out of the step that name a step, menu
// options first in the order of their keys.
func (s Step) Transitions() []Transition {
	var out []Transition
	add := func(field, to string, chosen bool) {
		if to != "" {
			out = append(out, Transition{field, to, chosen})
		}
	}
	if m := s.Menu; m != nil {
		keys := make([]string, 0, len(m.Options))
		for k := range m.Options {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			add(StepMenu+".options."+k, m.Options[k], true)
		}
		add(StepMenu+".onFailure", m.OnFailure, false)
	}
	if p := s.PIN; p != nil {
		add(StepPIN+".onFailure", p.OnFailure, false)
	}
	if m := s.Masking; m != nil {
		add(StepMasking+".onFailure", m.OnFailure, false)
	}
	if p := s.Play; p != nil {
		add(StepPlay+".next", p.Next, false)
	}
	return out
}
