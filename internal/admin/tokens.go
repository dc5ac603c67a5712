package admin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

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
