package admin

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestAllocationConcurrentTwoServers: two admin servers (each with its
// own NATS connection and session store, as two ingest processes) on one
// bucket take many creates at once whose participants overlap: an agent
// talks to many customers, each customer to every agent. Whatever the
// interleaving, no participant is ever bound twice to one number, every
// number allocated is an Active one of the sub-account, every refusal is
// a 409 saying the pool is exhausted, and each refusal was right: once
// the dust settles, every Active number holds one of the refused pair.
// Both servers then list the same sessions, and the allocation metrics of
// the two add up to the answers.
func TestAllocationConcurrentTwoServers(t *testing.T) {
	a := newAPIEnv(t)
	b := newAdminEnv(t, adminOptions{nats: a.ns, cfg: func(c *Config) {
		c.Tokens = []string{tokRoot, tokAcme + "@acme", tokMulti + "@acme/globex"}
		c.Instance = "admin-test-2"
	}})
	servers := []*adminEnv{a, b}

	const numbers = 4
	var pool []string
	for i := range numbers {
		n := fmt.Sprintf("+656100000%d", i)
		pool = append(pool, n)
		a.putNumber(n, "acme", "SG", session.NumberActive)
	}
	// Never allocated to acme: not Active, or another sub-account's.
	a.putNumber("+6561000010", "acme", "SG", session.NumberUnhealthy)
	a.putNumber("+6561000011", "globex", "SG", session.NumberActive)
	// Both servers' indexes hold the pool before the creates start.
	for _, e := range servers {
		natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			var list numberList
			e.must(http.StatusOK, http.MethodGet, "/v1/numbers?subAccountId=acme", tokRoot, "", &list)
			if len(list.Numbers) != numbers+1 {
				return fmt.Errorf("%s's index holds %d of acme's numbers", e.srv.cfg.Instance, len(list.Numbers))
			}
			return nil
		})
	}

	// 3 agents x 12 customers: an agent can be on each of the 4 numbers
	// once, so at most 4 of its 12 creates succeed; a customer appears 3
	// times. Every pair is asked twice, once of each server.
	type ask struct{ agent, customer string }
	var asks []ask
	for ag := range 3 {
		for c := range 12 {
			p := ask{fmt.Sprintf("+658800000%d", ag), fmt.Sprintf("+65870000%02d", c)}
			asks = append(asks, p, p)
		}
	}
	rand.Shuffle(len(asks), func(i, j int) { asks[i], asks[j] = asks[j], asks[i] })

	type answer struct {
		ask
		server int
		status int
		sess   session.Session
		err    string
	}
	answers := make([]answer, len(asks))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, q := range asks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			e := servers[i%2]
			body := fmt.Sprintf(`{"subAccountId":"acme","participants":[%q,%q],"ttlSeconds":3600}`, q.agent, q.customer)
			r := e.req(http.MethodPost, "/v1/sessions", tokRoot, body)
			ans := answer{ask: q, server: i % 2, status: r.status, err: errorOf(r)}
			if r.status == http.StatusCreated {
				_ = json.Unmarshal(r.body, &ans.sess)
			}
			answers[i] = ans
		}()
	}
	close(start)
	wg.Wait()

	bound := map[string]string{} // number/participant -> session id
	perAgent := map[string]int{}
	var created, refused int
	for _, ans := range answers {
		switch ans.status {
		case http.StatusCreated:
			created++
			s := ans.sess
			if !slices.Contains(pool, s.VirtualNumber) || s.SubAccountID != "acme" {
				t.Errorf("allocated %s of %q: not an Active number of acme", s.VirtualNumber, s.SubAccountID)
			}
			for _, p := range s.Participants {
				key := s.VirtualNumber + "/" + p
				if other, dup := bound[key]; dup {
					t.Errorf("participant %s bound twice to %s: sessions %s and %s", p, s.VirtualNumber, other, s.ID)
				}
				bound[key] = s.ID
			}
			perAgent[ans.agent]++
		case http.StatusConflict:
			refused++
			if !strings.Contains(ans.err, "exhausted") {
				t.Errorf("409 %q, want the pool exhausted", ans.err)
			}
		default:
			t.Errorf("server %d answered %d %q", ans.server, ans.status, ans.err)
		}
	}
	for agent, n := range perAgent {
		if n > numbers {
			t.Errorf("agent %s has %d sessions on %d numbers", agent, n, numbers)
		}
	}
	if created < numbers {
		t.Errorf("only %d sessions created", created)
	}
	// Each refusal was right: its agent or its customer is on every
	// number now (sessions were only added meanwhile).
	for _, ans := range answers {
		if ans.status != http.StatusConflict {
			continue
		}
		for _, n := range pool {
			if bound[n+"/"+ans.agent] == "" && bound[n+"/"+ans.customer] == "" {
				t.Errorf("%s and %s were refused, but %s is free for both", ans.agent, ans.customer, n)
			}
		}
	}
	t.Logf("%d created, %d refused as exhausted", created, refused)

	// Both servers come to list exactly the sessions created.
	for _, e := range servers {
		natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			var list sessionList
			e.must(http.StatusOK, http.MethodGet, "/v1/sessions?subAccountId=acme&limit=1000", tokRoot, "", &list)
			if len(list.Sessions) != created {
				return fmt.Errorf("%s lists %d sessions, want %d", e.srv.cfg.Instance, len(list.Sessions), created)
			}
			return nil
		})
	}
	var allocated, exhausted float64
	for _, e := range servers {
		allocated += testutil.ToFloat64(e.srv.metrics.allocations.WithLabelValues(AllocationAllocated))
		exhausted += testutil.ToFloat64(e.srv.metrics.allocations.WithLabelValues(AllocationExhausted))
	}
	if int(allocated) != created || int(exhausted) != refused {
		t.Errorf("metrics: %v allocated, %v exhausted; answers: %d created, %d refused", allocated, exhausted, created, refused)
	}
	// Each server wrote the audit records of its own creates.
	if n := len(a.records()); n < created {
		t.Errorf("%d audit records, want at least %d creates", n, created)
	}
}
