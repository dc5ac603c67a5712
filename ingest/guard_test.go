package ingest

import (
	"errors"
	"testing"
)

// TestSetAuth: SetAuth replaces the accepted Authorization values for the
// next requests; none, or an empty value or one with a line break, is
// refused and the values in use stay.
func TestSetAuth(t *testing.T) {
	s := &Server{guard: newGuard(&Config{Auth: []string{"Bearer a"}})}
	steps := []struct {
		name    string
		set     []string
		wantErr bool
		ok, no  []string
	}{
		{name: "rotate", set: []string{"Bearer b", "Bearer c"}, ok: []string{"Bearer b", "Bearer c"}, no: []string{"Bearer a", ""}},
		{name: "none", set: nil, wantErr: true, ok: []string{"Bearer b"}, no: []string{"anything"}},
		{name: "empty value", set: []string{"Bearer d", " "}, wantErr: true, ok: []string{"Bearer c"}, no: []string{"Bearer d"}},
		{name: "line break", set: []string{"Bearer e\r\nX: y"}, wantErr: true, ok: []string{"Bearer b"}, no: []string{"Bearer e\r\nX: y"}},
	}
	for _, st := range steps {
		if err := s.SetAuth(st.set); st.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
			t.Errorf("%s: SetAuth = %v, want an error: %v", st.name, err, st.wantErr)
		}
		for _, v := range st.ok {
			if !s.guard.authorized([]byte(v)) {
				t.Errorf("%s: %q refused", st.name, v)
			}
		}
		for _, v := range st.no {
			if s.guard.authorized([]byte(v)) {
				t.Errorf("%s: %q accepted", st.name, v)
			}
		}
	}
}
