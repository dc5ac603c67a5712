package decider

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
	"github.com/prometheus/client_golang/prometheus"
)

// The flow engine runs IVR flows (session.Flow) from the session index
// alone: where a caller is travels in the clientActionId of every answer
// (wire.FlowState), so any decider answers any step, and a flow version is
// compiled once into the encoded fragments of its answers (flowProgram),
// so that a step costs about what a masking decision costs.

// flowPrefix starts every clientActionId that carries a wire.FlowState:
// one with this prefix that does not decode is a forged or damaged state,
// not a follow-up of a non-flow answer.
const flowPrefix = "flow:"

// maxFlowHops bounds the steps one answer passes through (play steps,
// masking steps that fall through to their onFailure). The store refuses
// flows that loop by themselves, so only a chain of more steps than this
// reaches it; the answer then stops at the last play step, with a hangup.
const maxFlowHops = 32

// maxCachedFlows bounds the compiled flow versions a Policy keeps; past
// it, the cache starts over.
const maxCachedFlows = 1024

// Why a flow could not be continued as its clientActionId says
// (callflow_flow_restarts_total's reason).
const (
	// reasonUndecodable: a clientActionId with the flow prefix that does
	// not decode.
	reasonUndecodable = iota
	// reasonNotAttached: the state's flow is not the flow of the number
	// called (detached, deleted, or another number's).
	reasonNotAttached
	// reasonVersionGone: the state's version of the flow is no longer
	// kept (or never was).
	reasonVersionGone
	// reasonStepMissing: the state's version has no such step.
	reasonStepMissing
	// reasonStepUnusable: the flow reached a step 8x8 could not carry out
	// (a prompt the store accepted but 8x8's rules refuse): the call ends.
	reasonStepUnusable
	numRestartReasons
)

// restartReasons are the reason label values, by the constants above.
var restartReasons = [numRestartReasons]string{"undecodable", "not_attached", "version_gone", "step_missing", "step_unusable"}

// What the call got (callflow_flow_restarts_total's result).
const (
	resultRestarted = iota // the number's flow, from its start (once)
	resultEnded            // a polite end: a say, then a hangup
	numRestartResults
)

var restartResults = [numRestartResults]string{"restarted", "ended"}

// restartCounters are callflow_flow_restarts_total's series, resolved once.
type restartCounters [numRestartReasons][numRestartResults]prometheus.Counter

func newRestartCounters(v *prometheus.CounterVec) *restartCounters {
	var c restartCounters
	for i, reason := range restartReasons {
		for j, result := range restartResults {
			c[i][j] = v.WithLabelValues(reason, result)
		}
	}
	return &c
}

// flowProgram is one flow version compiled: its steps with the encoded
// fragments of their answers (actions as they appear in a callflow
// array, joined by commas), linked to the steps they lead to.
type flowProgram struct {
	flow  *session.Flow
	start *flowStep
	steps map[string]*flowStep
}

// flowStep is a compiled step. The fragments were checked by 8x8's rules
// (wire.Response.Validate); a step whose fragments fail them is unusable.
type flowStep struct {
	name     string // the step's name: the FlowState's Step
	kind     string // a session.Step* constant
	unusable bool

	// menu and pin: the prompt and its sayAndCapture; the retry say
	// (nil: none) said before it after a failed try; the tries a caller
	// has; where a caller goes once they failed (nil: a polite end).
	capture   []byte
	retry     []byte
	tries     int
	onFailure *flowStep // also masking's (nil: the out-of-session policy)
	options   map[string]*flowStep

	// transfer (announcement), play and hangup (message): the prompt, nil
	// when none.
	prompt      []byte
	next        *flowStep // play's (nil: a hangup)
	destination string    // transfer's, as +digits
	recording   bool
}

// emptyHead starts the encoding of a response with an empty
// clientActionId: what fragment cuts off to keep the actions.
const emptyHead = `{"clientActionId":"","callflow":[`

