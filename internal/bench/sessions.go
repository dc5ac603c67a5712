package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sessionCreators is how many sessions are created at a time.
const sessionCreators = 8

// CreateSessions creates sessions through the admin API (POST
// /v1/sessions) with the given lifetime, a few at a time, and stops at the
// first failure, whose error carries the API's answer. It returns the ids
// of the sessions created, on failure too, so that they can be removed.
func CreateSessions(ctx context.Context, adminURL, token string, sessions []Session, ttl, timeout time.Duration) ([]string, error) {
	client := &http.Client{Timeout: timeout}
	endpoint := strings.TrimRight(adminURL, "/") + "/v1/sessions"
	var (
		mu      sync.Mutex
		created []string
	)
	err := eachSession(ctx, len(sessions), func(ctx context.Context, i int) error {
		id, err := createSession(ctx, client, endpoint, token, sessions[i], ttl)
		if id != "" {
			mu.Lock()
			created = append(created, id)
			mu.Unlock()
		}
		return err
	})
	return created, err
}

// eachSession calls do for 0 to n-1, sessionCreators at a time, and stops
// at the first error, which it returns (or ctx's, when it ends first).
func eachSession(ctx context.Context, n int, do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		done     int
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int)
	for range sessionCreators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				err := do(ctx, i)
				mu.Lock()
				if err == nil {
					done++
				} else if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil && done < n {
		firstErr = ctx.Err()
	}
	return firstErr
}

// createSession creates s, waiting and trying again while the admin API
// answers 429 (its per-client rate limit), as its Retry-After says, and
// returns its id. A request under way when ctx ends is let finish (the
// client's timeout bounds it): the session it creates is then known, and
// removed with the others, rather than left behind by a lost answer.
func createSession(ctx context.Context, client *http.Client, endpoint, token string, s Session, ttl time.Duration) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"virtualNumber": s.VirtualNumber,
		"participants":  s.Participants,
		"ttlSeconds":    int64(ttl / time.Second),
	})
	for {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("create session: %w", err)
		}
		answer, wait, err := adminRequest(context.WithoutCancel(ctx), client, http.MethodPost, endpoint, token, body, http.StatusCreated)
		if err != nil {
			return "", fmt.Errorf("create session: %w", err)
		}
		if wait == 0 {
			var created struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(answer, &created); err != nil || created.ID == "" {
				return "", fmt.Errorf("create session: POST %s answered without a session id: %s", endpoint, bytes.TrimSpace(answer))
			}
			return created.ID, nil
		}
		if err := sleep(ctx, wait); err != nil {
			return "", fmt.Errorf("create session: %w", err)
		}
	}
}

// cleanupTimeout bounds how long removing the sessions of a run may take:
// what is left then expires with its TTL.
const cleanupTimeout = time.Minute

// RemoveSessions deletes sessions through the admin API (DELETE
// /v1/sessions/{id}), a few at a time, waiting out its rate limit; a
// session already gone counts as removed. It runs on after ctx ends (an
// interrupted run still cleans up), for cleanupTimeout at most, and
// returns how many were removed and the first failure.
func RemoveSessions(ctx context.Context, adminURL, token string, ids []string, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	client := &http.Client{Timeout: timeout}
	base := strings.TrimRight(adminURL, "/") + "/v1/sessions/"
	var removed atomic.Int64
	err := eachSession(ctx, len(ids), func(ctx context.Context, i int) error {
		for {
			_, wait, err := adminRequest(ctx, client, http.MethodDelete, base+url.PathEscape(ids[i]), token, nil, http.StatusNoContent, http.StatusNotFound)
			if err != nil {
				return fmt.Errorf("remove session %s: %w", ids[i], err)
			}
			if wait == 0 {
				removed.Add(1)
				return nil
			}
			if err := sleep(ctx, wait); err != nil {
				return fmt.Errorf("remove session %s: %w", ids[i], err)
			}
		}
	})
	return int(removed.Load()), err
}

// adminRequest makes one request of the admin API and returns the answer's
// body when its status is one of ok; a positive wait means "rate limited:
// try again after it"; another status is an error carrying the answer.
func adminRequest(ctx context.Context, client *http.Client, method, endpoint, token string, body []byte, ok ...int) ([]byte, time.Duration, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, rd)
	if err != nil {
		return nil, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusTooManyRequests {
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || secs < 1 {
			secs = 1
		}
		return nil, time.Duration(secs) * time.Second, nil
	}
	if !slices.Contains(ok, resp.StatusCode) {
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = " (set --admin-token)"
		case http.StatusConflict:
			hint = " (a session of an earlier run with the same --run-id is still open)"
		}
		return nil, 0, fmt.Errorf("%s %s answered %s%s: %s", method, endpoint, resp.Status, hint, bytes.TrimSpace(msg))
	}
	return msg, 0, nil
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// probeSessions posts CALL_ACTIONs from participants of a few of the
// sessions (first, middle, last) until each is connected, so that the load
// does not start before the deciders have seen the sessions (they learn
// them by watching the bucket). Probe event ids are bench-<run>-probe-<k>;
// the audit ignores them. It reports whether all were connected within
// wait.
func probeSessions(ctx context.Context, url string, t *Traffic, sessions []Session, timeout, wait time.Duration) bool {
	if len(sessions) == 0 {
		return true
	}
	client := &http.Client{Timeout: timeout}
	picks := []int{0, len(sessions) / 2, len(sessions) - 1}
	deadline := time.Now().Add(wait)
	k := 0
	for _, i := range picks {
		s := sessions[i]
		for {
			k++
			body := t.appendCall(nil, fmt.Sprintf("%sprobe-%d", t.IDPrefix(), k), s.Participants[0], s.VirtualNumber)
			if probeOnce(ctx, client, url, body) == AnswerConnect {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return false
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return false
			}
		}
	}
	return true
}

func probeOnce(ctx context.Context, client *http.Client, url string, body []byte) Answer {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return AnswerBad
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return AnswerBad
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return AnswerBad
	}
	return ClassifyCallflow(b)
}
