package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// pathError is a decoding error at a place of the document: path is
// dotted from where the decoding started ("" for the value itself).
type pathError struct{ path, msg string }

func (e *pathError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}

// under returns err with its path below prefix.
func under(prefix string, err error) error {
	var pe *pathError
	if !errors.As(err, &pe) {
		return &pathError{prefix, err.Error()}
	}
	p := prefix
	if pe.path != "" {
		p += "." + pe.path
	}
	return &pathError{p, pe.msg}
}

// UnmarshalJSON reads a step: an object whose one key is its kind. Keys
// that name no kind are kept for Validate to refuse by name; a kind given
// as null counts as absent. Unknown fields inside a kind are ignored
// here; ParseFlow refuses them.
func (s *Step) UnmarshalJSON(b []byte) error {
	return s.decode(b, false)
}

// decode reads a step, strictly (unknown fields inside a kind are errors)
// or not.
func (s *Step) decode(b []byte, strict bool) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return &pathError{"", "wrong type: want an object holding one step kind (" + strings.Join(StepKinds, ", ") + ")"}
	}
	*s = Step{}
	// In the order of the keys, so that the first error is always the same.
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		raw := fields[k]
		if isJSONNull(raw) {
			continue
		}
		var target any
		switch k {
		case StepMenu:
			s.Menu = new(MenuStep)
			target = s.Menu
		case StepTransfer:
			s.Transfer = new(TransferStep)
			target = s.Transfer
		case StepPIN:
			s.PIN = new(PINStep)
			target = s.PIN
		case StepMasking:
			s.Masking = new(MaskingStep)
			target = s.Masking
		case StepPlay:
			s.Play = new(PlayStep)
			target = s.Play
		case StepHangup:
			s.Hangup = new(HangupStep)
			target = s.Hangup
		default:
			s.unknown = append(s.unknown, k)
			continue
		}
		if err := decodeValue(raw, target, strict); err != nil {
			return under(k, err)
		}
	}
	return nil
}

// decodeValue decodes raw, one JSON value, into v; strict refuses
// unknown fields. Errors are *pathError relative to v.
func decodeValue(raw []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		err = jsonPathError(err)
		var pe *pathError
		if errors.As(err, &pe) && pe.msg == "unknown field" {
			// encoding/json names the field, not where it is.
			if path, ok := unknownField(raw, reflect.TypeOf(v)); ok {
				pe.path = path
			}
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &pathError{"", "more than one JSON value, or trailing characters"}
	}
	return nil
}

// jsonPathError turns an encoding/json error into a *pathError naming
// the field.
func jsonPathError(err error) error {
	var typ *json.UnmarshalTypeError
	var pe *pathError
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.As(err, &typ) && typ.Field != "":
		// Fields of an embedded Prompt are the step's own.
		field := strings.ReplaceAll("."+typ.Field, ".Prompt.", ".")[1:]
		return &pathError{field, "wrong type, got " + typ.Value}
	case errors.As(err, &typ):
		return &pathError{"", "wrong type, got " + typ.Value}
	case errors.Is(err, io.EOF):
		return &pathError{"", "empty; want a JSON object"}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name, uerr := strconv.Unquote(f)
		if uerr != nil {
			name = f
		}
		return &pathError{name, "unknown field"}
	}
	return &pathError{"", strings.TrimPrefix(msg, "json: ")}
}

func isJSONNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// flowDocument is a flow as a client writes it, its steps still raw.
type flowDocument struct {
	ID           string                     `json:"id"`
	SubAccountID string                     `json:"subAccountId"`
	Start        string                     `json:"start"`
	Steps        map[string]json.RawMessage `json:"steps"`
	Version      uint64                     `json:"version"`
	UpdatedAt    *time.Time                 `json:"updatedAt"`
}

