package admin

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/callflow/callflow/wire"
)

// requestIDHeader carries a request's id: taken from the request when
// sane, else made up, and sent back on every answer.
const requestIDHeader = "X-Request-Id"

// maxRequestID bounds a request id taken from a client.
const maxRequestID = 128

type requestIDKey struct{}

// validRequestID reports whether a client's request id may be used as
// it is: 1 to maxRequestID of A-Z a-z 0-9 and - _ . : (a UUID, a trace
// id), nothing that could forge a log line or a header.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// withRequestID gives every request an id (the client's X-Request-Id
// when sane, else a new one), sends it back as X-Request-Id, puts it in
// the request's context for the log lines of the request (requestLog),
// and logs the request at debug level.
func (s *Server) withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(requestIDHeader)
		if !validRequestID(id) {
			id = randomID()
		}
		w.Header().Set(requestIDHeader, id)
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		h.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
		s.cfg.Logger.Debug("admin request", "request_id", id, "method", r.Method, "path", maskedPath(r.URL.Path),
			"status", sw.status, "duration_ms", float64(time.Since(start).Microseconds())/1000)
	})
}

// requestID is the id withRequestID gave r ("" outside it).
func requestID(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey{}).(string)
	return id
}

// requestLog is the logger of r's log lines: they carry its request id.
func (s *Server) requestLog(r *http.Request) *slog.Logger {
	return s.cfg.Logger.With("request_id", requestID(r))
}

// maskedPath is path for a log line: a segment that is a phone number
// (/v1/numbers/{number}) masked, as every number in the logs.
func maskedPath(path string) string {
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		if _, err := wire.CleanNumber(seg); err == nil {
			segs[i] = wire.MaskNumber(seg)
		}
	}
	return strings.Join(segs, "/")
}
