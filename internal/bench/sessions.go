package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sessionCreators is how many sessions are created at a time.
const sessionCreators = 8

// CreateSessions creates sessions through the admin API (POST
// /v1/sessions) with the given lifetime, a few at a time, and stops at the
// first failure, whose error carries the API's answer.
func CreateSessions(ctx context.Context, adminURL, token string, sessions []Session, ttl, timeout time.Duration) (int, error) {
	client := &http.Client{Timeout: timeout}
	endpoint := strings.TrimRight(adminURL, "/") + "/v1/sessions"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		created  int
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int)
	for range sessionCreators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				err := createSession(ctx, client, endpoint, token, sessions[i], ttl)
				mu.Lock()
				if err == nil {
					created++
				} else if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range sessions {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil && created < len(sessions) {
		firstErr = ctx.Err()
	}
	return created, firstErr
}

// createSession creates s, waiting and trying again while the admin API
// answers 429 (its per-client rate limit), as its Retry-After says.
func createSession(ctx context.Context, client *http.Client, endpoint, token string, s Session, ttl time.Duration) error {
	for {
		wait, err := postSession(ctx, client, endpoint, token, s, ttl)
		if wait == 0 {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("create session: %w", ctx.Err())
		}
	}
}

// postSession makes one attempt; a positive wait means "rate limited: try
// again after it".
func postSession(ctx context.Context, client *http.Client, endpoint, token string, s Session, ttl time.Duration) (time.Duration, error) {
	body, _ := json.Marshal(map[string]any{
		"virtualNumber": s.VirtualNumber,
		"participants":  s.Participants,
		"ttlSeconds":    int64(ttl.Seconds()),
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("create session: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusTooManyRequests {
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || secs < 1 {
			secs = 1
		}
		return time.Duration(secs) * time.Second, nil
	}
	if resp.StatusCode != http.StatusCreated {
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = " (set --admin-token)"
		case http.StatusConflict:
			hint = " (a session of an earlier run with the same --run-id is still open)"
		}
		return 0, fmt.Errorf("create session: POST %s answered %s%s: %s", endpoint, resp.Status, hint, bytes.TrimSpace(msg))
	}
	return 0, nil
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
