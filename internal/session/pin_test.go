package session_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
)

// pinIs checks what LookupPIN finds ("" for nothing).
func pinIs(st *session.Store, virtual, pin, sub, wantID string) error {
	s, ok := st.LookupPIN(virtual, pin, sub, time.Now())
	switch {
	case wantID == "" && ok:
		return fmt.Errorf("LookupPIN(%s, %s, %q) = %s, want none", virtual, pin, sub, s.ID)
	case wantID != "" && (!ok || s.ID != wantID):
		return fmt.Errorf("LookupPIN(%s, %s, %q) = %v, %v; want %s", virtual, pin, sub, s, ok, wantID)
	}
	return nil
}

// TestPINSessions: sessions with a pin share numbers and participants;
// a pin is unique among the open sessions of its number; "auto" makes
// one; LookupPIN finds them (and Lookup does not) in every store, by
// sub-account; closing, deleting or expiry frees the pin.
func TestPINSessions(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	other := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	kv := bucket(t, js, session.DefaultBucket)

	first := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, PIN: "1234"})
	creates := []struct {
		name string
		req  session.Request
		want error
	}{
		{"the pin again on the number", session.Request{VirtualNumber: vn1, Participants: []string{pC, pD}, PIN: "1234"}, session.ErrPINConflict},
		{"the pin on another number", session.Request{VirtualNumber: vn2, Participants: []string{pC, pD}, PIN: "1234"}, nil},
		{"the same participants, another pin", session.Request{VirtualNumber: vn1, Participants: []string{pB, pA}, PIN: "5678"}, nil},
		{"one participant, another pin", session.Request{VirtualNumber: vn1, Participants: []string{pA, pC}, PIN: "00001234"}, nil},
		{"without a pin beside them", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}}, nil},
		{"without a pin, same participant again", session.Request{VirtualNumber: vn1, Participants: []string{pA, pD}}, session.ErrConflict},
		{"pin too short", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, PIN: "123"}, session.ErrInvalid},
		{"pin too long", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, PIN: "123456789"}, session.ErrInvalid},
		{"pin with a letter", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, PIN: "12a4"}, session.ErrInvalid},
		{"pin with a space", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, PIN: " 1234"}, session.ErrInvalid},
		{"AUTO", session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, PIN: "AUTO"}, session.ErrInvalid},
	}
	made := map[string]session.Session{"first": first}
	for _, c := range creates {
		t.Run(c.name, func(t *testing.T) {
			s, err := st.Create(ctx, c.req)
			if !errors.Is(err, c.want) {
				t.Fatalf("Create = %v, want %v", err, c.want)
			}
			if errors.Is(err, session.ErrInvalid) && !strings.Contains(err.Error(), "pin:") {
				t.Errorf("error %q does not name pin", err)
			}
			if err == nil {
				if s.PIN != c.req.PIN {
					t.Errorf("pin %q, want %q", s.PIN, c.req.PIN)
				}
				made[c.name] = s
			}
		})
	}
	// Generated pins: six digits, each free on the number.
	pins := map[string]bool{"1234": true, "5678": true, "00001234": true}
	var auto session.Session
	for range 20 {
		auto = mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, PIN: session.PINAuto})
		if len(auto.PIN) != session.AutoPINLength || !session.ValidPIN(auto.PIN) || pins[auto.PIN] {
			t.Fatalf("generated pin %q (taken: %v)", auto.PIN, pins[auto.PIN])
		}
		pins[auto.PIN] = true
	}
	plain := made["without a pin beside them"]
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, x := range []*session.Store{st, other} {
			for _, check := range []error{
				pinIs(x, vn1, "1234", "", first.ID),
				pinIs(x, vn1, "5678", "", made["the same participants, another pin"].ID),
				pinIs(x, vn2, "1234", "", made["the pin on another number"].ID),
				pinIs(x, vn1, auto.PIN, "", auto.ID),
				pinIs(x, vn1, "9999", "", ""),
				// Participants route only to the session without a pin.
				lookupIs(x, vn1, pA, plain.ID),
				lookupIs(x, vn1, pC, ""),
				lookupIs(x, vn2, pC, ""),
			} {
				if check != nil {
					return check
				}
			}
		}
		return nil
	})
	// Lists show pins, and filter by them.
	list, _, err := st.ListSessions(session.SessionFilter{VirtualNumber: vn1, PIN: "5678"}, session.Page{}, time.Now())
	if err != nil || len(list) != 1 || list[0].PIN != "5678" {
		t.Errorf("ListSessions by pin = %+v, %v", list, err)
	}

	// Closing frees the pin at once: its key is released, and the pin
	// taken again.
	if _, err := st.Update(ctx, first.ID, session.Patch{Close: true}); err != nil {
		t.Fatal(err)
	}
	if err := keyGone(ctx, kv, "k."+vn1[1:]+".1234"); err != nil {
		t.Error(err)
	}
	if err := pinIs(st, vn1, "1234", "", ""); err != nil {
		t.Error(err)
	}
	again := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pC, pD}, PIN: "1234"})
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error { return pinIs(other, vn1, "1234", "", again.ID) })
	// So does a delete.
	if _, err := other.Delete(ctx, again.ID); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, other, session.Request{VirtualNumber: vn1, Participants: []string{pA, pD}, PIN: "1234"})

	// By sub-account: a session of one admits only its calls.
	acme := mustCreate(t, st, session.Request{VirtualNumber: vn2, SubAccountID: "acme", Participants: []string{pA, pB}, PIN: "4321"})
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, check := range []error{pinIs(other, vn2, "4321", "acme", acme.ID), pinIs(other, vn2, "4321", "globex", "")} {
			if check != nil {
				return check
			}
		}
		return nil
	})
}