// fragment encodes actions as they appear inside a callflow array (wire's
// encoding, commas between them); ok is false when 8x8 could not carry
// them out.
func fragment(actions ...wire.Action) ([]byte, bool) {
	r := wire.Response{Callflow: actions}
	if r.Validate() != nil {
		return nil, false
	}
	b := r.JSON()
	return slices.Clip(b[len(emptyHead) : len(b)-len("]}")]), true
}

// promptFragment encodes the prompt of a play, transfer or hangup step:
// its say or its playFile (the store allows one; nil for none).
func promptFragment(p session.Prompt) ([]byte, bool) {
	switch {
	case p.Say != nil:
		return fragment(wire.SayAction(*p.Say))
	case p.PlayFile != nil:
		return fragment(wire.PlayFileAction(*p.PlayFile))
	}
	return nil, true
}

// sayFragment encodes an optional say (nil for none).
func sayFragment(s *wire.Say) ([]byte, bool) {
	if s == nil {
		return nil, true
	}
	return fragment(wire.SayAction(*s))
}

// captureFragment encodes the prompt of a menu or pin step, which
// collects minDigits to maxDigits keys within timeoutSeconds: the
// playFile, when given, then a sayAndCapture of the say (8x8 captures
// digits only with a text to speech). The capture is asked once
// (noOfTries 1: the engine counts the tries, so that each one is a
// decision and a record) and ends early on '#'. The limits are brought
// within 8x8's (maxDigits 1 to 20; the timeout one second to five
// minutes). A prompt without a say is unusable (the store refuses it).
func captureFragment(p session.Prompt, minDigits, maxDigits, timeoutSeconds int) ([]byte, bool) {
	if p.Say == nil {
		return nil, false
	}
	maxDigits = min(max(maxDigits, 1), wire.MaxCaptureDigits)
	minDigits = min(max(minDigits, 1), maxDigits)
	c := wire.Capture{Say: *p.Say, MinDigits: minDigits, MaxDigits: maxDigits, CompleteOnHash: true, NoOfTries: 1}
	if timeoutSeconds > 0 {
		c.OverallTimeout = min(max(timeoutSeconds*1000, wire.MinCaptureTimeoutMillis), wire.MaxCaptureTimeoutMillis)
	}
	if f := p.PlayFile; f != nil {
		return fragment(wire.PlayFileAction(*f), wire.SayAndCaptureAction(c))
	}
	return fragment(wire.SayAndCaptureAction(c))
}

// compileFlow compiles a flow version. The index holds only flows that
// passed session's Validate (defaults filled in); what 8x8's rules still
// refuse makes its step unusable, and a transition to a step that does not
// exist is left nil (a polite end).
func compileFlow(f *session.Flow) *flowProgram {
	prog := &flowProgram{flow: f, steps: make(map[string]*flowStep, len(f.Steps))}
	for name := range f.Steps {
		prog.steps[name] = &flowStep{name: name}
	}
	for name, st := range f.Steps {
		s := prog.steps[name]
		s.kind = st.Kind()
		ok, ok2 := true, true
		switch s.kind {
		case session.StepMenu:
			m := st.Menu
			s.capture, ok = captureFragment(m.Prompt, 1, m.MaxDigits, m.TimeoutSeconds)
			s.retry, ok2 = sayFragment(m.Retry)
			s.tries, s.onFailure = max(m.Tries, 1), prog.steps[m.OnFailure]
			s.options = make(map[string]*flowStep, len(m.Options))
			for key, to := range m.Options {
				if t := prog.steps[to]; t != nil {
					s.options[key] = t
				}
			}
		case session.StepPIN:
			p := st.PIN
			s.capture, ok = captureFragment(p.Prompt, p.MinDigits, p.MaxDigits, p.TimeoutSeconds)
			s.retry, ok2 = sayFragment(p.Retry)
			s.tries, s.onFailure = max(p.Tries, 1), prog.steps[p.OnFailure]
		case session.StepTransfer:
			t := st.Transfer
			s.prompt, ok = promptFragment(t.Prompt)
			dest, err := wire.NormalizeNumber(t.Destination)
			s.destination, s.recording, ok2 = dest, t.CallRecording, err == nil
		case session.StepMasking:
			s.onFailure = prog.steps[st.Masking.OnFailure]
		case session.StepPlay:
			s.prompt, ok = promptFragment(st.Play.Prompt)
			s.next = prog.steps[st.Play.Next]
			ok2 = len(s.prompt) > 0
		case session.StepHangup:
			s.prompt, ok = promptFragment(st.Hangup.Prompt)
		default:
			ok = false
		}
		s.unusable = !ok || !ok2
	}
	prog.start = prog.steps[f.Start]
	return prog
}

