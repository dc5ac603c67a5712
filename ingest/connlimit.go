package ingest

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// perIPListener caps the connections one address may hold open: past
// Config.MaxConnsPerIP a new connection gets 429 and is closed, and the
// refusal is counted (fasthttp's own per-IP limit does not count them).
//
// Writing the 429 and draining the client's bytes (see drain) take a
// goroutine and a descriptor each for up to a second and a half; at most
// maxRefusing refusals are handled so at once. Past that, a refused
// connection is closed at once, without an answer, so that one host
// opening connections in a loop cannot exhaust the process's descriptors,
// which is what the per-address limit is there to prevent.
type perIPListener struct {
	net.Listener
	max      int
	plain    bool // no TLS on top: a 429 can be written
	rejected *atomic.Uint64
	// refusing holds a token for each refusal being answered and drained.
	refusing chan struct{}
	// linger bounds each drain (lingerTimeout; longer in tests).
	linger time.Duration

	mu    sync.Mutex
	conns map[netip.Addr]int
}

// maxRefusing bounds the refused connections answered and drained at once.
const maxRefusing = 64

func newPerIPListener(ln net.Listener, max int, plain bool, rejected *atomic.Uint64) *perIPListener {
	return &perIPListener{Listener: ln, max: max, plain: plain, rejected: rejected,
		refusing: make(chan struct{}, maxRefusing), linger: lingerTimeout, conns: map[netip.Addr]int{}}
}

// tooManyConns is the whole answer to a connection over the limit.
const tooManyConns = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: 61\r\nConnection: close\r\n\r\n" +
	`{"error":"too many connections from this address; try later"}`

func (l *perIPListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := connAddr(c)
		l.mu.Lock()
		if l.conns[ip] >= l.max {
			l.mu.Unlock()
			l.rejected.Add(1)
			select {
			case l.refusing <- struct{}{}:
				go func() {
					defer func() { <-l.refusing }()
					l.reject(c)
				}()
			default:
				_ = c.Close() // too many refusals in progress
			}
			continue
		}
		l.conns[ip]++
		l.mu.Unlock()
		return &perIPConn{Conn: c, release: sync.OnceFunc(func() { l.release(ip) })}, nil
	}
}

func (l *perIPListener) reject(c net.Conn) {
	if l.plain {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte(tooManyConns))
	}
	drain(c, l.linger)
	_ = c.Close()
}

func (l *perIPListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[ip]--; l.conns[ip] <= 0 {
		delete(l.conns, ip)
	}
}

func connAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap.Addr().Unmap()
}

// perIPConn gives its address's slot back when closed.
type perIPConn struct {
	net.Conn
	release func()
}

// CloseWrite shuts the write side of the connection c wraps (see drain).
func (c *perIPConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c *perIPConn) Close() error {
	c.release()
	return c.Conn.Close()
}
