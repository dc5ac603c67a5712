package session

import (
	"fmt"
	"slices"
	"strings"

	"github.com/callflow/callflow/wire"
)

// Limits and defaults of flows. A limit is a bound Validate enforces; a
// default is what Validate fills in for a field left out (or 0).
const (
	// MaxFlowSteps bounds the steps of one flow.
	MaxFlowSteps = 100
	// MaxFlowName bounds a flow id and a step name (1 to 64 of A-Z a-z
	// 0-9 _ -).
	MaxFlowName = 64
	// MaxFlowTries bounds a menu's or pin's tries (from 1).
	MaxFlowTries = 10
	// DefaultFlowTries is a menu's and a pin's tries when not given.
	DefaultFlowTries = 3
	// MaxFlowDigits bounds a menu's maxDigits (from 1): what a
	// sayAndCapture takes.
	MaxFlowDigits = wire.MaxCaptureDigits
	// MaxFlowTimeoutSeconds bounds timeoutSeconds (from 1).
	MaxFlowTimeoutSeconds = 60
	// DefaultMenuTimeoutSeconds and DefaultPINTimeoutSeconds are the
	// timeouts when not given.
	DefaultMenuTimeoutSeconds = 5
	DefaultPINTimeoutSeconds  = 10
	// MaxMenuOptions bounds a menu's options.
	MaxMenuOptions = 100
	// MaxPromptText bounds the text of a say, in bytes.
	MaxPromptText = maxGreeting
	// MaxRepetition bounds the repetition of a say or playFile.
	MaxRepetition = 10
	// maxVoiceField bounds a say's voiceProfile and language.
	maxVoiceField = 64
)

// optionKeys are the keys a menu option may be made of; # ends the input
// (8x8's completeOnHash), so it never reaches an option.
const optionKeys = "0123456789*"