// flowCache holds the compiled versions of flows, keyed by the flow's
// pointer: the index never changes a flow in place (a new version is a
// new object), so a pointer always stands for the same program, and a
// lookup costs no allocation.
type flowCache struct {
	m sync.Map // *session.Flow → *flowProgram
	n atomic.Int64
}

func (c *flowCache) get(f *session.Flow) *flowProgram {
	if v, ok := c.m.Load(f); ok {
		return v.(*flowProgram)
	}
	prog := compileFlow(f)
	if v, loaded := c.m.LoadOrStore(f, prog); loaded {
		return v.(*flowProgram)
	}
	if c.n.Add(1) > maxCachedFlows {
		c.m.Clear()
		c.n.Store(0)
	}
	return prog
}

// callflowWriter appends an answer: the header with its clientActionId,
// then actions, commas between them.
type callflowWriter struct {
	b []byte
	n int // actions (or fragments) written
}

// beginFlow starts an answer whose clientActionId carries st. The state's
// names are letters, digits, '_' and '-', and its numbers digits: nothing
// to escape.
func (w *callflowWriter) beginFlow(st wire.FlowState) {
	w.b = append(w.b, `{"clientActionId":"`...)
	w.b = st.AppendClientActionID(w.b)
	w.b = append(w.b, `","callflow":[`...)
}

// add appends a fragment (nothing when empty).
func (w *callflowWriter) add(frag []byte) {
	if len(frag) == 0 {
		return
	}
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, frag...)
	w.n++
}

// addPrompts appends the prompts of the play steps passed.
func (w *callflowWriter) addPrompts(passed []*flowStep) {
	for _, s := range passed {
		w.add(s.prompt)
	}
}

// addAction appends one action, by wire's encoder (its values stay on
// the stack: no allocation).
func (w *callflowWriter) addAction(a wire.Action) {
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	r := wire.Response{Callflow: []wire.Action{a}}
	mark := len(w.b)
	w.b = r.AppendJSON(w.b)
	n := copy(w.b[mark:], w.b[mark+len(emptyHead):len(w.b)-len("]}")])
	w.b = w.b[:mark+n]
	w.n++
}

// addSay appends a say of s.
func (w *callflowWriter) addSay(s *wire.Say) {
	p := wire.Params{Text: s.Text, VoiceProfile: s.VoiceProfile, Language: s.Language, Repetition: s.Repetition, Speed: s.Speed}
	w.addAction(wire.Action{Action: wire.ActionSay, Params: &p})
}

// addMakeCall appends a makeCall from source to destination.
func (w *callflowWriter) addMakeCall(source, destination string, recording bool) {
	p := wire.Params{Source: source, Destination: destination, CallRecording: recording}
	w.addAction(wire.Action{Action: wire.ActionMakeCall, Params: &p})
}

// end closes the answer and returns it.
func (w *callflowWriter) end() []byte { return append(w.b, ']', '}') }

// hangupFragment is the encoded hangup action.
var hangupFragment, _ = fragment(wire.Hangup())

// flowCall is one decision in a flow: the call, and the flow version it
// is in.
type flowCall struct {
	p         *Policy
	req       *wire.DecideRequest
	virtual   string // the number called, as +digits
	prog      *flowProgram
	restarted bool // the flow was restarted once already in this call
	now       time.Time
}

