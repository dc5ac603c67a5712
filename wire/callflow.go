package wire

import (
	"fmt"
	"math"
	"strconv"
)

// Callflow action names: the five 8x8 call actions.
const (
	ActionMakeCall      = "makeCall"
	ActionSay           = "say"
	ActionHangup        = "hangup"
	ActionSayAndCapture = "sayAndCapture"
	ActionPlayFile      = "playFile"
)

// Ranges of the sayAndCapture and playFile params, checked by
// Capture.Validate, PlayFile.Validate, Response.Validate and CheckCallflow
// alike. A capture param that is 0 in Go is absent from the JSON (8x8's
// default applies); given in JSON, it must be within its range.
const (
	// MaxCaptureDigits bounds minDigits and maxDigits: 1 to 20 digits,
	// the range 8x8's reference gives for digit capture. minDigits <=
	// maxDigits.
	MaxCaptureDigits = 20
	// MinCaptureTimeoutMillis and MaxCaptureTimeoutMillis bound
	// digitTimeout and overallTimeout, in milliseconds: one second to five
	// minutes. A digitTimeout needs an overallTimeout at least as long
	// (8x8 refuses a digitTimeout without an overallTimeout).
	MinCaptureTimeoutMillis = 1000
	MaxCaptureTimeoutMillis = 300_000
	// MaxCaptureTries bounds noOfTries: 1 to 10.
	MaxCaptureTries = 10
	// MaxFileURLLength bounds playFile's fileUrl, in bytes.
	MaxFileURLLength = 2048
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

// Params are the parameters of every call action; each action encodes
// only its own (see Action.Params). Build them with the constructors.
type Params struct {
	// makeCall
	Source        string `json:"source,omitempty"`
	Destination   string `json:"destination,omitempty"`
	CallRecording bool   `json:"callRecording,omitempty"`

	// say and sayAndCapture (repetition: also playFile)
	Text         string  `json:"text,omitempty"`
	VoiceProfile string  `json:"voiceProfile,omitempty"`
	Language     string  `json:"language,omitempty"`
	Repetition   int     `json:"repetition,omitempty"`
	Speed        float64 `json:"speed,omitempty"`

	// sayAndCapture; timeouts in milliseconds. CompleteOnHash is nil when
	// absent (8x8's default); SayAndCaptureAction always sets it.
	MinDigits      int    `json:"minDigits,omitempty"`
	MaxDigits      int    `json:"maxDigits,omitempty"`
	DigitTimeout   int    `json:"digitTimeout,omitempty"`
	OverallTimeout int    `json:"overallTimeout,omitempty"`
	CompleteOnHash *bool  `json:"completeOnHash,omitempty"`
	NoOfTries      int    `json:"noOfTries,omitempty"`
	EndMessage     string `json:"endMessage,omitempty"`

	// playFile
	FileURL string `json:"fileUrl,omitempty"`
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

// Capture is a sayAndCapture: Say's prompt, then the digits the caller
// presses. 8x8 sends them in the call's next CALL_ACTION (callStatus
// ACTION_COMPLETED, with the answer's clientActionId echoed) as
// eventData.dtmf, which ParseEvent reads into Payload.DTMF.
//
// Ranges (see Validate): MaxDigits 1 to MaxCaptureDigits (required);
// MinDigits 0 (8x8's default) or 1 to MaxDigits; DigitTimeout (between two
// presses) and OverallTimeout (for the whole input) 0 (8x8's default) or
// MinCaptureTimeoutMillis to MaxCaptureTimeoutMillis, a DigitTimeout
// needing an OverallTimeout at least as long; NoOfTries 0 (8x8's default)
// or 1 to MaxCaptureTries; Repetition and Speed as Say's.
type Capture struct {
	Say
	MinDigits      int  `json:"minDigits,omitempty"`
	MaxDigits      int  `json:"maxDigits"`
	DigitTimeout   int  `json:"digitTimeout,omitempty"`
	OverallTimeout int  `json:"overallTimeout,omitempty"`
	CompleteOnHash bool `json:"completeOnHash"`
	NoOfTries      int  `json:"noOfTries,omitempty"`
	// EndMessage is spoken when the input is complete (optional).
	EndMessage string `json:"endMessage,omitempty"`
}

// PlayFile plays an audio file (mp3 or wav, as 8x8 accepts) to the
// caller. FileURL is an absolute https URL (see Validate); Repetition is
// as Say's (0: 8x8's default, once).
type PlayFile struct {
	FileURL    string `json:"fileUrl"`
	Repetition int    `json:"repetition,omitempty"`
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

// SayAndCaptureAction plays c's prompt and collects the caller's digits.
// completeOnHash is always encoded, true or false, so that 8x8's default
// never decides.
func SayAndCaptureAction(c Capture) Action {
	// One allocation for the params and the bool they point to.
	a := &struct {
		p    Params
		hash bool
	}{hash: c.CompleteOnHash}
	a.p = Params{
		Text: c.Text, VoiceProfile: c.VoiceProfile, Language: c.Language,
		Repetition: c.Repetition, Speed: c.Speed,
		MinDigits: c.MinDigits, MaxDigits: c.MaxDigits,
		DigitTimeout: c.DigitTimeout, OverallTimeout: c.OverallTimeout,
		CompleteOnHash: &a.hash, NoOfTries: c.NoOfTries, EndMessage: c.EndMessage,
	}
	return Action{Action: ActionSayAndCapture, Params: &a.p}
}

// PlayFileAction plays the audio file of f to the caller.
func PlayFileAction(f PlayFile) Action {
	return Action{Action: ActionPlayFile, Params: &Params{FileURL: f.FileURL, Repetition: f.Repetition}}
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
	// Integers are written when positive: 0 (and what Validate refuses
	// below it) is 8x8's default.
	num := func(k string, v int) {
		if v > 0 {
			key(k)
			dst = strconv.AppendInt(dst, int64(v), 10)
		}
	}
	say := func() {
		str("text", p.Text)
		str("voiceProfile", p.VoiceProfile)
		str("language", p.Language)
		num("repetition", p.Repetition)
		if p.Speed > 0 && !math.IsInf(p.Speed, 0) {
			key("speed")
			dst = strconv.AppendFloat(dst, p.Speed, 'f', -1, 64)
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
	case ActionSayAndCapture:
		say()
		num("minDigits", p.MinDigits)
		num("maxDigits", p.MaxDigits)
		num("digitTimeout", p.DigitTimeout)
		num("overallTimeout", p.OverallTimeout)
		if p.CompleteOnHash != nil {
			key("completeOnHash")
			dst = strconv.AppendBool(dst, *p.CompleteOnHash)
		}
		num("noOfTries", p.NoOfTries)
		str("endMessage", p.EndMessage)
	case ActionPlayFile:
		str("fileUrl", p.FileURL)
		num("repetition", p.Repetition)
	default:
		say()
	}
	return append(dst, '}', '}')
}

// ParseResponse checks a callflow strictly (see CheckCallflow) and decodes
// it: what it returns is what CheckCallflow accepted, read the same way,
// and passes Validate. Params is nil for an action without "params".
// Errors match ErrInvalidResponse.
func ParseResponse(b []byte) (*Response, error) {
	var r Response
	// A copy: the response's strings outlive b.
	if _, _, err := checkCallflow(string(b), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks that 8x8 could execute the callflow: a known action
// each, with the params it needs within their ranges (see Capture and
// PlayFile; say's repetition and speed as Say.Validate), by the rules
// CheckCallflow applies to decider replies.
func (r *Response) Validate() error {
	if len(r.Callflow) == 0 {
		return fmt.Errorf("%w: empty callflow", ErrInvalidResponse)
	}
	for i, a := range r.Callflow {
		if _, ok := actionParams[a.Action]; !ok {
			return fmt.Errorf("%w: callflow[%d]: unknown action %q", ErrInvalidResponse, i, a.Action)
		}
		p := a.Params
		if p == nil {
			p = &Params{}
		}
		if param, problem := actionProblem(a.Action, p); problem != "" {
			return paramError(i, a.Action, param, problem)
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

// Validate checks a sayAndCapture: its prompt as Say.Validate does
// (text required, repetition and speed not negative), and the ranges
// documented on Capture. The error names the param.
func (c Capture) Validate() error {
	return paramProblemError(actionProblem(ActionSayAndCapture, &Params{
		Text: c.Text, Repetition: c.Repetition, Speed: c.Speed,
		MinDigits: c.MinDigits, MaxDigits: c.MaxDigits,
		DigitTimeout: c.DigitTimeout, OverallTimeout: c.OverallTimeout, NoOfTries: c.NoOfTries,
	}))
}

// Validate checks a playFile: fileUrl is required and must be an
// absolute https URL (see validFileURL); repetition cannot be negative.
// The error names the param.
func (f PlayFile) Validate() error {
	return paramProblemError(actionProblem(ActionPlayFile, &Params{FileURL: f.FileURL, Repetition: f.Repetition}))
}

// problemRequired is actionProblem's problem for a param that is missing
// (or, for a string, empty).
const problemRequired = "is required"

func paramProblemError(param, problem string) error {
	if problem == "" {
		return nil
	}
	return fmt.Errorf("%s %s", param, problem)
}

// paramError is the error for callflow[i], action name, whose param has
// problem (from actionProblem).
func paramError(i int, name, param, problem string) error {
	if problem == problemRequired {
		return fmt.Errorf("%w: callflow[%d]: %s needs %s", ErrInvalidResponse, i, name, param)
	}
	return fmt.Errorf("%w: callflow[%d].params.%s %s", ErrInvalidResponse, i, param, problem)
}

// actionProblem reports the first param of an action called name, with
// params p, that 8x8 could not execute: the param's JSON name and what is
// wrong with it, or "", "" when nothing is. It is the one rule behind
// Response.Validate, CheckCallflow, Capture.Validate and PlayFile.Validate.
// A capture integer that is 0 counts as absent (CheckCallflow refuses a 0
// given in JSON before this). Problems are constant strings, so that the
// check of a good action allocates nothing.
func actionProblem(name string, p *Params) (param, problem string) {
	switch name {
	case ActionMakeCall:
		switch {
		case p.Source == "":
			return "source", problemRequired
		case p.Destination == "":
			return "destination", problemRequired
		}
	case ActionSay:
		if p.Text == "" {
			return "text", problemRequired
		}
		return sayProblem(p)
	case ActionSayAndCapture:
		const (
			digits  = "must be from 1 to 20"
			timeout = "must be from 1000 to 300000 (milliseconds)"
		)
		switch {
		case p.Text == "":
			return "text", problemRequired
		case p.MaxDigits == 0:
			return "maxDigits", problemRequired
		case p.MaxDigits < 1 || p.MaxDigits > MaxCaptureDigits:
			return "maxDigits", digits
		case p.MinDigits < 0 || p.MinDigits > MaxCaptureDigits:
			return "minDigits", digits
		case p.MinDigits > p.MaxDigits:
			return "minDigits", "must not exceed maxDigits"
		case p.DigitTimeout != 0 && (p.DigitTimeout < MinCaptureTimeoutMillis || p.DigitTimeout > MaxCaptureTimeoutMillis):
			return "digitTimeout", timeout
		case p.OverallTimeout != 0 && (p.OverallTimeout < MinCaptureTimeoutMillis || p.OverallTimeout > MaxCaptureTimeoutMillis):
			return "overallTimeout", timeout
		case p.DigitTimeout != 0 && p.OverallTimeout == 0:
			return "overallTimeout", "is required with digitTimeout"
		case p.DigitTimeout > p.OverallTimeout && p.OverallTimeout != 0:
			return "digitTimeout", "must not exceed overallTimeout"
		case p.NoOfTries < 0 || p.NoOfTries > MaxCaptureTries:
			return "noOfTries", "must be from 1 to 10"
		}
		return sayProblem(p)
	case ActionPlayFile:
		if p.FileURL == "" {
			return "fileUrl", problemRequired
		}
		if problem := fileURLProblem(p.FileURL); problem != "" {
			return "fileUrl", problem
		}
		if p.Repetition < 0 {
			return "repetition", "must be >= 0"
		}
	}
	return "", ""
}

// sayProblem checks the optional say params of p (as Say.Validate).
func sayProblem(p *Params) (param, problem string) {
	switch {
	case p.Repetition < 0:
		return "repetition", "must be >= 0"
	case p.Speed < 0 || math.IsNaN(p.Speed) || math.IsInf(p.Speed, 0):
		return "speed", "must be a finite number >= 0"
	}
	return "", ""
}

// fileURLProblem says what makes u unfit as a playFile fileUrl, or "".
// A fileUrl is an absolute https URL of at most MaxFileURLLength bytes:
// "https://" (lower case), a host name or IPv4 address (letters, digits,
// '.' and '-') with an optional port from 1 to 65535, no credentials, then
// an optional path, query and fragment of printable ASCII as RFC 3986
// allows (anything else percent-encoded, each '%' followed by two hex
// digits). 8x8 fetches the file itself; plain http would let anyone on the
// way replace what callers hear.
func fileURLProblem(u string) string {
	const scheme = "https://"
	if len(u) > MaxFileURLLength {
		return "must be at most 2048 bytes"
	}
	if len(u) < len(scheme) || u[:len(scheme)] != scheme {
		return "must be an absolute https URL"
	}
	rest := u[len(scheme):]
	end := len(rest)
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c == '/' || c == '?' || c == '#' {
			end = i
			break
		}
	}
	authority := rest[:end]
	for i := 0; i < len(authority); i++ {
		if authority[i] == '@' {
			return "must not carry credentials"
		}
	}
	host, port := authority, ""
	for i := 0; i < len(authority); i++ {
		switch c := authority[i]; {
		case c == ':':
			host, port = authority[:i], authority[i+1:]
			i = len(authority)
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-':
		default:
			return "must name its host by name or IPv4 address"
		}
	}
	if host == "" || host[0] == '.' || host[0] == '-' {
		return "must name its host by name or IPv4 address"
	}
	if authority != host {
		n := 0
		for i := 0; i < len(port); i++ {
			c := port[i]
			if c < '0' || c > '9' || n > 65535 {
				return "must have a port from 1 to 65535"
			}
			n = n*10 + int(c-'0')
		}
		if n < 1 || n > 65535 || port[0] == '0' {
			return "must have a port from 1 to 65535"
		}
	}
	tail := rest[end:]
	for i := 0; i < len(tail); i++ {
		c := tail[i]
		switch {
		case c == '%':
			if i+2 >= len(tail) || !isHex(tail[i+1]) || !isHex(tail[i+2]) {
				return "must percent-encode with two hex digits"
			}
			i += 2
		case !urlByte[c]:
			return "must percent-encode spaces, quotes and non-ASCII"
		}
	}
	return ""
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// urlByte marks the bytes a URL's path, query and fragment hold
// unencoded: RFC 3986's unreserved and reserved characters but '[' and
// ']' (for hosts only), and '%' (checked apart).
var urlByte = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#@!$&'()*+,;=") {
		t[c] = true
	}
	return t
}()