// ValidFlowName reports whether s can name a flow or a step: 1 to 64 of
// A-Z a-z 0-9 _ - (a flow id is part of its bucket keys).
func ValidFlowName(s string) bool {
	if s == "" || len(s) > MaxFlowName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

const flowNameRule = "want 1 to 64 of A-Z a-z 0-9 _ -"

// Validate checks the whole flow, as a PUT stores it, and fills in the
// defaults (tries, timeouts, digits, a say's voice profile; a transfer's
// destination as +digits), in place. The first problem found, in the
// order of the step names, is an ErrInvalid naming the step and field,
// as "steps.welcome.menu.options.3: step "nowhere" does not exist":
//
//   - id and step names: 1 to 64 of A-Z a-z 0-9 _ -; subAccountId as
//     8x8's; 1 to MaxFlowSteps steps; start names one of them;
//   - each step holds exactly one known kind (menu, transfer, pin,
//     masking, play, hangup);
//   - play needs a prompt (say or playFile, not both), transfer and
//     hangup may have one; menu and pin need a say (the capture's text),
//     after an optional playFile; a say has a text of at most
//     MaxPromptText bytes, repetition 0 to MaxRepetition; a playFile an
//     https fileUrl as wire.PlayFile.Validate accepts;
//   - menu: 1 to MaxMenuOptions options, each key 1 to maxDigits of 0-9
//     and *; maxDigits 1 to MaxFlowDigits; timeoutSeconds 1 to
//     MaxFlowTimeoutSeconds; tries 1 to MaxFlowTries;
//   - pin: minDigits <= maxDigits, both within PINMinLength to
//     PINMaxLength (the lengths a session pin has); timeoutSeconds and
//     tries as a menu's;
//   - transfer: a destination that is a phone number;
//   - every options, onFailure and next names a step of the flow;
//   - every step is reached from start;
//   - no loop that the flow would go round by itself: following next and
//     onFailure alone never comes back to a step (a loop must pass a menu
//     option, which the caller chooses), so a silent caller cannot keep
//     a call in the flow for ever.
func (f *Flow) Validate() error {
	if !ValidFlowName(f.ID) {
		return invalid("id", "%q: %s", f.ID, flowNameRule)
	}
	if f.SubAccountID != "" {
		if err := ValidSubAccount(f.SubAccountID); err != nil {
			return fmt.Errorf("%w: subAccountId: %v", ErrInvalid, err)
		}
	}
	switch {
	case len(f.Steps) == 0:
		return invalid("steps", "required: at least one step")
	case len(f.Steps) > MaxFlowSteps:
		return invalid("steps", "%d steps; at most %d", len(f.Steps), MaxFlowSteps)
	}
	names := make([]string, 0, len(f.Steps))
	for name := range f.Steps {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !ValidFlowName(name) {
			return invalid("steps", "step name %q: %s", name, flowNameRule)
		}
	}
	if f.Start == "" {
		return invalid("start", "required: the name of the step calls begin at")
	}
	if _, ok := f.Steps[f.Start]; !ok {
		return invalid("start", "step %q does not exist", f.Start)
	}
	for _, name := range names {
		st := f.Steps[name]
		if err := st.validate("steps."+name, f.Steps); err != nil {
			return err
		}
		f.Steps[name] = st
	}
	if err := f.checkReachable(names); err != nil {
		return err
	}
	return f.checkLoops(names)
}

// validate checks one step named by path ("steps.welcome"); steps are the
// flow's, for its transitions.
func (s *Step) validate(path string, steps map[string]Step) error {
	kinds := s.kinds()
	switch {
	case len(s.unknown) > 0:
		return invalid(path, "unknown step kind %q; want one of %s", s.unknown[0], strings.Join(StepKinds, ", "))
	case len(kinds) == 0:
		return invalid(path, "no step kind; want exactly one of %s", strings.Join(StepKinds, ", "))
	case len(kinds) > 1:
		return invalid(path, "%s and %s in one step; want exactly one kind", kinds[0], kinds[1])
	}
	kp := path + "." + kinds[0]
	var err error
	switch {
	case s.Menu != nil:
		err = s.Menu.validate(kp)
	case s.Transfer != nil:
		err = s.Transfer.validate(kp)
	case s.PIN != nil:
		err = s.PIN.validate(kp)
	case s.Play != nil:
		err = s.Play.Prompt.validate(kp, promptRequired)
	case s.Hangup != nil:
		err = s.Hangup.Prompt.validate(kp, promptOptional)
	}
	if err != nil {
		return err
	}
	for _, t := range s.Transitions() {
		if _, ok := steps[t.To]; !ok {
			return invalid(path+"."+t.Field, "step %q does not exist", t.To)
		}
	}
	return nil
}

func (m *MenuStep) validate(path string) error {
	if err := m.Prompt.validate(path, promptCapture); err != nil {
		return err
	}
	switch {
	case len(m.Options) == 0:
		return invalid(path+".options", "required: the keys a caller presses and the step each leads to")
	case len(m.Options) > MaxMenuOptions:
		return invalid(path+".options", "%d options; at most %d", len(m.Options), MaxMenuOptions)
	}
	keys := make([]string, 0, len(m.Options))
	longest := ""
	for k := range m.Options {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "" || len(k) > MaxFlowDigits || strings.Trim(k, optionKeys) != "" {
			return invalid(path+".options", "key %q: want 1 to %d keys of 0-9 and * (# ends the input)", k, MaxFlowDigits)
		}
		if len(k) > len(longest) {
			longest = k
		}
	}
	if m.MaxDigits == 0 {
		m.MaxDigits = len(longest)
	}
	if m.MaxDigits < 1 || m.MaxDigits > MaxFlowDigits {
		return invalid(path+".maxDigits", "%d: want 1 to %d", m.MaxDigits, MaxFlowDigits)
	}
	if len(longest) > m.MaxDigits {
		return invalid(path+".options."+longest, "%d keys, more than maxDigits (%d)", len(longest), m.MaxDigits)
	}
	if err := checkCapture(path, &m.TimeoutSeconds, &m.Tries, DefaultMenuTimeoutSeconds); err != nil {
		return err
	}
	return checkSay(path+".retry", &m.Retry)
}

func (p *PINStep) validate(path string) error {
	if err := p.Prompt.validate(path, promptCapture); err != nil {
		return err
	}
	if p.MinDigits == 0 {
		p.MinDigits = PINMinLength
	}
	if p.MaxDigits == 0 {
		p.MaxDigits = PINMaxLength
	}
	switch {
	case p.MinDigits < PINMinLength || p.MinDigits > PINMaxLength:
		return invalid(path+".minDigits", "%d: want %d to %d (the length of a session pin)", p.MinDigits, PINMinLength, PINMaxLength)
	case p.MaxDigits < PINMinLength || p.MaxDigits > PINMaxLength:
		return invalid(path+".maxDigits", "%d: want %d to %d (the length of a session pin)", p.MaxDigits, PINMinLength, PINMaxLength)
	case p.MinDigits > p.MaxDigits:
		return invalid(path+".minDigits", "%d is more than maxDigits (%d)", p.MinDigits, p.MaxDigits)
	}
	if err := checkCapture(path, &p.TimeoutSeconds, &p.Tries, DefaultPINTimeoutSeconds); err != nil {
		return err
	}
	return checkSay(path+".retry", &p.Retry)
}

// checkCapture checks (and defaults) the timeout and tries of a capture.
func checkCapture(path string, timeout, tries *int, defaultTimeout int) error {
	if *timeout == 0 {
		*timeout = defaultTimeout
	}
	if *tries == 0 {
		*tries = DefaultFlowTries
	}
	switch {
	case *timeout < 1 || *timeout > MaxFlowTimeoutSeconds:
		return invalid(path+".timeoutSeconds", "%d: want 1 to %d", *timeout, MaxFlowTimeoutSeconds)
	case *tries < 1 || *tries > MaxFlowTries:
		return invalid(path+".tries", "%d: want 1 to %d", *tries, MaxFlowTries)
	}
	return nil
}

func (t *TransferStep) validate(path string) error {
	if err := t.Prompt.validate(path, promptOptional); err != nil {
		return err
	}
	if t.Destination == "" {
		return invalid(path+".destination", "required: the number the caller is connected to")
	}
	d, err := wire.CleanNumber(t.Destination)
	if err != nil {
		return invalid(path+".destination", "%q is not a phone number (8 to 15 digits, optional +)", t.Destination)
	}
	t.Destination = d
	return nil
}

// What a step needs of its prompt.
const (
	promptOptional = iota // a say or a playFile, or none
	promptRequired        // a say or a playFile
	promptCapture         // a say (the capture's text), after an optional playFile
)

// validate checks a prompt of the step at path.
func (p *Prompt) validate(path string, need int) error {
	switch {
	case need == promptCapture && p.Say == nil:
		return invalid(path+".say", "required: the text said as the digits are captured (a playFile, when given, plays before it)")
	case need != promptCapture && p.Say != nil && p.PlayFile != nil:
		return invalid(path+".playFile", "give say or playFile, not both")
	case need == promptRequired && !p.Given():
		return invalid(path+".say", "required: a say (text to speech) or a playFile (an audio file)")
	}
	if err := checkSay(path+".say", &p.Say); err != nil {
		return err
	}
	if p.PlayFile != nil {
		return checkPlayFile(path+".playFile", p.PlayFile)
	}
	return nil
}

// checkSay checks a say at field (nil passes) and gives it the default
// voice profile; the say is replaced, never changed in place.
func checkSay(field string, s **wire.Say) error {
	if *s == nil {
		return nil
	}
	say := **s
	switch {
	case say.Text == "":
		return invalid(field+".text", "required")
	case len(say.Text) > MaxPromptText:
		return invalid(field+".text", "longer than %d bytes", MaxPromptText)
	case say.Repetition < 0 || say.Repetition > MaxRepetition:
		return invalid(field+".repetition", "%d: want 0 to %d", say.Repetition, MaxRepetition)
	case !printable(say.VoiceProfile, maxVoiceField):
		return invalid(field+".voiceProfile", "want at most %d printable characters", maxVoiceField)
	case !printable(say.Language, maxVoiceField):
		return invalid(field+".language", "want at most %d printable characters", maxVoiceField)
	}
	if err := say.Validate(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, field, err)
	}
	if say.VoiceProfile == "" {
		say.VoiceProfile = DefaultVoiceProfile
	}
	*s = &say
	return nil
}

