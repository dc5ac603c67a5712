package admin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/callflow/callflow/internal/secret"
	"github.com/callflow/callflow/internal/session"
)

// token is one configured bearer token and the sub-accounts it may see.
type token struct {
	value string
	// scope is nil for a token of every sub-account.
	scope session.Scope
}

// ParseToken reads one configured admin token: "TOKEN" may see and change
// every sub-account, "TOKEN@SUB1/SUB2" only the sub-accounts listed. Its
// errors never hold the token itself.
func ParseToken(v string) (value string, scope session.Scope, err error) {
	value, subs, limited := strings.Cut(v, "@")
	if value == "" {
		return "", nil, fmt.Errorf("%w: an admin token cannot be empty", ErrInvalidConfig)
	}
	if !limited {
		return value, nil, nil
	}
	if subs == "" {
		return "", nil, fmt.Errorf("%w: an admin token ends in @ without sub-accounts (TOKEN@SUB1/SUB2)", ErrInvalidConfig)
	}
	for _, sub := range strings.Split(subs, "/") {
		if err := session.ValidSubAccount(sub); err != nil {
			return "", nil, fmt.Errorf("%w: a sub-account of an admin token: %v", ErrInvalidConfig, err)
		}
		if !slices.Contains(scope, sub) {
			scope = append(scope, sub)
		}
	}
	return value, scope, nil
}

// parseTokens reads the configured tokens; a token may be listed once.
func parseTokens(values []string) ([]token, error) {
	out := make([]token, 0, len(values))
	seen := map[string]bool{}
	for i, v := range values {
		value, scope, err := ParseToken(v)
		if err != nil {
			return nil, fmt.Errorf("admin token %d of %d: %w", i+1, len(values), err)
		}
		if seen[value] {
			return nil, fmt.Errorf("%w: admin token %d of %d is listed twice", ErrInvalidConfig, i+1, len(values))
		}
		seen[value] = true
		out = append(out, token{value: value, scope: scope})
	}
	return out, nil
}

// tokenSet is the accepted bearer tokens and their digests, replaced
// whole by SetTokens.
type tokenSet struct {
	// tokens are the parsed tokens, in their order; digests the same
	// values, compared in constant time.
	tokens  []token
	digests secret.Set
}

// newTokenSet parses the configured tokens.
func newTokenSet(values []string) (*tokenSet, error) {
	tokens, err := parseTokens(values)
	if err != nil {
		return nil, err
	}
	plain := make([]string, len(tokens))
	for i, t := range tokens {
		plain[i] = t.value
	}
	return &tokenSet{tokens: tokens, digests: secret.NewSet(plain)}, nil
}

// SetTokens replaces the bearer tokens /v1/ accepts (written as
// Config.Tokens) for the requests that arrive from then on, so that a
// token is rotated without a restart. On error the tokens in use stay:
// values that do not parse, none at all (that would open /v1/), or a
// server started without tokens (its /v1/ was mounted open, on loopback).
func (s *Server) SetTokens(values []string) error {
	if len(values) == 0 {
		return fmt.Errorf("%w: no admin tokens given; the ones in use stay", ErrInvalidConfig)
	}
	if s.auth.Load() == nil {
		return fmt.Errorf("%w: the admin listener started without tokens; restart it to require them", ErrInvalidConfig)
	}
	tokens, err := newTokenSet(values)
	if err != nil {
		return err
	}
	s.auth.Store(tokens)
	return nil
}

type scopeKey struct{}

// withScope returns r carrying the scope of the token it authenticated
// with.
func withScope(r *http.Request, scope session.Scope) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), scopeKey{}, scope))
}

// scopeOf returns the sub-accounts the request may see and change: nil
// for all (a token of every sub-account, or no token configured).
func scopeOf(r *http.Request) session.Scope {
	sc, _ := r.Context().Value(scopeKey{}).(session.Scope)
	return sc
}
