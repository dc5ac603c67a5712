package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig describes the records stream.
type StreamConfig struct {
	// Name of the stream (default CALLS).
	Name string
	// MaxAge bounds how long records are kept, and so how long an archiver
	// outage is survived.
	MaxAge time.Duration
	// Duplicates is the window in which a Nats-Msg-Id seen before is
	// dropped as a duplicate.
	Duplicates time.Duration
	// Replicas is the replica count when this role creates the stream.
	Replicas int
}

// Defaults for StreamConfig.
const (
	DefaultStream     = "CALLS"
	DefaultMaxAge     = 7 * 24 * time.Hour
	DefaultDuplicates = 10 * time.Minute
)

// ErrInvalidConfig is wrapped by configuration errors of this package.
var ErrInvalidConfig = errors.New("invalid broker config")

// Validate checks the stream configuration.
func (c StreamConfig) Validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("%w: stream name is required", ErrInvalidConfig)
	case c.MaxAge <= 0:
		return fmt.Errorf("%w: stream max age must be > 0", ErrInvalidConfig)
	case c.Duplicates <= 0 || c.Duplicates > c.MaxAge:
		return fmt.Errorf("%w: stream duplicate window must be > 0 and not beyond the max age", ErrInvalidConfig)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("%w: stream replicas must be 1 to 5, got %d", ErrInvalidConfig, c.Replicas)
	}
	return nil
}

// EnsureStream returns the records stream, creating it when missing. A
// stream found with other settings is left as it is and the difference is
// logged: an operator may have tuned it.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig, log *slog.Logger) (jetstream.Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	want := jetstream.StreamConfig{
		Name:        cfg.Name,
		Description: "callflow: every accepted 8x8 webhook with its decision",
		Subjects:    []string{wire.SubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.MaxAge,
		Duplicates:  cfg.Duplicates,
		Replicas:    cfg.Replicas,
		Discard:     jetstream.DiscardOld,
	}
	for attempt := 0; ; attempt++ {
		s, err := js.Stream(ctx, cfg.Name)
		if err == nil {
			reportStreamDrift(s.CachedInfo().Config, want, log)
			return s, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("look up stream %s: %w", cfg.Name, err)
		}
		s, err = js.CreateStream(ctx, want)
		if err == nil {
			log.Info("created records stream", "stream", cfg.Name, "max_age", cfg.MaxAge, "replicas", cfg.Replicas)
			return s, nil
		}
		if attempt > 0 {
			return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
		}
	}
}

func reportStreamDrift(have, want jetstream.StreamConfig, log *slog.Logger) {
	var diffs []any
	if have.MaxAge != want.MaxAge {
		diffs = append(diffs, "max_age", have.MaxAge.String(), "configured_max_age", want.MaxAge.String())
	}
	if have.Duplicates != want.Duplicates {
		diffs = append(diffs, "duplicates", have.Duplicates.String(), "configured_duplicates", want.Duplicates.String())
	}
	if have.Replicas != want.Replicas {
		diffs = append(diffs, "replicas", have.Replicas, "configured_replicas", want.Replicas)
	}
	if len(have.Subjects) != 1 || have.Subjects[0] != want.Subjects[0] {
		diffs = append(diffs, "subjects", have.Subjects, "configured_subjects", want.Subjects)
	}
	if len(diffs) > 0 {
		log.Warn("records stream exists with other settings; leaving it as it is", append([]any{"stream", want.Name}, diffs...)...)
	}
}
