package ingest

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/callflow/callflow/internal/secret"
	"github.com/valyala/fasthttp"
)

// Reasons a webhook request is refused before it is read as an event
// (label of callflow_webhook_refused_total).
const (
	RefusedUnauthorized = "unauthorized"   // 401: Authorization missing or wrong
	RefusedNetwork      = "network"        // 403: source address not allowed
	RefusedBodyTooLarge = "body_too_large" // 413
	RefusedHeaderLarge  = "header_too_large"
	RefusedTimeout      = "timeout" // 408: request not received in time
	RefusedMalformed    = "malformed_http"
)

// guard decides who may call the webhook: the source network, then the
// Authorization header 8x8 sends (the webhook's static httpAuthHeader).
type guard struct {
	// auth holds the accepted Authorization values (Config.Auth, or the
	// last SetAuth).
	auth    atomic.Pointer[secret.Set]
	allow   []netip.Prefix
	trusted []netip.Prefix
}

func newGuard(cfg *Config) *guard {
	g := &guard{allow: cfg.AllowCIDRs, trusted: cfg.TrustedProxies}
	auth := secret.NewSet(cfg.Auth)
	g.auth.Store(&auth)
	return g
}

// authorized reports whether the request's Authorization value is one of
// the accepted ones (any value when none is configured).
func (g *guard) authorized(value []byte) bool {
	auth := g.auth.Load()
	return auth.Len() == 0 || auth.Match(value)
}

// SetAuth replaces the accepted Authorization values of webhooks (written
// as Config.Auth) for the requests that arrive from then on, so that the
// secret is rotated without a restart. On error the values in use stay:
// none at all (that would accept any request), or one that is empty or
// holds a line break.
func (s *Server) SetAuth(values []string) error {
	if len(values) == 0 {
		return fmt.Errorf("%w: no webhook Authorization values given; the ones in use stay", ErrInvalidConfig)
	}
	if err := validAuth(values); err != nil {
		return err
	}
	auth := secret.NewSet(values)
	s.guard.auth.Store(&auth)
	return nil
}

// validAuth checks accepted Authorization values.
func validAuth(values []string) error {
	for _, a := range values {
		if strings.TrimSpace(a) == "" || strings.ContainsAny(a, "\r\n") {
			return fmt.Errorf("%w: an accepted Authorization value is empty or holds a line break", ErrInvalidConfig)
		}
	}
	return nil
}

// allowed reports whether the client may call the webhook at all.
func (g *guard) allowed(ctx *fasthttp.RequestCtx) bool {
	if len(g.allow) == 0 {
		return true
	}
	return contains(g.allow, g.client(ctx))
}

// client is the request's source address: the direct peer, unless the peer
// is a trusted proxy, in which case X-Forwarded-For is read from the right
// (the entries the trusted proxies appended) to the first address that is
// not a trusted proxy. Entries left of it were written by the client and
// prove nothing. An unreadable entry ends the walk at the last trusted hop,
// which an allow-list of 8x8's ranges then refuses.
func (g *guard) client(ctx *fasthttp.RequestCtx) netip.Addr {
	peer := peerAddr(ctx)
	if len(g.trusted) == 0 || !contains(g.trusted, peer) {
		return peer
	}
	addr := peer
	headers := ctx.Request.Header.PeekAll(fasthttp.HeaderXForwardedFor)
	for i := len(headers) - 1; i >= 0; i-- {
		list := headers[i]
		for len(list) > 0 {
			j := bytes.LastIndexByte(list, ',')
			hop := bytes.TrimSpace(list[j+1:])
			list = list[:max(j, 0)]
			a, err := netip.ParseAddr(string(hop))
			if err != nil {
				return addr
			}
			addr = a.Unmap()
			if !contains(g.trusted, addr) {
				return addr
			}
		}
	}
	return addr
}

func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	a, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return a.Unmap()
}

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParsePrefixes parses comma-separated CIDRs or bare addresses (a single
// host), for the allow-list and trusted-proxy settings.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
