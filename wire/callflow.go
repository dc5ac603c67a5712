package wire

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Callflow action names.
const (
	ActionMakeCall      = "makeCall"
	ActionSay           = "say"
	ActionHangup        = "hangup"
	ActionSayAndCapture = "sayAndCapture" // not produced; refused in replies
	ActionPlayFile      = "playFile"
)

// Response is the body of the HTTP 200 that answers a CALL_ACTION.
type Response struct {
	ClientActionID string   `json:"clientActionId"`
	Callflow       []Action `json:"callflow"`
}

// Action is one step of a callflow. Params holds the parameters of every
// action kind; only those of Action's kind are encoded.
type Action struct {
	Action string  `json:"action"`
	Params *Params `json:"params,omitempty"`
}

// Params are the parameters of makeCall and say.
type Params struct {
	// makeCall
	Source        string `json:"source,omitempty"`
	Destination   string `json:"destination,omitempty"`
	CallRecording bool   `json:"callRecording,omitempty"`

	// say
	Text         string  `json:"text,omitempty"`
	VoiceProfile string  `json:"voiceProfile,omitempty"`
	Language     string  `json:"language,omitempty"`
	Repetition   int     `json:"repetition,omitempty"`
	Speed        float64 `json:"speed,omitempty"`
}

// Say is the text-to-speech part of a say action, as configured for
// greetings, the out-of-session answer and the fallback.
type Say struct {
	Text         string  `json:"text"`
	VoiceProfile string  `json:"voiceProfile,omitempty"`
	Language     string  `json:"language,omitempty"`
	Repetition   int     `json:"repetition,omitempty"`
	Speed        float64 `json:"speed,omitempty"`
}

// MakeCall connects the caller to destination, presenting source (the
// virtual number) as the calling number.
func MakeCall(source, destination string, callRecording bool) Action {
	return Action{Action: ActionMakeCall, Params: &Params{Source: source, Destination: destination, CallRecording: callRecording}}
}

// SayAction plays s to the caller.
func SayAction(s Say) Action {
	return Action{Action: ActionSay, Params: &Params{
		Text: s.Text, VoiceProfile: s.VoiceProfile, Language: s.Language,
		Repetition: s.Repetition, Speed: s.Speed,
	}}
}

// Hangup ends the call session.
func Hangup() Action { return Action{Action: ActionHangup} }

// SayThenHangup is the answer for callers who cannot be connected.
func SayThenHangup(clientActionID string, s Say) Response {
	return Response{ClientActionID: clientActionID, Callflow: []Action{SayAction(s), Hangup()}}
}

// AppendJSON appends the response as strict JSON.
func (r *Response) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	dst = appendField(dst, true, "clientActionId", r.ClientActionID)
	dst = append(dst, `,"callflow":[`...)
	for i := range r.Callflow {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = r.Callflow[i].appendJSON(dst)
	}
	return append(dst, ']', '}')
}

// JSON returns the response as strict JSON.
func (r *Response) JSON() []byte { return r.AppendJSON(make([]byte, 0, 256)) }

func (a *Action) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	dst = appendField(dst, true, "action", a.Action)
	p := a.Params
	if p == nil || a.Action == ActionHangup {
		return append(dst, '}')
	}
	dst = append(dst, `,"params":{`...)
	first := true
	key := func(k string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, k...)
		dst = append(dst, '"', ':')
	}
	str := func(k, v string) {
		if v != "" {
			key(k)
			dst = AppendString(dst, v)
		}
	}
	switch a.Action {
	case ActionMakeCall:
		str("source", p.Source)
		str("destination", p.Destination)
		if p.CallRecording {
			key("callRecording")
			dst = append(dst, "true"...)
		}
	default:
		str("text", p.Text)
		str("voiceProfile", p.VoiceProfile)
		str("language", p.Language)
		if p.Repetition > 0 {
			key("repetition")
			dst = strconv.AppendInt(dst, int64(p.Repetition), 10)
		}
		if p.Speed > 0 && !math.IsInf(p.Speed, 0) {
			key("speed")
			dst = strconv.AppendFloat(dst, p.Speed, 'f', -1, 64)
		}
	}
	return append(dst, '}', '}')
}

// ParseResponse checks a callflow strictly (see CheckCallflow) and decodes
// it. Errors match ErrInvalidResponse.
func ParseResponse(b []byte) (*Response, error) {
	if _, err := CheckCallflow(b); err != nil {
		return nil, err
	}
	var r Response
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidResponse, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks that 8x8 could execute the callflow, and that it holds
// only actions this package encodes completely (makeCall, say,
// sayAndCapture's say part, hangup), so that re-encoding loses nothing.
func (r *Response) Validate() error {
	if len(r.Callflow) == 0 {
		return fmt.Errorf("%w: empty callflow", ErrInvalidResponse)
	}
	for i, a := range r.Callflow {
		switch a.Action {
		case ActionMakeCall:
			if a.Params == nil || a.Params.Source == "" || a.Params.Destination == "" {
				return fmt.Errorf("%w: callflow[%d]: makeCall needs source and destination", ErrInvalidResponse, i)
			}
		case ActionSay:
			if a.Params == nil || a.Params.Text == "" {
				return fmt.Errorf("%w: callflow[%d]: %s needs text", ErrInvalidResponse, i, a.Action)
			}
		case ActionHangup:
		default:
			return fmt.Errorf("%w: callflow[%d]: unknown action %q", ErrInvalidResponse, i, a.Action)
		}
	}
	return nil
}

// Validate checks a configured say: it needs a text, and its optional
// repetition and speed cannot be negative.
func (s Say) Validate() error {
	switch {
	case s.Text == "":
		return fmt.Errorf("text is required")
	case s.Repetition < 0:
		return fmt.Errorf("repetition must be >= 0")
	case s.Speed < 0 || math.IsNaN(s.Speed) || math.IsInf(s.Speed, 0):
		return fmt.Errorf("speed must be a finite number >= 0")
	}
	return nil
}