// state is where the caller is once this answer is played: at s, after
// tries failed tries, connected to session (or "").
func (c *flowCall) state(s *flowStep, tries int, session string) wire.FlowState {
	f := c.prog.flow
	return wire.FlowState{Flow: f.ID, Version: f.Version, Step: s.name, Tries: tries, Restarted: c.restarted, Session: session}
}

// verdict is what an answer at s means (as wire.ClassifyClientAction
// reads it back).
func (c *flowCall) verdict(s *flowStep, outcome, session string) wire.Verdict {
	f := c.prog.flow
	return wire.Verdict{Outcome: outcome, MaskingSessionID: session, FlowID: f.ID, FlowVersion: f.Version, FlowStep: s.name}
}

// goTo answers a caller who enters step s (with no failed try): play
// steps are said or played and their next step follows in the same
// answer, as does a masking step's onFailure when the caller is in no
// session, until a step that waits for the caller, connects or ends
// the call.
func (c *flowCall) goTo(dst []byte, s *flowStep) ([]byte, wire.Verdict) {
	var buf [maxFlowHops]*flowStep
	passed := buf[:0]
	for hop := 1; ; hop++ {
		if s == nil {
			// A transition to a step that does not exist: the store
			// refuses such flows, so none is in the index.
			return c.p.endFlow(dst, reasonStepMissing, resultEnded)
		}
		if s.unusable {
			c.p.restarts[reasonStepUnusable][resultEnded].Inc()
			return c.endAt(dst, passed, s, 0)
		}
		switch s.kind {
		case session.StepPlay:
			if s.next == nil || hop == maxFlowHops {
				return c.final(dst, passed, s, s.prompt)
			}
			passed = append(passed, s)
			s = s.next
			continue
		case session.StepMasking:
			if sess, other, ok := c.inSession(); ok {
				return c.connect(dst, passed, s, 0, sess, other)
			}
			if s.onFailure != nil && hop < maxFlowHops {
				s = s.onFailure
				continue
			}
			return c.outOfSession(dst, passed)
		case session.StepMenu, session.StepPIN:
			return c.ask(dst, passed, s, 0, false)
		case session.StepTransfer:
			w := callflowWriter{b: dst}
			w.beginFlow(c.state(s, 0, ""))
			w.addPrompts(passed)
			w.add(s.prompt)
			w.addMakeCall(c.virtual, s.destination, s.recording)
			return w.end(), c.verdict(s, wire.OutcomeConnect, "")
		default: // session.StepHangup
			return c.final(dst, passed, s, s.prompt)
		}
	}
}

// final answers the passed prompts, then prompt (nil: none), then a
// hangup, at s.
func (c *flowCall) final(dst []byte, passed []*flowStep, s *flowStep, prompt []byte) ([]byte, wire.Verdict) {
	w := callflowWriter{b: dst}
	w.beginFlow(c.state(s, 0, ""))
	w.addPrompts(passed)
	w.add(prompt)
	w.add(hangupFragment)
	return w.end(), c.verdict(s, wire.OutcomeFlow, "")
}

// endAt ends the call politely at s (its tries used up, or s unusable):
// the passed prompts, the deciders' goodbye, a hangup.
func (c *flowCall) endAt(dst []byte, passed []*flowStep, s *flowStep, tries int) ([]byte, wire.Verdict) {
	w := callflowWriter{b: dst}
	w.beginFlow(c.state(s, tries, ""))
	w.addPrompts(passed)
	w.add(c.p.flowEndSay)
	w.add(hangupFragment)
	return w.end(), c.verdict(s, wire.OutcomeFlow, "")
}

// ask asks for the keys of menu or pin s, after tries failed tries (retry:
// with the step's retry say first).
func (c *flowCall) ask(dst []byte, passed []*flowStep, s *flowStep, tries int, retry bool) ([]byte, wire.Verdict) {
	w := callflowWriter{b: dst}
	w.beginFlow(c.state(s, tries, ""))
	w.addPrompts(passed)
	if retry {
		w.add(s.retry)
	}
	w.add(s.capture)
	return w.end(), c.verdict(s, wire.OutcomeFlow, "")
}

