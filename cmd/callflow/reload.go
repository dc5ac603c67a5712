package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/callflow/callflow/internal/node"
)

// secretUses says, for each secret SIGHUP reads again from its -file, when
// a new value applies (for the log). The admin tokens and the webhook's
// values are swapped in the running listeners; the NATS and ClickHouse
// passwords are read by the next connection (secretSetting.live).
var secretUses = map[string]string{
	"admin-token":         "from the next /v1/ request",
	"webhook-auth":        "from the next webhook",
	"nats-password":       "at the next NATS connect or reconnect; the connection open now stays",
	"nats-token":          "at the next NATS connect or reconnect; the connection open now stays",
	"clickhouse-password": "to the next ClickHouse connection the pool opens; connections open now stay (for at most an hour)",
}

// liveSecrets makes the NATS and ClickHouse connections of cfg read their
// passwords and token from the secrets given as files at each connection,
// so that reloadSecrets rotates them.
func (o *options) liveSecrets(cfg *node.Config) {
	if s := o.fromFile("nats-password"); s != nil {
		cfg.Conn.PasswordFunc = s.live.Load
	}
	if s := o.fromFile("nats-token"); s != nil {
		cfg.Conn.TokenFunc = s.live.Load
	}
	if s := o.fromFile("clickhouse-password"); s != nil {
		cfg.Archiver.ClickHouse.PasswordFunc = s.live.Load
		if cfg.History != nil {
			cfg.History.PasswordFunc = s.live.Load
		}
	}
}

// fromFile returns the secret setting called name when it is read from a
// file, else nil.
func (o *options) fromFile(name string) *secretSetting {
	if s := o.secret(name); s != nil && s.file != "" {
		return s
	}
	return nil
}

// secretTarget is what a reloaded secret changes in the running node.
type secretTarget interface {
	SetAdminTokens(values []string) error
	SetWebhookAuth(values []string) error
}

// reloadSecrets reads every secret given as a file again (on SIGHUP) and
// applies each that changed. A secret that cannot be read, is a
// placeholder or is refused keeps its value in use; the error is logged
// (never the secret) and returned with the others.
func (o *options) reloadSecrets(n secretTarget, log *slog.Logger) error {
	var errs []error
	for _, s := range o.secrets {
		if s.file == "" {
			continue
		}
		changed, err := s.reload(n)
		switch {
		case err != nil:
			log.Error("secret not reloaded; the previous value stays in use", "setting", s.name, "file", s.file, "error", err)
			errs = append(errs, err)
		case changed:
			log.Info("secret reloaded", "setting", s.name, "file", s.file, "applies", secretUses[s.name])
		default:
			log.Debug("secret unchanged", "setting", s.name, "file", s.file)
		}
	}
	return errors.Join(errs...)
}

// reload reads the secret's file again and applies the value when it
// changed.
func (s *secretSetting) reload(n secretTarget) (changed bool, err error) {
	v, err := s.readFile()
	if err != nil {
		return false, err
	}
	if err := s.check(v); err != nil {
		return false, err
	}
	if v == s.live.Load() {
		return false, nil
	}
	switch s.name {
	case "admin-token":
		err = n.SetAdminTokens(list(v))
	case "webhook-auth":
		err = n.SetWebhookAuth(list(v))
	}
	if err != nil {
		return false, fmt.Errorf("--%s-file: %w", s.name, err)
	}
	s.live.Store(v)
	return true, nil
}
