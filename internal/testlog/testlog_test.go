package testlog

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestBufferConcurrent: writers and readers at once (run with -race),
// nothing lost.
func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(&b, "writer %d line %d\n", w, i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := b.Count("\n"); n != 400 {
		t.Errorf("%d lines, want 400", n)
	}
	if n := b.Count("writer 3 line"); n != 100 {
		t.Errorf("%d lines of writer 3, want 100", n)
	}
}

// TestBufferWritten: the channel closes once the text holds the string,
// also when it spans writes, and at once when it is there already.
func TestBufferWritten(t *testing.T) {
	var b Buffer
	b.Write([]byte("first line\n"))
	select {
	case <-b.Written("first"):
	default:
		t.Error("Written of text already there is not closed")
	}
	later := b.Written("load on 127.0.0.1")
	other := b.Written("never written")
	for _, part := range []string{"callflow bench: lo", "ad on 127.0", ".0.1:8080\n"} {
		select {
		case <-later:
			t.Fatalf("closed before %q was written", part)
		default:
		}
		b.Write([]byte(part))
	}
	select {
	case <-later:
	default:
		t.Errorf("not closed after the text spanning three writes: %q", b.String())
	}
	select {
	case <-other:
		t.Error("closed for a string never written")
	default:
	}
	if !strings.HasSuffix(b.String(), "callflow bench: load on 127.0.0.1:8080\n") {
		t.Errorf("text %q", b.String())
	}
}
