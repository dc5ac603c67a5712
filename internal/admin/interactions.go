package admin

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strconv"

	"github.com/callflow/callflow/internal/session"
)

// ErrInvalidQuery is wrapped by an InteractionReader's errors about what
// was asked (a cursor it did not give), as opposed to the archive failing
// to answer.
var ErrInvalidQuery = errors.New("invalid query")

// Limits of a page of interactions.
const (
	DefaultInteractions = 100
	MaxInteractions     = 1000
)

// InteractionReader reads what the archive knows of a masking session's
// calls (the archiver's ClickHouse history).
type InteractionReader interface {
	// Interactions returns a page of the interactions of the masking
	// session maskingSessionID, newest first: at most limit of them, after
	// cursor ("" for the first page, else a NextCursor it gave). A session
	// without calls gives an empty page. Errors about the arguments wrap
	// ErrInvalidQuery; any other means the archive did not answer.
	Interactions(ctx context.Context, maskingSessionID string, limit int, cursor string) (InteractionPage, error)
}

// InteractionPage is a page of interactions.
type InteractionPage struct {
	// Items is a slice (encoded as a JSON array) of the interactions.
	Items any
	// NextCursor fetches the next page; "" after the last.
	NextCursor string
}

// UseInteractions serves GET /v1/sessions/{id}/interactions from r (nil:
// none). Without one, that route answers 503.
func (s *Server) UseInteractions(r InteractionReader) { s.history.Store(&r) }

// interactions answers GET /v1/sessions/{id}/interactions. The session
// must be one this token may see; a token of every sub-account may also
// read the interactions of a session the bucket has forgotten (deleted,
// or closed longer ago than --session-history), which the archive keeps
// longer.
func (h *api) interactions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := queryParams(q, "limit", "cursor"); err != nil {
		writeBadRequest(w, message(err))
		return
	}
	limit := DefaultInteractions
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > MaxInteractions {
			writeBadRequest(w, "limit: "+strconv.Quote(raw)+": want 1 to "+strconv.Itoa(MaxInteractions))
			return
		}
		limit = n
	}
	id := r.PathValue("id")
	sess, err := h.store.Get(r.Context(), id)
	switch {
	case errors.Is(err, session.ErrNotFound) && scopeOf(r) == nil && session.ValidID(id):
		// Forgotten by the bucket; the archive may still know it.
	case errors.Is(err, session.ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, "session not found")
		return
	case err != nil:
		h.unavailable(w, r, "read session", err)
		return
	case !scopeOf(r).Allows(sess.SubAccountID):
		writeError(w, http.StatusNotFound, CodeNotFound, "session not found")
		return
	}
	history := h.s.history.Load()
	if history == nil || *history == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "interactions need ClickHouse (--clickhouse-addr)")
		return
	}
	page, err := (*history).Interactions(r.Context(), id, limit, q.Get("cursor"))
	switch {
	case errors.Is(err, ErrInvalidQuery):
		writeBadRequest(w, "cursor: not a cursor this API gave")
	case err != nil:
		h.s.requestLog(r).Error("read interactions failed", "session", id, "error", err)
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "the archive (ClickHouse) did not answer; try again")
	default:
		items := page.Items
		if v := reflect.ValueOf(items); items == nil || (v.Kind() == reflect.Slice && v.IsNil()) {
			items = []any{}
		}
		writeJSON(w, http.StatusOK, listAnswer("interactions", items, page.NextCursor))
	}
}