// printable reports whether s is at most n bytes of printable ASCII.
func printable(s string, n int) bool {
	if len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// checkPlayFile checks a playFile at field: its fileUrl as the wire
// package checks the playFile actions it sends (an absolute https URL of
// at most wire.MaxFileURLLength bytes, a host by name or IPv4 address, no
// credentials, RFC 3986 bytes), repetition 0 to MaxRepetition.
func checkPlayFile(field string, p *wire.PlayFile) error {
	switch {
	case p.FileURL == "":
		return invalid(field+".fileUrl", "required: the https URL of the audio file")
	case p.Repetition < 0 || p.Repetition > MaxRepetition:
		return invalid(field+".repetition", "%d: want 0 to %d", p.Repetition, MaxRepetition)
	}
	if err := p.Validate(); err != nil {
		u := p.FileURL
		if len(u) > 80 {
			u = u[:80] + "..."
		}
		return invalid(field+".fileUrl", "%q: %s", u, strings.TrimPrefix(err.Error(), "fileUrl "))
	}
	return nil
}

// checkReachable refuses steps that no path from start reaches.
func (f *Flow) checkReachable(names []string) error {
	seen := map[string]bool{f.Start: true}
	queue := []string{f.Start}
	for len(queue) > 0 {
		st := f.Steps[queue[0]]
		queue = queue[1:]
		for _, t := range st.Transitions() {
			if !seen[t.To] {
				seen[t.To] = true
				queue = append(queue, t.To)
			}
		}
	}
	for _, name := range names {
		if !seen[name] {
			return invalid("steps."+name, "no path from start %q reaches it", f.Start)
		}
	}
	return nil
}

// checkLoops refuses a loop the flow would go round without the caller
// choosing: next and onFailure alone. Each step has at most one such
// transition, so following them from each step finds every such loop.
func (f *Flow) checkLoops(names []string) error {
	auto := func(name string) (Transition, bool) {
		st := f.Steps[name]
		for _, t := range st.Transitions() {
			if !t.Chosen {
				return t, true
			}
		}
		return Transition{}, false
	}
	done := map[string]bool{}
	for _, name := range names {
		var path []string
		at := map[string]int{}
		for cur := name; !done[cur]; {
			at[cur] = len(path)
			path = append(path, cur)
			t, ok := auto(cur)
			if !ok {
				break
			}
			if i, seen := at[t.To]; seen {
				loop := append(slices.Clone(path[i:]), t.To)
				return invalid("steps."+cur+"."+t.Field, "goes back to %q by itself (%s): a loop must pass a menu option, or a silent caller never leaves it",
					t.To, strings.Join(loop, " → "))
			}
			cur = t.To
		}
		for _, p := range path {
			done[p] = true
		}
	}
	return nil
}