// failed answers a failed try at menu or pin s, where tries had failed
// before: asked again until the step's tries are used up, then its
// onFailure, or a polite end.
func (c *flowCall) failed(dst []byte, s *flowStep, tries int) ([]byte, wire.Verdict) {
	tries++
	switch {
	case tries < s.tries:
		return c.ask(dst, nil, s, tries, true)
	case s.onFailure != nil:
		return c.goTo(dst, s.onFailure)
	}
	return c.endAt(dst, nil, s, min(tries, s.tries))
}

// connect connects the caller to other, the other participant of
// session sess, from step s: the session's greeting, then a makeCall from
// the number called. The state names the session, so that the call is
// recorded and counted as a masking connect.
func (c *flowCall) connect(dst []byte, passed []*flowStep, s *flowStep, tries int, sess *session.Session, other string) ([]byte, wire.Verdict) {
	w := callflowWriter{b: dst}
	w.beginFlow(c.state(s, tries, sess.ID))
	w.addPrompts(passed)
	if g := sess.Greeting; g != nil && g.Text != "" {
		w.addSay(g)
	}
	w.addMakeCall(c.virtual, other, sess.CallRecording)
	return w.end(), c.verdict(s, wire.OutcomeConnect, sess.ID)
}

// inSession finds the open session (without a pin) on the number called
// that has the caller as a participant, as number masking does.
func (c *flowCall) inSession() (*session.Session, string, bool) {
	caller, err := wire.NormalizeNumber(c.req.Source)
	if err != nil {
		return nil, "", false
	}
	sess, ok := c.p.sessions.Lookup(c.virtual, caller, c.req.SubAccountID, c.now)
	if !ok {
		return nil, "", false
	}
	other, ok := sess.Other(caller)
	return sess, other, ok
}

// callflowKey precedes the actions of an encoded response.
var callflowKey = []byte(`"callflow":[`)

// outOfSession answers a caller in no session at a masking step without
// onFailure as number masking does (the number's, the sub-account's or
// the deciders' out-of-session policy), after the prompts passed.
func (c *flowCall) outOfSession(dst []byte, passed []*flowStep) ([]byte, wire.Verdict) {
	p := c.p
	mark := len(dst)
	var v wire.Verdict
	if pol, source := p.sessions.OutOfSession(c.virtual, c.req.SubAccountID); pol != nil {
		dst, v = p.policies.append(dst, pol, source, c.virtual, p.outOfSession)
	} else {
		dst, v = append(dst, p.outOfSession...), defaultVerdict
	}
	if len(passed) == 0 {
		return dst, v
	}
	// The prompts go first: moved in after the policy's "callflow":[
	// (which always has an action after it).
	i := bytes.Index(dst[mark:], callflowKey)
	if i < 0 {
		return dst, v
	}
	at := mark + i + len(callflowKey)
	n := 0
	for _, s := range passed {
		n += len(s.prompt) + 1
	}
	end := len(dst)
	dst = slices.Grow(dst, n)[:end+n]
	copy(dst[at+n:], dst[at:end])
	for _, s := range passed {
		at += copy(dst[at:], s.prompt)
		dst[at] = ','
		at++
	}
	return dst, v
}

// digits are the keys a caller pressed (8x8's eventData.dtmf), without
// the '#' that ended them.
func digits(dtmf string) string {
	if n := len(dtmf); n > 0 && dtmf[n-1] == '#' {
		return dtmf[:n-1]
	}
	return dtmf
}

// startFlow answers a new call to a number whose flow is f: its start
// step.
func (p *Policy) startFlow(dst []byte, req *wire.DecideRequest, virtual string, f *session.Flow, now time.Time) ([]byte, wire.Verdict) {
	c := flowCall{p: p, req: req, virtual: virtual, prog: p.flows.get(f), now: now}
	return c.goTo(dst, c.prog.start)
}

