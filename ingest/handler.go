package ingest

import (
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/callflow/callflow/ingest/spool"
	"github.com/callflow/callflow/wire"
	"github.com/valyala/fasthttp"
)

func fallbackResponse(say wire.Say) wire.Response {
	return wire.SayThenHangup(wire.ClientActionFallback, say)
}

// buffers are reused across calls to keep the hot path free of garbage.
type buffers struct {
	req, rec, ack, answer []byte
	ev                    wire.Event
	payload               wire.Payload
	dec                   wire.Decision
	// decide is the decide request; kept here because a pointer to it
	// handed to an interface would otherwise move it to the heap.
	decide wire.DecideRequest
}

const contentTypeJSON = "application/json"

// route dispatches a request: only POST on the webhook path is served.
func (s *Server) route(ctx *fasthttp.RequestCtx) {
	s.stats.requests.Add(1)
	start := time.Now()
	if !s.calls.TryRLock() {
		// Shutdown has begun and waits for the calls in flight; a call
		// taken now could not be recorded.
		ctx.SetConnectionClose()
		ctx.Response.Header.Set("Retry-After", "1")
		s.reject(ctx, fasthttp.StatusServiceUnavailable, "shutting down; try another instance")
		s.metrics.answered("invalid", fasthttp.StatusServiceUnavailable, start)
		return
	}
	defer s.calls.RUnlock()
	// Strangers learn nothing, not even which paths exist: the network,
	// then the credentials, are checked first.
	if !s.guard.allowed(ctx) {
		s.refuse(ctx, fasthttp.StatusForbidden, RefusedNetwork, "source address not allowed", start)
		return
	}
	if !s.guard.authorized(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)) {
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Static realm="callflow webhook"`)
		s.refuse(ctx, fasthttp.StatusUnauthorized, RefusedUnauthorized, "missing or wrong Authorization header", start)
		return
	}
	if string(ctx.Path()) != s.cfg.Path {
		s.reject(ctx, fasthttp.StatusNotFound, "not found: "+string(ctx.Path())+"; webhooks go to POST "+s.cfg.Path)
		s.metrics.answered("invalid", fasthttp.StatusNotFound, start)
		return
	}
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		s.reject(ctx, fasthttp.StatusMethodNotAllowed, "method "+string(ctx.Method())+" not allowed; use POST")
		s.metrics.answered("invalid", fasthttp.StatusMethodNotAllowed, start)
		return
	}
	s.webhook(ctx, start)
}

// webhook handles one 8x8 event: parse, decide (CALL_ACTION only), record,
// answer. The answer goes out only after JetStream has acknowledged the
// record, or after the record budget ran out and the record was kept on
// disk: a caller is never left without an answer because of storage.
func (s *Server) webhook(ctx *fasthttp.RequestCtx, received time.Time) {
	body := ctx.PostBody()
	b := s.bufs.Get().(*buffers)
	defer s.bufs.Put(b)
	ev := &b.ev
	if err := wire.ParseEventInto(ev, &b.payload, body); err != nil {
		s.reject(ctx, fasthttp.StatusBadRequest, err.Error())
		s.metrics.answered("invalid", fasthttp.StatusBadRequest, received)
		return
	}

	rec := wire.Record{
		Version:    wire.RecordVersion,
		ID:         ev.RecordID(body),
		EventType:  ev.EventType,
		ReceivedAt: received,
		Instance:   s.cfg.Instance,
		Event:      body,
	}
	var answer []byte
	if ev.EventType == wire.EventCallAction {
		answer, b.dec = s.decide(ev, b)
		rec.Decision = &b.dec
	} else {
		b.ack = appendAck(b.ack[:0], rec.ID)
		answer = b.ack
	}
	b.rec = rec.AppendJSON(b.rec[:0])
	switch err := s.rec.record(s.subjects.get(ev.EventType, ev.Payload.SubAccountID), rec.ID, b.rec); {
	case err == nil:
		s.stats.recorded.Add(1)
	case errors.Is(err, ErrSpooled):
		// An unacknowledged publish may still be resent by the client
		// from this buffer: it must not be reused for another record.
		b.rec = nil
	default:
		b.rec = nil
		if ev.EventType != wire.EventCallAction || errors.Is(err, spool.ErrClosed) {
			// Nobody is waiting on the line, or the ingestor is
			// stopping: refuse, so that the sender may retry
			// (elsewhere), rather than answer and lose the record.
			ctx.Response.Header.Set("Retry-After", "5")
			s.reject(ctx, fasthttp.StatusServiceUnavailable, "event not stored: "+err.Error())
			s.metrics.answered(eventLabel(ev.EventType), fasthttp.StatusServiceUnavailable, received)
			return
		}
		// A caller is waiting: the call is answered even though its
		// record is lost (counted in callflow_records_lost_total).
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(contentTypeJSON)
	ctx.SetBody(answer)
	s.metrics.answered(eventLabel(ev.EventType), fasthttp.StatusOK, received)
}

// decide asks the deciders, or falls back, and says which happened.
func (s *Server) decide(ev *wire.Event, b *buffers) ([]byte, wire.Decision) {
	b.decide = ev.DecideRequest()
	start := time.Now()
	var dec decision
	var why string
	if s.cfg.Local != nil {
		// Nothing to fail here: no breaker, no timeout.
		b.answer, dec.verdict = s.cfg.Local.Decide(b.answer[:0], &b.decide, start)
		dec.callflow = b.answer
	} else {
		b.req = b.decide.AppendJSON(b.req[:0])
		dec, why = s.deciders.decide(b.req)
	}
	took := time.Since(start)
	s.metrics.deciderTime.Observe(took.Seconds())
	d := wire.Decision{LatencyMicros: took.Microseconds(), Digits: ev.Payload.DTMF}
	if why != "" {
		s.stats.fallbacks.Add(1)
		s.metrics.fallbacks.WithLabelValues(why).Inc()
		s.metrics.decisions.WithLabelValues(wire.SourceFallback, wire.OutcomeFallback).Inc()
		d.Source, d.Outcome, d.FallbackReason, d.Callflow = wire.SourceFallback, wire.OutcomeFallback, why, s.fallback
		return s.fallback, d
	}
	s.stats.decided.Add(1)
	s.metrics.decisions.WithLabelValues(wire.SourceDecider, dec.verdict.Outcome).Inc()
	d.Source, d.Outcome, d.Callflow = wire.SourceDecider, dec.verdict.Outcome, dec.callflow
	d.MaskingSessionID, d.Policy = dec.verdict.MaskingSessionID, dec.verdict.Policy
	d.Flow, d.FlowVersion, d.FlowStep = dec.verdict.FlowID, dec.verdict.FlowVersion, dec.verdict.FlowStep
	if vn, err := wire.NormalizeNumber(ev.Payload.Destination); err == nil {
		d.VirtualNumber = vn
	}
	return dec.callflow, d
}

// appendAck is the answer to events that need no callflow.
func appendAck(dst []byte, id string) []byte {
	dst = append(dst, `{"status":"received","id":`...)
	dst = wire.AppendString(dst, id)
	return append(dst, '}')
}

// reject answers status with a JSON error body naming the problem.
func (s *Server) reject(ctx *fasthttp.RequestCtx, status int, msg string) {
	s.stats.rejected.Add(1)
	ctx.SetStatusCode(status)
	ctx.SetContentType(contentTypeJSON)
	ctx.SetBody(append(wire.AppendString([]byte(`{"error":`), msg), '}'))
}

// transportError answers requests fasthttp could not read, in the same
// JSON shape as every other error.
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	// fasthttp closes the connection after this answer, with the rest of
	// the request possibly unread.
	lingerOnClose(ctx.Conn())
	s.stats.requests.Add(1)
	start := time.Now()
	var netErr net.Error
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.refuse(ctx, fasthttp.StatusRequestEntityTooLarge, RefusedBodyTooLarge, "body larger than the limit of "+strconv.Itoa(s.cfg.MaxBody)+" bytes", start)
	case errors.As(err, &small):
		s.refuse(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, RefusedHeaderLarge, "request header larger than the limit of "+strconv.Itoa(s.cfg.MaxHeaderBytes)+" bytes", start)
	case errors.As(err, &netErr) && netErr.Timeout():
		s.refuse(ctx, fasthttp.StatusRequestTimeout, RefusedTimeout, "request not received in time", start)
	default:
		// fasthttp's error quotes the request, credentials included: a
		// stranger gets no echo of it.
		s.refuse(ctx, fasthttp.StatusBadRequest, RefusedMalformed, "malformed HTTP request", start)
	}
}

// refuse answers a request refused before it was read as an event, and
// counts why.
func (s *Server) refuse(ctx *fasthttp.RequestCtx, status int, reason, msg string, start time.Time) {
	s.reject(ctx, status, msg)
	s.metrics.refused.WithLabelValues(reason).Inc()
	s.metrics.answered("invalid", status, start)
}
