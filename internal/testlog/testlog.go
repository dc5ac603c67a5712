// Package testlog captures what a test's subjects log (or print), for the
// test to read while they go on writing.
package testlog

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is an io.Writer that goroutines may write to while others read
// what it holds. The zero value is an empty buffer ready to use.
type Buffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	waiters []waiter
}

// waiter is a channel to close once the text holds s.
type waiter struct {
	s    string
	done chan struct{}
}

// Write appends p; it never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Only the text p ends can newly hold a waited-for string: search
	// from where one that ends in p could start.
	from := b.b.Len()
	b.b.Write(p)
	text := b.b.Bytes()
	kept := b.waiters[:0]
	for _, w := range b.waiters {
		if bytes.Contains(text[max(from-len(w.s)+1, 0):], []byte(w.s)) {
			close(w.done)
			continue
		}
		kept = append(kept, w)
	}
	b.waiters = kept
	return len(p), nil
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Count returns how many times s occurs in what was written so far.
func (b *Buffer) Count(s string) int {
	return strings.Count(b.String(), s)
}

// Written returns a channel that is closed once what was written holds s
// (at once when it already does).
func (b *Buffer) Written(s string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	done := make(chan struct{})
	if strings.Contains(b.b.String(), s) {
		close(done)
		return done
	}
	b.waiters = append(b.waiters, waiter{s: s, done: done})
	return done
}
