package wire

import (
	"fmt"
	"slices"
	"unsafe"
)

// CheckCallflow checks, without building a Response, that b is a callflow
// callflow would answer itself: one JSON object with exactly the keys
// clientActionId (a string) and callflow (a non-empty array of actions),
// each action one of makeCall (source and destination strings, optional
// callRecording bool), say (text string; optional voiceProfile, language,
// repetition integer, speed number) or hangup, with no key it does not know
// and no key twice in one object. Keys match exactly. Bytes that pass can be
// forwarded to 8x8 verbatim: there is one way to read them.
// It returns what the callflow means (see ClassifyClientAction); the
// verdict's strings may share b's memory.
func CheckCallflow(b []byte) (Verdict, error) {
	id, connects, err := checkCallflow(b)
	if err != nil {
		return Verdict{}, err
	}
	return ClassifyClientAction(id, connects), nil
}

func checkCallflow(b []byte) (id string, connects bool, err error) {
	// A view, not a copy: nothing read here outlives the call, and b is
	// not modified meanwhile.
	d := scanner{s: unsafe.String(unsafe.SliceData(b), len(b))}
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
				c, err := checkAction(&d, actions)
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

var actionParams = map[string]map[string]paramKind{
	ActionMakeCall: {"source": pString, "destination": pString, "callRecording": pBool},
	ActionSay:      {"text": pString, "voiceProfile": pString, "language": pString, "repetition": pInt, "speed": pNumber},
	ActionHangup:   {},
}

// maxActionParams bounds the params of one action (in actionParams), so
// that checkAction can list the keys it has read in an array.
const maxActionParams = 8

// required params per action: present and, for strings, not empty.
var actionRequired = map[string][]string{
	ActionMakeCall: {"source", "destination"},
	ActionSay:      {"text"},
}

func checkAction(d *scanner, i int) (connects bool, err error) {
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
	// seen marks the required params present (not empty, for strings);
	// at most a few per action, so a short list beats a map. keys holds
	// every param read, to refuse one given twice; each is one of the
	// action's allowed params, so there are never more than those.
	var seen [4]string
	nseen := 0
	var keys [maxActionParams]string
	nkeys := 0
	mark := func(key string) {
		if nseen < len(seen) && slices.Contains(actionRequired[name], key) {
			seen[nseen] = key
			nseen++
		}
	}
	if paramsStart >= 0 {
		p := scanner{s: d.s[:paramsEnd], i: paramsStart}
		err = p.object("", func(key string) error {
			k, ok := allowed[key]
			if !ok {
				return fmt.Errorf("%w: callflow[%d]: %s takes no param %q", ErrInvalidResponse, i, name, key)
			}
			if slices.Contains(keys[:nkeys], key) {
				return duplicateKey(fmt.Sprintf("callflow[%d].params", i), key)
			}
			keys[nkeys] = key
			nkeys++
			c := p.peek()
			good := false
			switch k {
			case pString:
				if good = c == '"'; good {
					s, err := p.rawString()
					if err != nil {
						return err
					}
					if s != "" {
						mark(key)
					}
					return nil
				}
			case pBool:
				good = c == 't' || c == 'f'
			case pInt:
				if good = c >= '0' && c <= '9'; good {
					if _, err := p.integer("", key); err != nil {
						return fmt.Errorf("%w: callflow[%d].params.%s must be a whole number", ErrInvalidResponse, i, key)
					}
					mark(key)
					return nil
				}
			case pNumber:
				good = c >= '0' && c <= '9'
			}
			if !good {
				return fmt.Errorf("%w: callflow[%d].params.%s has the wrong type", ErrInvalidResponse, i, key)
			}
			mark(key)
			return p.skip()
		})
		if err != nil {
			return false, err
		}
	}
	for _, r := range actionRequired[name] {
		if !slices.Contains(seen[:nseen], r) {
			return false, fmt.Errorf("%w: callflow[%d]: %s needs %s", ErrInvalidResponse, i, name, r)
		}
	}
	return name == ActionMakeCall, nil
}