// ParseFlow decodes a flow strictly, as the admin API and the CLI read
// one: exactly one JSON object, no unknown field at any depth, no key
// given twice, every value of its field's type. Errors wrap ErrInvalid
// and name the field ("steps.welcome.menu.maxDigit: unknown field"). It
// does not validate the flow: Validate (or Store.PutFlow) does.
func ParseFlow(b []byte) (Flow, error) {
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return Flow{}, invalid("body", "want a JSON object")
	}
	var doc flowDocument
	if err := decodeValue(b, &doc, true); err != nil {
		return Flow{}, flowError(err)
	}
	if err := duplicateKey(b); err != nil {
		return Flow{}, flowError(err)
	}
	f := Flow{ID: doc.ID, SubAccountID: doc.SubAccountID, Start: doc.Start, Version: doc.Version}
	if doc.UpdatedAt != nil {
		f.UpdatedAt = *doc.UpdatedAt
	}
	if doc.Steps != nil {
		f.Steps = make(map[string]Step, len(doc.Steps))
	}
	names := make([]string, 0, len(doc.Steps))
	for name := range doc.Steps {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		var st Step
		if err := st.decode(doc.Steps[name], true); err != nil {
			return Flow{}, flowError(under("steps."+name, err))
		}
		f.Steps[name] = st
	}
	return f, nil
}

// flowError is err as an ErrInvalid naming its field.
func flowError(err error) error {
	var pe *pathError
	if errors.As(err, &pe) {
		field := pe.path
		if field == "" {
			field = "body"
		}
		return invalid(field, "%s", pe.msg)
	}
	return invalid("body", "%v", err)
}

// duplicateKey finds a key given twice in one object of b (valid JSON,
// already decoded: its depth is that of a flow), which encoding/json
// would silently resolve to the last.
func duplicateKey(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var walk func(path string, depth int) error
	walk = func(path string, depth int) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return nil
		}
		if depth > 64 {
			return &pathError{path, "nested too deep"}
		}
		join := func(k string) string {
			if path == "" {
				return k
			}
			return path + "." + k
		}
		switch d {
		case '{':
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := kt.(string)
				if seen[key] {
					return &pathError{join(key), "given twice"}
				}
				seen[key] = true
				if err := walk(join(key), depth+1); err != nil {
					return err
				}
			}
		case '[':
			for i := 0; dec.More(); i++ {
				if err := walk(fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
					return err
				}
			}
		}
		_, err = dec.Token() // the closing delimiter
		return err
	}
	return walk("", 0)
}

// unknownField finds the first key of raw (in the order of the keys, at
// each depth) that type t does not know, as encoding/json matches fields
// (by JSON name, without regard to case; an embedded struct's fields as
// its own), and returns its dotted path.
func unknownField(raw []byte, t reflect.Type) (string, bool) {
	var doc any
	if json.Unmarshal(raw, &doc) != nil {
		return "", false
	}
	var walk func(v any, t reflect.Type, path string) (string, bool)
	walk = func(v any, t reflect.Type, path string) (string, bool) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		join := func(k string) string {
			if path == "" {
				return k
			}
			return path + "." + k
		}
		switch t.Kind() {
		case reflect.Struct:
			obj, ok := v.(map[string]any)
			if !ok {
				return "", false
			}
			fields := jsonFields(t)
			keys := make([]string, 0, len(obj))
			for k := range obj {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				ft, ok := fields[strings.ToLower(k)]
				if !ok {
					return join(k), true
				}
				if p, found := walk(obj[k], ft, join(k)); found {
					return p, true
				}
			}
		case reflect.Map:
			obj, ok := v.(map[string]any)
			if !ok {
				return "", false
			}
			keys := make([]string, 0, len(obj))
			for k := range obj {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				if p, found := walk(obj[k], t.Elem(), join(k)); found {
					return p, true
				}
			}
		case reflect.Slice, reflect.Array:
			arr, ok := v.([]any)
			if !ok {
				return "", false
			}
			for i, e := range arr {
				if p, found := walk(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); found {
					return p, true
				}
			}
		}
		return "", false
	}
	return walk(doc, t, "")
}

// jsonFields maps the lower-cased JSON names of struct t's fields (those
// of embedded structs included) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					if _, ok := out[k]; !ok {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[strings.ToLower(name)] = f.Type
	}
	return out
}
