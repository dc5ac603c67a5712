package admin

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestSetTokens: SetTokens replaces the tokens for the next requests; a
// replacement that cannot be used (none, one that does not parse, a
// server started open) is refused and the tokens in use stay.
func TestSetTokens(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Tokens: []string{"tok-a"}, SessionAPI: true})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sc := scopeOf(r); len(sc) > 0 {
			w.Header().Set("X-Scope", sc[0])
		}
	}))
	status := func(tok string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/v1/sessions", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Header().Get("X-Scope")
	}
	steps := []struct {
		name    string
		set     []string
		wantErr bool
		ok, no  []string // tokens served and refused afterwards
		scope   string   // of ok[0]
	}{
		{name: "rotate", set: []string{"tok-b", "tok-c@sub-1"}, ok: []string{"tok-b", "tok-c"}, no: []string{"tok-a"}},
		{name: "scope of a new token", set: []string{"tok-d@sub-2"}, ok: []string{"tok-d"}, no: []string{"tok-b", "tok-c"}, scope: "sub-2"},
		{name: "none", set: nil, wantErr: true, ok: []string{"tok-d"}, scope: "sub-2"},
		{name: "does not parse", set: []string{"tok-e@"}, wantErr: true, ok: []string{"tok-d"}, no: []string{"tok-e"}, scope: "sub-2"},
		{name: "listed twice", set: []string{"tok-f", "tok-f"}, wantErr: true, ok: []string{"tok-d"}, no: []string{"tok-f"}, scope: "sub-2"},
	}
	for _, st := range steps {
		err := s.SetTokens(st.set)
		if st.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
			t.Errorf("%s: SetTokens(%q) = %v, want an error: %v", st.name, st.set, err, st.wantErr)
		}
		for i, tok := range st.ok {
			code, scope := status(tok)
			if code != http.StatusOK || (i == 0 && scope != st.scope) {
				t.Errorf("%s: %s answered %d scope %q, want 200 scope %q", st.name, tok, code, scope, st.scope)
			}
		}
		for _, tok := range st.no {
			if code, _ := status(tok); code != http.StatusUnauthorized {
				t.Errorf("%s: %s answered %d, want 401", st.name, tok, code)
			}
		}
	}

	open, err := New(Config{Addr: "127.0.0.1:0", SessionAPI: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := open.SetTokens([]string{"tok-a"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetTokens on a server started without tokens: %v, want refused", err)
	}
}
