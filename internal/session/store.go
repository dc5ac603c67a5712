package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

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
	// Logger receives the store's notable events.
	Logger *slog.Logger
}

// Defaults for Config.
const (
	DefaultBucket      = "callflow_sessions"
	DefaultMarkerTTL   = time.Hour
	DefaultSyncTimeout = 30 * time.Second
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
	}
	return nil
}

// Store reads and writes sessions in the bucket and keeps a watched,
// in-memory index of the open ones for routing.
type Store struct {
	cfg    Config
	kv     jetstream.KeyValue
	log    *slog.Logger
	idx    *index
	cancel context.CancelFunc
	done   chan struct{}
	synced chan struct{}
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
		cfg: cfg, kv: kv, log: cfg.Logger, idx: newIndex(),
		cancel: cancel, done: make(chan struct{}), synced: make(chan struct{}),
	}
	// Registered before the watch starts, so that no reconnect is missed.
	reconnected := js.Conn().StatusChanged(nats.CONNECTED)
	w, err := kv.Watch(wctx, "s.*")
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
		s.log.Info("session index loaded", "bucket", cfg.Bucket, "sessions", s.idx.len())
		return s, nil
	case <-sctx.Done():
		s.Close()
		return nil, fmt.Errorf("load sessions from bucket %s: %w", cfg.Bucket, sctx.Err())
	}
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
	for attempt := 0; ; attempt++ {
		kv, err := js.KeyValue(ctx, cfg.Bucket)
		if err == nil {
			reportBucketDrift(ctx, kv, want, cfg.Logger)
			return kv, nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("look up bucket %s: %w", cfg.Bucket, err)
		}
		kv, err = js.CreateKeyValue(ctx, want)
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

// reportBucketDrift logs where an existing bucket differs from what this
// role would have created. It never changes the bucket: an operator may
// have set it up that way on purpose.
func reportBucketDrift(ctx context.Context, kv jetstream.KeyValue, want jetstream.KeyValueConfig, log *slog.Logger) {
	st, err := kv.Status(ctx)
	if err != nil {
		log.Warn("cannot read session bucket status", "bucket", want.Bucket, "error", err)
		return
	}
	if st.LimitMarkerTTL() == 0 {
		log.Warn("session bucket has no limit marker TTL: sessions with a ttlSeconds cannot be created", "bucket", want.Bucket)
	}
	if cfg, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		if r := cfg.StreamInfo().Config.Replicas; r != want.Replicas {
			log.Warn("session bucket exists with other settings; leaving it as it is", "bucket", want.Bucket, "replicas", r, "configured_replicas", want.Replicas)
		}
	}
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
			s.idx.prune(now)
		case <-reconnected:
			var opts []jetstream.WatchOpt
			if last > 0 {
				opts = append(opts, jetstream.ResumeFromRevision(last+1))
			}
			nw, err := s.kv.Watch(ctx, "s.*", opts...)
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

func (s *Store) apply(e jetstream.KeyValueEntry) {
	id := e.Key()[len("s."):]
	if e.Operation() != jetstream.KeyValuePut {
		s.idx.remove(id)
		return
	}
	var sess Session
	if err := json.Unmarshal(e.Value(), &sess); err != nil || sess.ID != id {
		s.log.Warn("ignoring unreadable session in bucket", "key", e.Key(), "revision", e.Revision(), "error", err)
		return
	}
	s.idx.put(&sess)
}

// Close stops watching the bucket.
func (s *Store) Close() {
	s.cancel()
	<-s.done
}

// Lookup returns the open session on virtual (as +digits) that has caller
// (as +digits) as a participant, from the in-memory index.
func (s *Store) Lookup(virtual, caller string, now time.Time) (*Session, bool) {
	return s.idx.lookup(virtual, caller, now)
}

// List returns the open sessions on a virtual number, from the index.
func (s *Store) List(virtual string, now time.Time) []Session {
	return s.idx.list(virtual, now)
}

// Len returns the number of sessions in the index.
func (s *Store) Len() int { return s.idx.len() }

// Check reports whether the bucket is reachable, for readiness probes.
func (s *Store) Check(ctx context.Context) error {
	if _, err := s.kv.Status(ctx); err != nil {
		return fmt.Errorf("session bucket %s: %w", s.cfg.Bucket, err)
	}
	return nil
}

// Create validates req and stores the session it describes. It returns
// ErrInvalid (wrapped, naming the field) for a bad request and ErrConflict
// when a participant already has an open session on the virtual number.
func (s *Store) Create(ctx context.Context, req Request) (Session, error) {
	sess, err := req.build(time.Now())
	if err != nil {
		return Session{}, err
	}
	data, err := json.Marshal(&sess)
	if err != nil {
		return Session{}, fmt.Errorf("encode session: %w", err)
	}
	var opts []jetstream.KVCreateOpt
	if sess.TTLSeconds > 0 {
		opts = append(opts, jetstream.KeyTTL(time.Duration(sess.TTLSeconds)*time.Second))
	}
	// Claimed in sorted order, so that two creates of the same pair given
	// in opposite orders cannot each hold one key and both lose.
	parts := sess.Participants
	slices.Sort(parts[:])
	var claimed []string
	for _, p := range parts {
		key := routeKey(sess.VirtualNumber, p)
		if err := s.claim(ctx, key, sess.ID, opts); err != nil {
			s.release(claimed)
			return Session{}, err
		}
		claimed = append(claimed, key)
	}
	if _, err := s.kv.Create(ctx, sessionKey(sess.ID), data, opts...); err != nil {
		s.release(claimed)
		return Session{}, fmt.Errorf("store session: %w", err)
	}
	s.idx.put(&sess)
	return sess, nil
}

// claim creates the route key for one participant. A key left behind by an
// interrupted create or delete (its session gone, the key older than
// claimGrace) is taken over.
func (s *Store) claim(ctx context.Context, key, id string, opts []jetstream.KVCreateOpt) error {
	for attempt := 0; attempt < 3; attempt++ {
		_, err := s.kv.Create(ctx, key, []byte(id), opts...)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("claim %s: %w", key, err)
		}
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return fmt.Errorf("claim %s: %w", key, err)
		}
		holder := string(e.Value())
		if _, err := s.Get(ctx, holder); err == nil {
			return fmt.Errorf("%w (session %s)", ErrConflict, holder)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if time.Since(e.Created()) < claimGrace {
			return fmt.Errorf("%w (session %s is being created)", ErrConflict, holder)
		}
		s.log.Info("taking over a leftover route key", "key", key, "holder", holder)
		if err := s.purge(ctx, key, jetstream.LastRevision(e.Revision())); err != nil &&
			!errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("claim %s: %w", key, err)
		}
	}
	return fmt.Errorf("%w (route %s is contended)", ErrConflict, key)
}