// TestPINExpiry: a session's pin key carries its TTL; once it expires,
// the pin is free for a new session.
func TestPINExpiry(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{History: 2 * time.Second})
	ctx := testCtx(t)
	s := mustCreate(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, PIN: "2468", TTLSeconds: 1})
	if _, err := st.Create(ctx, session.Request{VirtualNumber: vn1, Participants: []string{pC, pD}, PIN: "2468"}); !errors.Is(err, session.ErrPINConflict) {
		t.Fatalf("Create before expiry = %v, want ErrPINConflict", err)
	}
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if err := pinIs(st, vn1, "2468", "", ""); err != nil {
			return err
		}
		n, err := st.Create(ctx, session.Request{VirtualNumber: vn1, Participants: []string{pC, pD}, PIN: "2468"})
		if err != nil {
			return err
		}
		if n.ID == s.ID {
			return errors.New("same session")
		}
		return nil
	})
}

// TestPINConcurrentCreates: creates of one pin on one number from two
// stores at once: exactly one wins each pin.
func TestPINConcurrentCreates(t *testing.T) {
	js := startJS(t)
	a := openStore(t, js, session.Config{})
	b := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	const pins = 10
	var mu sync.Mutex
	won := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 2*pins)
	for i := range pins {
		pin := fmt.Sprintf("%04d", 1000+i)
		for j, st := range []*session.Store{a, b} {
			wg.Go(func() {
				_, err := st.Create(ctx, session.Request{VirtualNumber: vn1, Participants: []string{pA, fmt.Sprintf("+65800000%02d", 2*i+j)}, PIN: pin})
				switch {
				case err == nil:
					mu.Lock()
					won[pin]++
					mu.Unlock()
				case !errors.Is(err, session.ErrPINConflict):
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Create: %v", err)
	}
	for i := range pins {
		if pin := fmt.Sprintf("%04d", 1000+i); won[pin] != 1 {
			t.Errorf("pin %s won by %d creates, want 1", pin, won[pin])
		}
	}
}

// TestPINAllocation: sessions with a pin are allocated numbers whatever
// their participants' other sessions: where the pin is free, least used
// first; a generated pin always finds a number.
func TestPINAllocation(t *testing.T) {
	js := startJS(t)
	st := openStore(t, js, session.Config{})
	ctx := testCtx(t)
	putNumber(t, st, "+6568330001", "acme", "SG", session.NumberActive)
	putNumber(t, st, "+6568330002", "acme", "SG", session.NumberActive)
	// The participants already have a session without a pin on both
	// numbers: no such session can be allocated any more.
	for range 2 {
		mustCreate(t, st, session.Request{SubAccountID: "acme", Participants: []string{pA, pB}})
	}
	if _, err := st.Create(ctx, session.Request{SubAccountID: "acme", Participants: []string{pA, pB}}); !errors.Is(err, session.ErrPoolExhausted) {
		t.Fatalf("Create without a pin = %v, want ErrPoolExhausted", err)
	}
	on := map[string]bool{}
	for range 2 {
		s := mustCreate(t, st, session.Request{SubAccountID: "acme", Participants: []string{pA, pB}, PIN: "1111"})
		on[s.VirtualNumber] = true
	}
	if len(on) != 2 {
		t.Errorf("pin 1111 allocated on %v, want both numbers", on)
	}
	if _, err := st.Create(ctx, session.Request{SubAccountID: "acme", Participants: []string{pA, pB}, PIN: "1111"}); !errors.Is(err, session.ErrPoolExhausted) {
		t.Errorf("a third 1111 = %v, want ErrPoolExhausted", err)
	}
	// A driver with twenty open orders, on two numbers.
	for range 20 {
		s := mustCreate(t, st, session.Request{SubAccountID: "acme", Participants: []string{pA, pC}, PIN: session.PINAuto})
		if !session.ValidPIN(s.PIN) || s.SubAccountID != "acme" {
			t.Fatalf("allocated %+v", s)
		}
	}
}
