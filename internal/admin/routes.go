package admin

import (
	"net/http"
	"slices"
	"strings"
)

// apiRoute is a path of the API and the handler of each method on it.
type apiRoute struct {
	// pattern is the path in http.ServeMux syntax: {name} matches one
	// segment.
	pattern  string
	handlers func(h *api) map[string]http.HandlerFunc
}

// routes is the API: every path and method it serves. What it does not
// list is 405 (a known path) or 404.
var routes = []apiRoute{
	{"/v1/sessions", func(h *api) map[string]http.HandlerFunc {
		return map[string]http.HandlerFunc{http.MethodGet: h.list, http.MethodPost: h.create}
	}},
	{"/v1/sessions/{id}", func(h *api) map[string]http.HandlerFunc {
		return map[string]http.HandlerFunc{http.MethodGet: h.get, http.MethodPatch: h.patch, http.MethodDelete: h.delete}
	}},
	{"/v1/sessions/{id}/interactions", func(h *api) map[string]http.HandlerFunc {
		return map[string]http.HandlerFunc{http.MethodGet: h.interactions}
	}},
	{"/v1/numbers", func(h *api) map[string]http.HandlerFunc {
		return map[string]http.HandlerFunc{http.MethodGet: h.listNumbers}
	}},
	{"/v1/numbers/{number}", func(h *api) map[string]http.HandlerFunc {
		return map[string]http.HandlerFunc{http.MethodGet: h.getNumber, http.MethodPut: h.putNumber, http.MethodDelete: h.deleteNumber}
	}},
	{"/v1/subaccounts/{id}", func(h *api) map[string]http.HandlerFunc {
		return map[string]http.HandlerFunc{http.MethodGet: h.getSubAccount, http.MethodPut: h.putSubAccount}
	}},
	{"/v1/flows", func(h *api) map[string]http.HandlerFunc {
		return map[string]http.HandlerFunc{http.MethodGet: h.listFlows}
	}},
	{"/v1/flows/{id}", func(h *api) map[string]http.HandlerFunc {
		return map[string]http.HandlerFunc{http.MethodGet: h.getFlow, http.MethodPut: h.putFlow, http.MethodDelete: h.deleteFlow}
	}},
}

// allowed returns the methods routes serve on path (GET with HEAD), or
// nil when path is none of theirs.
func allowed(path string) []string {
	for _, rt := range routes {
		if !matches(rt.pattern, path) {
			continue
		}
		var methods []string
		for m := range rt.handlers(&api{}) {
			methods = append(methods, m)
			if m == http.MethodGet {
				methods = append(methods, http.MethodHead)
			}
		}
		slices.Sort(methods)
		return methods
	}
	return nil
}

// matches reports whether path is an instance of pattern: the same
// segments, a {name} segment standing for any non-empty one.
func matches(pattern, path string) bool {
	ps, segs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(segs) {
		return false
	}
	for i, p := range ps {
		if strings.HasPrefix(p, "{") {
			if segs[i] == "" {
				return false
			}
			continue
		}
		if p != segs[i] {
			return false
		}
	}
	return true
}

// notAllowed answers what the routes do not match, in JSON: 405 with
// Allow for a known path, 404 otherwise.
func notAllowed(w http.ResponseWriter, r *http.Request) {
	methods := allowed(r.URL.Path)
	if methods == nil {
		writeError(w, http.StatusNotFound, CodeNotFound, "not found: "+r.Method+" "+r.URL.Path)
		return
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+"; allowed: "+strings.Join(methods, ", "))
}