// release removes route keys of a create that failed. Errors are logged:
// a leftover key is taken over by the next create after claimGrace.
func (s *Store) release(keys []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, k := range keys {
		if err := s.purge(ctx, k); err != nil {
			s.log.Warn("cannot release route key", "key", k, "error", err)
		}
	}
}

// purge removes a key, leaving a marker that expires after MarkerTTL so
// that markers do not pile up in the bucket.
func (s *Store) purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	err := s.kv.Purge(ctx, key, append(opts, jetstream.PurgeTTL(s.cfg.MarkerTTL))...)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return err
	}
	if err != nil {
		// A bucket made without marker TTLs refuses PurgeTTL.
		err = s.kv.Purge(ctx, key, opts...)
	}
	return err
}

// Get reads a session from the bucket (not the index, so that a session just
// created elsewhere is found). An expired session is ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Session, error) {
	if !ValidID(id) {
		return Session{}, ErrNotFound
	}
	e, err := s.kv.Get(ctx, sessionKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("read session %s: %w", id, err)
	}
	var sess Session
	if err := json.Unmarshal(e.Value(), &sess); err != nil {
		return Session{}, fmt.Errorf("decode session %s: %w", id, err)
	}
	if !sess.Open(time.Now()) {
		return Session{}, ErrNotFound
	}
	return sess, nil
}

// Delete ends a session: calls stop being routed at once, then its route
// keys are released.
func (s *Store) Delete(ctx context.Context, id string) (Session, error) {
	sess, err := s.Get(ctx, id)
	if err != nil {
		return Session{}, err
	}
	if err := s.purge(ctx, sessionKey(id)); err != nil {
		return Session{}, fmt.Errorf("delete session %s: %w", id, err)
	}
	s.idx.remove(id)
	for _, p := range sess.Participants {
		key := routeKey(sess.VirtualNumber, p)
		e, err := s.kv.Get(ctx, key)
		if err != nil || string(e.Value()) != id {
			continue // already gone, or taken by a newer session
		}
		if err := s.purge(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
			s.log.Warn("cannot release route key", "key", key, "error", err)
		}
	}
	return sess, nil
}
