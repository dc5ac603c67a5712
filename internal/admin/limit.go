package admin

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// clientLimits is a token bucket per client address: one client looping
// on the session API (or guessing tokens) is slowed down without touching
// the others.
type clientLimits struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	clients map[netip.Addr]*client
	swept   time.Time
}

type client struct {
	lim  *rate.Limiter
	seen time.Time
}

// idleClient is how long a client's bucket is kept after its last request.
const idleClient = 10 * time.Minute

func newClientLimits(perSecond float64, burst int) *clientLimits {
	return &clientLimits{limit: rate.Limit(perSecond), burst: burst, clients: map[netip.Addr]*client{}}
}

// allow takes a token from addr's bucket.
func (l *clientLimits) allow(addr netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for a, c := range l.clients {
			if now.Sub(c.seen) > idleClient {
				delete(l.clients, a)
			}
		}
		l.swept = now
	}
	c := l.clients[addr]
	if c == nil {
		c = &client{lim: rate.NewLimiter(l.limit, l.burst)}
		l.clients[addr] = c
	}
	c.seen = now
	return c.lim.AllowN(now, 1)
}

// remoteAddr is the request's peer address (the admin API is not meant to
// sit behind a proxy that hides it).
func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// limit wraps h with the per-client rate limit: 429 with Retry-After past it.
func (s *Server) limit(h http.Handler) http.Handler {
	if s.limits == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.limits.allow(remoteAddr(r), time.Now()) {
			s.metrics.refused.WithLabelValues(RefusedRateLimited).Inc()
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, CodeRateLimited, "too many requests from this address; slow down")
			return
		}
		h.ServeHTTP(w, r)
	})
}
