package wire

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// CheckCallflow checks, without building a Response, that b is a callflow
// callflow would answer itself: one JSON object with exactly the keys
// clientActionId (a string) and callflow (a non-empty array of actions),
// each action one of
//
//   - makeCall: source and destination strings, optional callRecording bool;
//   - say: text string; optional voiceProfile and language strings,
//     repetition integer, speed number;
//   - sayAndCapture: say's params, plus maxDigits, and optional minDigits,
//     digitTimeout, overallTimeout and noOfTries integers, completeOnHash
//     bool and endMessage string;
//   - playFile: fileUrl string; optional repetition integer;
//   - hangup;
//
// with no key it does not know and no key twice in one object, each param
// of its JSON type and within the ranges Response.Validate applies (see
// Capture and PlayFile; a capture integer given as 0 is out of range). An
// integer is judged on its exact value (2.0 is 2, 2.5 is refused), a
// number must be finite. Keys match exactly. Bytes that pass can be
// forwarded to 8x8 verbatim: there is one way to read them, and
// ParseResponse reads them so.
// It returns what the callflow means (see ClassifyClientAction); the
// verdict's strings may share b's memory. It allocates nothing for a
// callflow it accepts.
func CheckCallflow(b []byte) (Verdict, error) {
	// A view, not a copy: nothing read here outlives the call, and b is
	// not modified meanwhile.
	id, connects, err := checkCallflow(sharedString(b), nil)
	if err != nil {
		return Verdict{}, err
	}
	return ClassifyClientAction(id, connects), nil
}

// checkCallflow checks the callflow s (see CheckCallflow) and, when out is
// not nil, decodes it into out.
func checkCallflow(s string, out *Response) (id string, connects bool, err error) {
	d := scanner{s: s}
	if d.peek() != '{' {
		return "", false, fmt.Errorf("%w: not a JSON object", ErrInvalidResponse)
	}
	actions := 0
	var seenID, seenFlow bool
	err = d.object("", func(key string) error {
		switch key {
		case "clientActionId":
			if seenID {
				return duplicateKey("", key)
			}
			seenID = true
			if d.peek() != '"' {
				return fmt.Errorf("%w: clientActionId must be a string", ErrInvalidResponse)
			}
			var err error
			id, err = d.str("", key)
			return err
		case "callflow":
			if seenFlow {
				return duplicateKey("", key)
			}
			seenFlow = true
			return d.array(func() error {
				c, err := checkAction(&d, actions, out)
				connects = connects || c
				actions++
				return err
			})
		default:
			return fmt.Errorf("%w: unknown key %q", ErrInvalidResponse, key)
		}
	})
	if err == nil {
		err = d.end()
	}
	if err == nil && actions == 0 {
		err = fmt.Errorf("%w: empty callflow", ErrInvalidResponse)
	}
	if err != nil && !isInvalidResponse(err) {
		err = fmt.Errorf("%w: %v", ErrInvalidResponse, err)
	}
	if out != nil {
		if err != nil {
			*out = Response{}
		} else {
			out.ClientActionID = id
		}
	}
	return id, connects, err
}

