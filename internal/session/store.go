package session

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/callflow/callflow/internal/broker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a Store.
type Config struct {
	// Bucket is the key-value bucket holding the sessions.
	Bucket string
	// Replicas is the bucket's replica count when this Store creates it
	// (3 on a three-node NATS cluster).
	Replicas int
	// MarkerTTL is how long the bucket keeps the markers left by deleted and
	// expired keys, so that watchers that were away still see them.
	MarkerTTL time.Duration
	// SyncTimeout bounds how long Open waits for the initial snapshot.
	SyncTimeout time.Duration
	// History is how long a closed or expired session stays readable
	// (GET, lists of closed sessions) before the bucket forgets it.
	History time.Duration
	// FlowRetention is how long a flow version stays readable
	// (FlowVersion) once a newer one replaced it or the flow was deleted:
	// the longest a call already in the flow may go on in it.
	FlowRetention time.Duration
	// MirrorDomain, when set, makes this Store a region's copy of the
	// bucket of the same name in that JetStream domain (the centre's, in a
	// multi-region deployment): the bucket here is a mirror, read locally,
	// so that a decision never crosses regions, and every write goes to
	// the centre's bucket, whose revisions the mirror keeps. While the
	// region is cut off from the centre, reads go on and writes fail.
	MirrorDomain string
	// Logger receives the store's notable events.
	Logger *slog.Logger
}

// Defaults for Config.
const (
	DefaultBucket      = "callflow_sessions"
	DefaultMarkerTTL   = time.Hour
	DefaultSyncTimeout = 30 * time.Second
	DefaultHistory     = 7 * 24 * time.Hour
	// DefaultFlowRetention keeps a replaced flow version for calls in it.
	DefaultFlowRetention = time.Hour
)

// claimGrace is how old a route key whose session does not exist must be
// before it is taken for the leftover of an interrupted create or delete,
// rather than a create in progress.
const claimGrace = 30 * time.Second

