package ingest

import (
	"io"
	"net"
	"sync/atomic"
	"time"
)

// A connection refused before its request was read to the end (body or
// header over the limit, malformed HTTP, too many connections) still has
// the client's bytes in flight. Closing it at once makes the kernel answer
// them with a reset, which can destroy the error answer before the client
// reads it: the caller's platform sees "connection reset" instead of 413.
// Such a connection is closed the way net/http closes it: the write side
// first, so the answer and a FIN reach the client, then what the client
// still sends is read and dropped, for a bounded time and size, before the
// socket is closed. The drain runs in the goroutine that closes the
// connection, so the connection keeps its place under every connection
// limit until it is really closed.
const (
	lingerTimeout = 500 * time.Millisecond
	lingerMax     = 256 << 10
)

// lingerListener hands out connections that can be closed gracefully.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

// lingerConn closes gracefully once marked by lingerOnClose.
type lingerConn struct {
	net.Conn
	linger atomic.Bool
}

// Close closes the connection, after draining the client's unread bytes
// when the connection was marked.
func (c *lingerConn) Close() error {
	if c.linger.Load() {
		drain(c.Conn, lingerTimeout)
	}
	return c.Conn.Close()
}

// drain shuts c's write side and reads what the client still sends until
// it closes its side, timeout passes or lingerMax bytes came.
func drain(c net.Conn, timeout time.Duration) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	_, _ = io.CopyN(io.Discard, c, lingerMax)
}

// lingerOnClose marks c, or the connection it wraps (TLS), to be closed
// gracefully.
func lingerOnClose(c net.Conn) {
	for c != nil {
		if l, ok := c.(*lingerConn); ok {
			l.linger.Store(true)
			return
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return
		}
		c = u.NetConn()
	}
}
