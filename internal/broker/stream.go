package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
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
	// MaxBytes bounds the bytes the stream keeps on each replica (0:
	// DefaultMaxBytes; -1: no bound). Past it the oldest records are
	// dropped, archived or not: with MaxAge it bounds how long an archiver
	// outage is survived (alert CallflowStreamFilling).
	MaxBytes int64
	// Replicas is the replica count when this role creates the stream.
	Replicas int
	// SourceDomains makes the stream the centre's of a multi-region
	// deployment: besides the records of its own region's calls, it
	// sources the stream of the same name in each of these JetStream
	// domains (the other regions' leaf nodes or clusters), for the
	// archivers. A region cut off keeps its records; the centre catches up
	// when it is back. The records' subjects must not cross between the
	// domains (deny them on the leaf node connections), or a region's
	// record would also be stored at the centre directly.
	SourceDomains []string
}

// DomainAPI is the JetStream API prefix of a domain ($JS.<domain>.API),
// through which a stream source, a mirror or a write to a mirror's origin
// reaches it.
func DomainAPI(domain string) string { return "$JS." + domain + ".API" }

// ValidDomain reports whether name can be a JetStream domain: one
// subject token, without dots, wildcards or spaces.
func ValidDomain(name string) bool { return name != "" && !strings.ContainsAny(name, ".*> \t") }

// Defaults for StreamConfig. DefaultMaxBytes fits the 10 GB JetStream file
// store of deploy/nats with room for the sessions bucket; at about 1.5 KB a
// record it holds some 5.7 million records.
const (
	DefaultStream     = "CALLS"
	DefaultMaxAge     = 7 * 24 * time.Hour
	DefaultDuplicates = 2 * time.Minute
	DefaultMaxBytes   = 8 << 30
)

// errCodeStorageExceeded is JetStream's "insufficient storage resources
// available" (JSStorageResourcesExceededErr), which nats.go names not.
const errCodeStorageExceeded jetstream.ErrorCode = 10047

// maxBytes is the stream's byte bound as JetStream takes it.
func (c StreamConfig) maxBytes() int64 {
	if c.MaxBytes == 0 {
		return DefaultMaxBytes
	}
	return c.MaxBytes
}

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
	case c.MaxBytes < -1 || (c.MaxBytes > 0 && c.MaxBytes < 1<<20):
		return fmt.Errorf("%w: stream max bytes must be at least 1 MiB, or -1 for no bound, got %d", ErrInvalidConfig, c.MaxBytes)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("%w: stream replicas must be 1 to 5, got %d", ErrInvalidConfig, c.Replicas)
	}
	seen := map[string]bool{}
	for _, d := range c.SourceDomains {
		switch {
		case !ValidDomain(d):
			return fmt.Errorf("%w: stream source domain %q is not a JetStream domain name (one token: no dots, wildcards or spaces)", ErrInvalidConfig, d)
		case seen[d]:
			return fmt.Errorf("%w: stream source domain %q is given twice", ErrInvalidConfig, d)
		}
		seen[d] = true
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
		MaxBytes:    cfg.maxBytes(),
		Duplicates:  cfg.Duplicates,
		Replicas:    cfg.Replicas,
		Discard:     jetstream.DiscardOld,
	}
	if len(cfg.SourceDomains) > 0 {
		want.Description = "callflow: every accepted 8x8 webhook with its decision, this region's and those sourced from the others'"
		for _, d := range cfg.SourceDomains {
			want.Sources = append(want.Sources, &jetstream.StreamSource{Name: cfg.Name, Domain: d})
		}
	}
	for attempt := 0; ; attempt++ {
		var s jetstream.Stream
		err := Setup(ctx, log, "look up stream "+cfg.Name, func(ctx context.Context) (err error) {
			s, err = js.Stream(ctx, cfg.Name)
			return err
		})
		if err == nil {
			reportStreamDrift(s.CachedInfo().Config, want, log)
			return addSources(ctx, js, s, cfg.SourceDomains, log)
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("look up stream %s: %w", cfg.Name, err)
		}
		err = Setup(ctx, log, "create stream "+cfg.Name, func(ctx context.Context) (err error) {
			s, err = js.CreateStream(ctx, want)
			return err
		})
		if err == nil {
			log.Info("created records stream", "stream", cfg.Name, "max_age", cfg.MaxAge, "max_bytes", want.MaxBytes, "duplicates", cfg.Duplicates, "replicas", cfg.Replicas)
			return s, nil
		}
		if apiErr := (*jetstream.APIError)(nil); errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStorageExceeded {
			return nil, fmt.Errorf("create stream %s with max bytes %d x %d replicas: %w; lower the stream's max bytes or raise the servers' JetStream max_file_store", cfg.Name, want.MaxBytes, cfg.Replicas, err)
		}
		// Another role may have created it in between: look again, once.
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
	if have.MaxBytes != want.MaxBytes {
		diffs = append(diffs, "max_bytes", have.MaxBytes, "configured_max_bytes", want.MaxBytes)
	}
	if have.Duplicates != want.Duplicates {
		diffs = append(diffs, "duplicates", have.Duplicates.String(), "configured_duplicates", want.Duplicates.String())
	}
	if have.Replicas != want.Replicas {
		diffs = append(diffs, "replicas", have.Replicas, "configured_replicas", want.Replicas)
	}
	if !slices.Equal(have.Subjects, want.Subjects) {
		diffs = append(diffs, "subjects", have.Subjects, "configured_subjects", want.Subjects)
	}
	if len(diffs) > 0 {
		log.Warn("records stream exists with other settings; leaving it as it is", append([]any{"stream", want.Name}, diffs...)...)
	}
}

