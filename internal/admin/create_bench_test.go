package admin

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
)

// BenchmarkCreateSessions measures what one admin process sustains for
// session creates: HTTP on 127.0.0.1 with keep-alive, 8 clients at once,
// each create on its own participants, into a bucket of the NATS server
// in the same process (as `serve` runs it), with and without an
// Idempotency-Key (two more writes a create). The README's rate-limit
// sizing comes from it:
//
//	go test ./internal/admin -run '^$' -bench BenchmarkCreateSessions -benchtime 3000x
func BenchmarkCreateSessions(b *testing.B) {
	e := newAdminEnv(b, adminOptions{cfg: func(c *Config) { c.Tokens = []string{tokRoot} }})
	var n atomic.Int64
	for _, bb := range []struct {
		clients int
		keyed   bool
	}{{1, false}, {8, false}, {8, true}} {
		clients := bb.clients
		b.Run(fmt.Sprintf("clients=%d/keyed=%v", clients, bb.keyed), func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: clients}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			var next atomic.Int64
			done := make(chan struct{})
			b.ResetTimer()
			for range clients {
				go func() {
					defer func() { done <- struct{}{} }()
					for next.Add(1) <= int64(b.N) {
						i := n.Add(1)
						body := fmt.Sprintf(`{"virtualNumber":"+6590000001","participants":["+6581%06d","+6582%06d"],"ttlSeconds":3600}`, i, i)
						req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/sessions", bytes.NewReader([]byte(body)))
						req.Header.Set("Authorization", "Bearer "+tokRoot)
						if bb.keyed {
							req.Header.Set("Idempotency-Key", fmt.Sprintf("order-%d", i))
						}
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusCreated {
							b.Errorf("create %d: %d", i, resp.StatusCode)
							return
						}
					}
				}()
			}
			for range clients {
				<-done
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}