// continueFlow answers a VCA whose clientActionId carries st: the caller
// answered a step of a flow (keys pressed, or none), or a flow's action
// completed. The state must name the flow of the number called (the
// version may be an older one, still kept: a call finishes on the version
// it started in) and a step of that version; otherwise the flow restarts
// or the call ends (stale).
func (p *Policy) continueFlow(dst []byte, req *wire.DecideRequest, st wire.FlowState, now time.Time) ([]byte, wire.Verdict) {
	virtual, err := wire.NormalizeNumber(req.Destination)
	var cur *session.Flow
	if err == nil {
		cur, _ = p.sessions.FlowFor(virtual, req.SubAccountID)
	}
	if cur == nil || cur.ID != st.Flow {
		return p.stale(dst, req, virtual, cur, reasonNotAttached, st.Restarted, now)
	}
	f, ok := p.sessions.FlowVersion(st.Flow, st.Version)
	if !ok {
		return p.stale(dst, req, virtual, cur, reasonVersionGone, st.Restarted, now)
	}
	c := flowCall{p: p, req: req, virtual: virtual, prog: p.flows.get(f), restarted: st.Restarted, now: now}
	s, ok := c.prog.steps[st.Step]
	if !ok {
		return p.stale(dst, req, virtual, cur, reasonStepMissing, st.Restarted, now)
	}
	if st.Session != "" || st.Tries >= max(s.tries, 1) {
		// The VCA after a connect, or after the goodbye of a step whose
		// tries were used up (a state no answer asks with): as every
		// follow-up of an action that completed.
		return append(dst, p.followUp...), followUpVerdict
	}
	switch s.kind {
	case session.StepMenu:
		if s.unusable {
			break
		}
		if to, ok := s.options[digits(req.DTMF)]; ok {
			return c.goTo(dst, to)
		}
		return c.failed(dst, s, st.Tries)
	case session.StepPIN:
		if s.unusable {
			break
		}
		if pin := digits(req.DTMF); session.ValidPIN(pin) {
			if caller, err := wire.NormalizeNumber(req.Source); err == nil {
				if sess, ok := p.sessions.LookupPIN(virtual, pin, req.SubAccountID, now); ok {
					if other, ok := sess.Other(caller); ok {
						return c.connect(dst, nil, s, st.Tries, sess, other)
					}
				}
			}
		}
		return c.failed(dst, s, st.Tries)
	}
	// Anything else waits for nothing (a transfer, a hangup, a play that
	// ended the call): the VCA follows an action that completed.
	return append(dst, p.followUp...), followUpVerdict
}

// undecodable answers a follow-up whose clientActionId has the flow
// prefix but does not decode: the number's flow restarts.
func (p *Policy) undecodable(dst []byte, req *wire.DecideRequest, now time.Time) ([]byte, wire.Verdict) {
	virtual, err := wire.NormalizeNumber(req.Destination)
	var cur *session.Flow
	if err == nil {
		cur, _ = p.sessions.FlowFor(virtual, req.SubAccountID)
	}
	return p.stale(dst, req, virtual, cur, reasonUndecodable, false, now)
}

// stale answers a flow state that cannot be continued, for reason: the
// number's current flow cur from its start, marked restarted, unless the
// call's flow was restarted already or the number has no flow (then a
// polite end).
func (p *Policy) stale(dst []byte, req *wire.DecideRequest, virtual string, cur *session.Flow, reason int, restarted bool, now time.Time) ([]byte, wire.Verdict) {
	if cur == nil || restarted {
		return p.endFlow(dst, reason, resultEnded)
	}
	p.restarts[reason][resultRestarted].Inc()
	c := flowCall{p: p, req: req, virtual: virtual, prog: p.flows.get(cur), restarted: true, now: now}
	return c.goTo(dst, c.prog.start)
}

// endFlow ends a call whose flow cannot go on, politely (the deciders'
// goodbye, then a hangup, as a follow-up: wire.ClientActionFollowUp), and
// counts it.
func (p *Policy) endFlow(dst []byte, reason, result int) ([]byte, wire.Verdict) {
	p.restarts[reason][result].Inc()
	return append(dst, p.flowEnded...), followUpVerdict
}