func (c *Config) setDefaults() {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MarkerTTL == 0 {
		c.MarkerTTL = DefaultMarkerTTL
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = DefaultSyncTimeout
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.FlowRetention == 0 {
		c.FlowRetention = DefaultFlowRetention
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration after defaults are applied.
func (c *Config) Validate() error {
	switch {
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("%w: replicas must be 1 to 5, got %d", ErrInvalidConfig, c.Replicas)
	case c.MarkerTTL < time.Second:
		return fmt.Errorf("%w: marker TTL must be at least 1s, got %s", ErrInvalidConfig, c.MarkerTTL)
	case c.SyncTimeout <= 0:
		return fmt.Errorf("%w: sync timeout must be > 0", ErrInvalidConfig)
	case c.History < time.Second || c.History > MaxTTL:
		return fmt.Errorf("%w: session history must be from 1s to %s, got %s", ErrInvalidConfig, MaxTTL, c.History)
	case c.FlowRetention < time.Second || c.FlowRetention > MaxTTL:
		return fmt.Errorf("%w: flow retention must be from 1s to %s, got %s", ErrInvalidConfig, MaxTTL, c.FlowRetention)
	case c.MirrorDomain != "" && !broker.ValidDomain(c.MirrorDomain):
		return fmt.Errorf("%w: sessions mirror domain %q is not a JetStream domain name (one token: no dots, wildcards or spaces)", ErrInvalidConfig, c.MirrorDomain)
	}
	return nil
}

// Store reads and writes the masking state in the bucket (sessions, the
// number pool, sub-account settings) and keeps a watched, in-memory index
// of it for routing, allocation and lists.
type Store struct {
	cfg Config
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	// putPrefix is the subject prefix of the bucket's writes: the
	// centre's bucket, through its domain's API, for a mirror.
	putPrefix string
	log       *slog.Logger
	idx       *index
	cancel    context.CancelFunc
	done      chan struct{}
	synced    chan struct{}
}

// Open makes sure the bucket exists (creating it when missing, leaving it as
// it is when found), starts watching it, and returns once the index holds
// the initial snapshot, so that no call is routed from a half-loaded index.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kv, err := ensureBucket(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		cfg: cfg, js: js, kv: kv, putPrefix: putPrefix(cfg), log: cfg.Logger, idx: newIndex(),
		cancel: cancel, done: make(chan struct{}), synced: make(chan struct{}),
	}
	// Registered before the watch starts, so that no reconnect is missed.
	reconnected := js.Conn().StatusChanged(nats.CONNECTED)
	w, err := kv.WatchFiltered(wctx, watched())
	if err != nil {
		cancel()
		js.Conn().RemoveStatusListener(reconnected)
		return nil, fmt.Errorf("watch bucket %s: %w", cfg.Bucket, err)
	}
	go s.watch(wctx, w, js.Conn(), reconnected)

	sctx, scancel := context.WithTimeout(ctx, cfg.SyncTimeout)
	defer scancel()
	select {
	case <-s.synced:
		_, all := s.idx.sessionCount(time.Now())
		s.idx.mu.RLock() // the watch goes on writing it
		numbers := len(s.idx.numbers)
		s.idx.mu.RUnlock()
		s.log.Info("session index loaded", "bucket", cfg.Bucket, "sessions", all, "numbers", numbers)
		return s, nil
	case <-sctx.Done():
		s.Close()
		return nil, fmt.Errorf("load sessions from bucket %s: %w", cfg.Bucket, sctx.Err())
	}
}

// putPrefix returns the subject prefix the bucket's keys are written on:
// $KV.<bucket>., or for a mirror the centre's bucket's, through its
// domain's JetStream API ($JS.<domain>.API.$KV.<bucket>., as nats.go's own
// KeyValue writes to a mirror).
func putPrefix(cfg Config) string {
	if cfg.MirrorDomain != "" {
		return broker.DomainAPI(cfg.MirrorDomain) + ".$KV." + cfg.Bucket + "."
	}
	return "$KV." + cfg.Bucket + "."
}

func ensureBucket(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.KeyValue, error) {
	want := jetstream.KeyValueConfig{
		Bucket:         cfg.Bucket,
		Description:    "callflow number-masking sessions",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       cfg.Replicas,
		LimitMarkerTTL: cfg.MarkerTTL,
	}
	if cfg.MirrorDomain != "" {
		// The centre's bucket sets the history and writes the expiry
		// markers; the mirror copies them.
		want.Description = "callflow number-masking sessions, mirrored from JetStream domain " + cfg.MirrorDomain
		want.LimitMarkerTTL = 0
		want.Mirror = &jetstream.StreamSource{Name: cfg.Bucket, Domain: cfg.MirrorDomain}
	}
	for attempt := 0; ; attempt++ {
		var kv jetstream.KeyValue
		err := broker.Setup(ctx, cfg.Logger, "look up bucket "+cfg.Bucket, func(ctx context.Context) (err error) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
			return err
		})
		if err == nil {
			return kv, checkBucket(ctx, kv, want, cfg.Logger)
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("look up bucket %s: %w", cfg.Bucket, err)
		}
		err = broker.Setup(ctx, cfg.Logger, "create bucket "+cfg.Bucket, func(ctx context.Context) (err error) {
			kv, err = js.CreateKeyValue(ctx, want)
			return err
		})
		if err == nil {
			cfg.Logger.Info("created session bucket", "bucket", cfg.Bucket, "replicas", cfg.Replicas)
			return kv, nil
		}
		// Another role may have created it in between: look again, once.
		if attempt > 0 {
			return nil, fmt.Errorf("create bucket %s: %w", cfg.Bucket, err)
		}
	}
}

// checkBucket logs where an existing bucket differs from what this role
// would have created, and leaves it as it is: an operator may have set it
// up that way on purpose. A bucket that is a mirror where this role writes
// to its own, or the other way round, is an error: the regions' copies of
// the sessions would part ways unnoticed.
func checkBucket(ctx context.Context, kv jetstream.KeyValue, want jetstream.KeyValueConfig, log *slog.Logger) error {
	st, err := kv.Status(ctx)
	if err != nil {
		log.Warn("cannot read session bucket status", "bucket", want.Bucket, "error", err)
		return nil
	}
	cfg, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return nil
	}
	have := cfg.StreamInfo().Config
	switch mirror := have.Mirror; {
	case want.Mirror != nil && mirror == nil:
		return fmt.Errorf("%w: session bucket %s exists here and is not a mirror of domain %s's: remove it (nats kv del %s) so that it is created as one, or leave out the mirror domain", ErrInvalidConfig, want.Bucket, want.Mirror.Domain, want.Bucket)
	case want.Mirror == nil && mirror != nil:
		return fmt.Errorf("%w: session bucket %s is a mirror (of %s), which this role cannot write to: give it the mirror's domain", ErrInvalidConfig, want.Bucket, mirror.Name)
	case want.Mirror == nil && st.LimitMarkerTTL() == 0:
		log.Warn("session bucket has no limit marker TTL: sessions with a ttlSeconds cannot be created", "bucket", want.Bucket)
	}
	if have.Replicas != want.Replicas {
		log.Warn("session bucket exists with other settings; leaving it as it is", "bucket", want.Bucket, "replicas", have.Replicas, "configured_replicas", want.Replicas)
	}
	return nil
}

