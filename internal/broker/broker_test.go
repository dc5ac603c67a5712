package broker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

func streamCfg() StreamConfig {
	return StreamConfig{Name: DefaultStream, MaxAge: DefaultMaxAge, Duplicates: DefaultDuplicates, Replicas: 1}
}

func TestEnsureStream(t *testing.T) {
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	// Roles start together: concurrent ensures all get the one stream.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := EnsureStream(ctx, js, streamCfg(), log)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent EnsureStream: %v", err)
		}
	}
	s, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.Subjects[0] != "calls.>" || c.MaxAge != DefaultMaxAge || c.Duplicates != DefaultDuplicates || c.Storage != jetstream.FileStorage {
		t.Errorf("stream config %+v", c)
	}

	// Found with other settings: left alone, the difference logged.
	other := streamCfg()
	other.MaxAge = time.Hour
	logs.Reset()
	if _, err := EnsureStream(ctx, js, other, log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "other settings") || !strings.Contains(logs.String(), "max_age") {
		t.Errorf("no drift warning: %s", logs.String())
	}
	info, _ := s.Info(ctx)
	if info.Config.MaxAge != DefaultMaxAge {
		t.Errorf("existing stream changed to max age %s", info.Config.MaxAge)
	}
}

func TestStreamConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*StreamConfig)
	}{
		{"no name", func(c *StreamConfig) { c.Name = "" }},
		{"no max age", func(c *StreamConfig) { c.MaxAge = 0 }},
		{"no duplicates window", func(c *StreamConfig) { c.Duplicates = 0 }},
		{"window beyond max age", func(c *StreamConfig) { c.Duplicates = c.MaxAge + time.Second }},
		{"zero replicas", func(c *StreamConfig) { c.Replicas = 0 }},
		{"six replicas", func(c *StreamConfig) { c.Replicas = 6 }},
	}
	if err := streamCfg().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := streamCfg()
			tt.mutate(&c)
			if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Validate() = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestEmbeddedServer(t *testing.T) {
	ns, err := StartEmbedded(EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := Connect(ConnConfig{Embedded: ns, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := EnsureStream(ctx, js, streamCfg(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("JetStream on the embedded server: %v", err)
	}
	// Other processes reach it over TCP too.
	tcp, err := Connect(ConnConfig{URLs: ns.ClientURL(), Name: "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Drain(tcp, 5*time.Second); err != nil || !tcp.IsClosed() {
		t.Errorf("Drain: %v, closed %v", err, tcp.IsClosed())
	}
	if err := Drain(nc, 5*time.Second); err != nil {
		t.Errorf("Drain: %v", err)
	}
	if _, err := StartEmbedded(EmbeddedConfig{Listen: "no-port", DataDir: t.TempDir()}); err == nil {
		t.Error("bad listen address accepted")
	}
}