func isInvalidResponse(err error) bool {
	for e := err; e != nil; {
		if e == ErrInvalidResponse {
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// duplicateKey is the error for an object of a reply that holds key twice;
// path names the object ("" for the reply itself). A reply with a key twice
// means what its reader decides (encoding/json takes the last, others the
// first), so the ingest would record and count one answer while 8x8 acts
// on another.
func duplicateKey(path, key string) error {
	if path == "" {
		return fmt.Errorf("%w: duplicate key %q", ErrInvalidResponse, key)
	}
	return fmt.Errorf("%w: %s: duplicate key %q", ErrInvalidResponse, path, key)
}

// paramKind is the JSON type a callflow parameter must have.
type paramKind int

const (
	pString paramKind = iota
	pBool
	pInt
	pNumber
)

// paramSpec is the JSON type of a param and, for an integer, the range of
// a value given.
type paramSpec struct {
	kind     paramKind
	min, max int64
}

var (
	specString     = paramSpec{kind: pString}
	specBool       = paramSpec{kind: pBool}
	specNumber     = paramSpec{kind: pNumber}
	specRepetition = paramSpec{pInt, 0, math.MaxInt}
	specDigits     = paramSpec{pInt, 1, MaxCaptureDigits}
	specMillis     = paramSpec{pInt, MinCaptureTimeoutMillis, MaxCaptureTimeoutMillis}
	specTries      = paramSpec{pInt, 1, MaxCaptureTries}
)

// actionParams are the params each action takes.
var actionParams = map[string]map[string]paramSpec{
	ActionMakeCall: {"source": specString, "destination": specString, "callRecording": specBool},
	ActionSay: {
		"text": specString, "voiceProfile": specString, "language": specString,
		"repetition": specRepetition, "speed": specNumber,
	},
	ActionSayAndCapture: {
		"text": specString, "voiceProfile": specString, "language": specString,
		"repetition": specRepetition, "speed": specNumber,
		"minDigits": specDigits, "maxDigits": specDigits, "digitTimeout": specMillis, "overallTimeout": specMillis,
		"completeOnHash": specBool, "noOfTries": specTries, "endMessage": specString,
	},
	ActionPlayFile: {"fileUrl": specString, "repetition": specRepetition},
	ActionHangup:   {},
}

// maxActionParams bounds the params of one action (in actionParams), so
// that checkAction can list the keys it has read in an array.
const maxActionParams = 12

// paramsBox holds an action's params and the bool CompleteOnHash points
// to: one allocation for both.
type paramsBox struct {
	p    Params
	hash bool
}

// checkAction checks callflow[i] (see CheckCallflow) and, when out is not
// nil, appends it to out.Callflow.
func checkAction(d *scanner, i int, out *Response) (connects bool, err error) {
	if d.peek() != '{' {
		return false, fmt.Errorf("%w: callflow[%d]: not an object", ErrInvalidResponse, i)
	}
	var name string
	var paramsStart, paramsEnd int = -1, -1
	seenAction := false
	err = d.object("", func(key string) error {
		switch key {
		case "action":
			if seenAction {
				return duplicateKey(fmt.Sprintf("callflow[%d]", i), key)
			}
			seenAction = true
			if d.peek() != '"' {
				return fmt.Errorf("%w: callflow[%d].action must be a string", ErrInvalidResponse, i)
			}
			s, err := d.rawString()
			name = s
			return err
		case "params":
			if paramsStart >= 0 {
				return duplicateKey(fmt.Sprintf("callflow[%d]", i), key)
			}
			if d.peek() != '{' {
				return fmt.Errorf("%w: callflow[%d].params must be an object", ErrInvalidResponse, i)
			}
			paramsStart = d.i
			err := d.skip()
			paramsEnd = d.i
			return err
		default:
			return fmt.Errorf("%w: callflow[%d]: unknown key %q", ErrInvalidResponse, i, key)
		}
	})
	if err != nil {
		return false, err
	}
	allowed, ok := actionParams[name]
	if !ok {
		return false, fmt.Errorf("%w: callflow[%d]: unknown action %q", ErrInvalidResponse, i, name)
	}
	// The params as read, checked by actionProblem like a Response's.
	// keys holds every param read, to refuse one given twice; each is
	// one of the action's allowed params, so there are never more than
	// those.
	var params Params
	// completeOnHash, kept apart: a pointer to a local here would move it
	// to the heap.
	var hash, hashSet bool
	var keys [maxActionParams]string
	nkeys := 0
	if paramsStart >= 0 {
		p := scanner{s: d.s[:paramsEnd], i: paramsStart}
		err = p.object("", func(key string) error {
			spec, ok := allowed[key]
			if !ok {
				return fmt.Errorf("%w: callflow[%d]: %s takes no param %q", ErrInvalidResponse, i, name, key)
			}
			if slices.Contains(keys[:nkeys], key) {
				return duplicateKey(fmt.Sprintf("callflow[%d].params", i), key)
			}
			keys[nkeys] = key
			nkeys++
			c := p.peek()
			switch {
			case spec.kind == pString && c == '"':
				s, err := p.rawString()
				if err != nil {
					return err
				}
				setString(&params, key, s)
				return nil
			case spec.kind == pBool && (c == 't' || c == 'f'):
				v := c == 't'
				if v {
					err = p.literal("true")
				} else {
					err = p.literal("false")
				}
				if key == "completeOnHash" {
					hash, hashSet = v, true
				} else {
					params.CallRecording = v
				}
				return err
			case spec.kind == pInt && c >= '0' && c <= '9':
				n, err := p.integer("", key)
				if err != nil {
					return fmt.Errorf("%w: callflow[%d].params.%s must be a whole number", ErrInvalidResponse, i, key)
				}
				if n < spec.min || n > spec.max {
					return fmt.Errorf("%w: callflow[%d].params.%s must be from %d to %d", ErrInvalidResponse, i, key, spec.min, spec.max)
				}
				setInt(&params, key, int(n))
				return nil
			case spec.kind == pNumber && c >= '0' && c <= '9':
				num, err := p.number()
				if err != nil {
					return err
				}
				// As encoding/json reads it: a value beyond float64 is
				// refused, not taken as infinity.
				f, err := strconv.ParseFloat(num, 64)
				if err != nil {
					return fmt.Errorf("%w: callflow[%d].params.%s must be a finite number", ErrInvalidResponse, i, key)
				}
				params.Speed = f
				return nil
			}
			return fmt.Errorf("%w: callflow[%d].params.%s has the wrong type", ErrInvalidResponse, i, key)
		})
		if err != nil {
			return false, err
		}
	}
	if param, problem := actionProblem(name, &params); problem != "" {
		return false, paramError(i, name, param, problem)
	}
	if out != nil {
		a := Action{Action: name}
		if paramsStart >= 0 {
			box := &paramsBox{p: params, hash: hash}
			if hashSet {
				box.p.CompleteOnHash = &box.hash
			}
			a.Params = &box.p
		}
		out.Callflow = append(out.Callflow, a)
	}
	return name == ActionMakeCall, nil
}

// setString sets the string param key of p.
func setString(p *Params, key, v string) {
	switch key {
	case "source":
		p.Source = v
	case "destination":
		p.Destination = v
	case "text":
		p.Text = v
	case "voiceProfile":
		p.VoiceProfile = v
	case "language":
		p.Language = v
	case "endMessage":
		p.EndMessage = v
	case "fileUrl":
		p.FileURL = v
	}
}

// setInt sets the integer param key of p.
func setInt(p *Params, key string, v int) {
	switch key {
	case "repetition":
		p.Repetition = v
	case "minDigits":
		p.MinDigits = v
	case "maxDigits":
		p.MaxDigits = v
	case "digitTimeout":
		p.DigitTimeout = v
	case "overallTimeout":
		p.OverallTimeout = v
	case "noOfTries":
		p.NoOfTries = v
	}
}