// addSources adds to the existing stream s the domains it does not source
// yet: a region added to the deployment is taken in when the archivers
// restart with it. Sources the stream has beyond domains are kept (a
// region taken out may still hold records); the log says which.
func addSources(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, domains []string, log *slog.Logger) (jetstream.Stream, error) {
	if len(domains) == 0 {
		return s, nil
	}
	cfg := s.CachedInfo().Config
	have := map[string]bool{}
	for _, src := range cfg.Sources {
		if src.External != nil {
			have[src.External.APIPrefix] = true
		}
	}
	var added []string
	for _, d := range domains {
		if !have[DomainAPI(d)] {
			cfg.Sources = append(cfg.Sources, &jetstream.StreamSource{Name: cfg.Name, Domain: d})
			added = append(added, d)
		}
		delete(have, DomainAPI(d))
	}
	if len(have) > 0 {
		log.Warn("records stream sources more than the configured domains; leaving them", "stream", cfg.Name, "others", slices.Sorted(maps.Keys(have)))
	}
	if len(added) == 0 {
		return s, nil
	}
	err := Setup(ctx, log, "add sources to stream "+cfg.Name, func(ctx context.Context) (err error) {
		s, err = js.UpdateStream(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("add sources %v to stream %s: %w", added, cfg.Name, err)
	}
	log.Info("records stream sources more regions", "stream", cfg.Name, "added", added)
	return s, nil
}

// StreamCollector exposes the records stream's fill, read from JetStream
// once per scrape: callflow_stream_bytes and callflow_stream_messages
// beside the bounds callflow_stream_max_bytes and
// callflow_stream_max_age_seconds, and the age of the oldest record kept.
// While nc is disconnected it reports nothing at once, rather than make
// every scrape wait for the JetStream request's timeout.
func StreamCollector(nc *nats.Conn, stream jetstream.Stream) prometheus.Collector {
	return streamCollector{nc, stream}
}

var (
	streamBytesDesc     = prometheus.NewDesc("callflow_stream_bytes", "Bytes the records stream holds.", []string{"stream"}, nil)
	streamMessagesDesc  = prometheus.NewDesc("callflow_stream_messages", "Records the stream holds.", []string{"stream"}, nil)
	streamMaxBytesDesc  = prometheus.NewDesc("callflow_stream_max_bytes", "The records stream's byte bound (past it the oldest records are dropped); -1: none.", []string{"stream"}, nil)
	streamMaxAgeDesc    = prometheus.NewDesc("callflow_stream_max_age_seconds", "How long the records stream keeps a record.", []string{"stream"}, nil)
	streamOldestAgeDesc = prometheus.NewDesc("callflow_stream_oldest_age_seconds", "Age of the oldest record the stream holds; 0 when it holds none.", []string{"stream"}, nil)
)

type streamCollector struct {
	nc     *nats.Conn
	stream jetstream.Stream
}

// Describe sends the collector's descriptions.
func (c streamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{streamBytesDesc, streamMessagesDesc, streamMaxBytesDesc, streamMaxAgeDesc, streamOldestAgeDesc} {
		ch <- d
	}
}

// Collect asks JetStream for the stream's state; nothing is sent when it
// does not answer within two seconds.
func (c streamCollector) Collect(ch chan<- prometheus.Metric) {
	if !c.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.stream.Info(ctx)
	if err != nil {
		return
	}
	name := info.Config.Name
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
	}
	gauge(streamBytesDesc, float64(info.State.Bytes))
	gauge(streamMessagesDesc, float64(info.State.Msgs))
	gauge(streamMaxBytesDesc, float64(info.Config.MaxBytes))
	gauge(streamMaxAgeDesc, info.Config.MaxAge.Seconds())
	oldest := 0.0 // an empty stream holds nothing old
	if info.State.Msgs > 0 && !info.State.FirstTime.IsZero() {
		oldest = time.Since(info.State.FirstTime).Seconds()
	}
	gauge(streamOldestAgeDesc, oldest)
}