// watch applies the bucket's changes to the index until ctx ends.
//
// After NATS reconnects (a server restart, a move to another node), the
// watcher's ordered consumer would notice only after two missed 5s
// heartbeats, and sessions created meanwhile would be routed out of
// session: so a new watcher is started at once, from the revision after the
// last one seen (the bucket keeps the latest operation of each key,
// deletes included, so nothing in between is missed).
func (s *Store) watch(ctx context.Context, w jetstream.KeyWatcher, nc *nats.Conn, reconnected chan nats.Status) {
	defer close(s.done)
	defer nc.RemoveStatusListener(reconnected)
	// Stopping deletes the watcher's consumer through the JetStream API,
	// which waits for its timeout when NATS is down: not on Close's path.
	defer func() { go func(w jetstream.KeyWatcher) { _ = w.Stop() }(w) }()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	syncedOnce := sync.OnceFunc(func() { close(s.synced) })
	var last uint64 // revision of the last change applied
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-prune.C:
			s.idx.prune(now, s.cfg.History)
		case <-reconnected:
			var opts []jetstream.WatchOpt
			if last > 0 {
				opts = append(opts, jetstream.ResumeFromRevision(last+1))
			}
			nw, err := s.kv.WatchFiltered(ctx, watched(), opts...)
			if err != nil {
				// The old watcher recovers by itself, later.
				s.log.Warn("session watch not restarted after a reconnect", "error", err)
				continue
			}
			go func(w jetstream.KeyWatcher) { _ = w.Stop() }(w)
			w = nw
			s.log.Info("session watch restarted after a NATS reconnect", "from_revision", last+1)
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // end of the initial snapshot (or of a resume's catch-up)
				syncedOnce()
				continue
			}
			if e.Revision() > last {
				last = e.Revision()
			}
			s.apply(e)
		}
	}
}

// watched returns the keys the index holds: sessions, numbers,
// sub-accounts, flows and their retained versions (not the route and pin
// keys, which only arbitrate creates). A new slice each time:
// WatchFiltered rewrites the one it is given.
func watched() []string { return []string{"s.*", "n.*", "a.*", "f.*", "fv.*.*"} }

func (s *Store) apply(e jetstream.KeyValueEntry) {
	key, rev := e.Key(), e.Revision()
	del := e.Operation() != jetstream.KeyValuePut
	var err error
	switch {
	case strings.HasPrefix(key, "s."):
		id := key[len("s."):]
		if del {
			s.idx.removeSession(id, rev)
			return
		}
		if _, held, ok := s.idx.session(id); ok && rev != 0 && rev <= held {
			return // this process wrote it, and the index already has it
		}
		var v Session
		if err = json.Unmarshal(e.Value(), &v); err == nil && v.ID == id {
			s.idx.putSession(normalized(v), rev)
			return
		}
	case strings.HasPrefix(key, "n."):
		if del {
			s.idx.removeNumber("+"+key[len("n."):], rev)
			return
		}
		var v Number
		if err = json.Unmarshal(e.Value(), &v); err == nil && numberKey(v.Number) == key {
			s.idx.putNumber(&v, rev)
			return
		}
	case strings.HasPrefix(key, "a."):
		if del {
			// A delete marker has no value: the id is in the key.
			if id, derr := base64.RawURLEncoding.DecodeString(key[len("a."):]); derr == nil {
				s.idx.removeAccount(string(id), rev)
			}
			return
		}
		var v SubAccount
		if err = json.Unmarshal(e.Value(), &v); err == nil && subAccountKey(v.SubAccountID) == key {
			s.idx.putAccount(&v, rev)
			return
		}
	case strings.HasPrefix(key, "f."), strings.HasPrefix(key, "fv."):
		if err = s.applyFlow(e); err == nil {
			return
		}
	}
	s.log.Warn("ignoring unreadable entry in the session bucket", "key", key, "revision", rev, "error", err)
}

// normalized fills what sessions stored by older versions lack.
func normalized(v Session) *Session {
	v.fill()
	return &v
}
