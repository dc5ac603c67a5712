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
