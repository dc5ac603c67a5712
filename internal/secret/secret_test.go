package secret

import "testing"

func TestSetIndex(t *testing.T) {
	s := NewSet([]string{"alpha", "beta", "gamma"})
	tests := []struct {
		v    string
		want int
	}{
		{"alpha", 0}, {"beta", 1}, {"gamma", 2},
		{"", -1}, {"alph", -1}, {"alphaa", -1}, {"BETA", -1},
	}
	for _, tt := range tests {
		if got := s.Index([]byte(tt.v)); got != tt.want {
			t.Errorf("Index(%q) = %d, want %d", tt.v, got, tt.want)
		}
		if got := s.Match([]byte(tt.v)); got != (tt.want >= 0) {
			t.Errorf("Match(%q) = %v, want %v", tt.v, got, tt.want >= 0)
		}
	}
	if got := NewSet(nil).Index([]byte("x")); got != -1 {
		t.Errorf("empty set: Index = %d, want -1", got)
	}
}

// A Value reads "" until stored, then the last value stored, while
// goroutines store and load it at once (go test -race).
func TestValue(t *testing.T) {
	var v Value
	if got := v.Load(); got != "" {
		t.Fatalf("zero Value holds %q", got)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			v.Store("rotating")
		}
	}()
	for range 100 {
		if got := v.Load(); got != "" && got != "rotating" {
			t.Fatalf("Load() = %q while storing", got)
		}
	}
	<-done
	v.Store("new")
	if got := v.Load(); got != "new" {
		t.Errorf("Load() = %q, want new", got)
	}
}
