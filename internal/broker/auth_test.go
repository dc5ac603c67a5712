package broker

// Connections to NATS walked as an attacker (or a misconfigured role)
// would: the right credentials of each kind connect; missing or wrong ones,
// an untrusted server certificate or a missing client certificate are
// refused, promptly and without the secret in the error; contradictory
// settings are refused before any connection is attempted.

import (
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/testcert"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// authPKI is a throwaway certificate authority with its files on disk.
type authPKI struct {
	testcert.Pair
	dir    string
	caFile string
}

func newAuthPKI(t *testing.T, name string) *authPKI {
	t.Helper()
	p := &authPKI{Pair: testcert.NewCA(t, name), dir: t.TempDir()}
	p.caFile = filepath.Join(p.dir, "ca.pem")
	p.WriteCert(t, p.caFile)
	return p
}

// pair issues a leaf for usage and writes it and its key; it returns the
// file names.
func (p *authPKI) pair(t *testing.T, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	return p.Issue(t, name, usage).WriteIn(t, p.dir, name)
}

func authFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// connectWithin runs Connect and fails the test if it does not return
// within a generous bound: a refused connection must not hang a role's
// start-up.
func connectWithin(t *testing.T, cfg ConnConfig) (*nats.Conn, error) {
	t.Helper()
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := Connect(cfg)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.nc != nil {
			t.Cleanup(r.nc.Close)
		}
		return r.nc, r.err
	case <-time.After(20 * time.Second):
		t.Fatalf("Connect did not return within 20s")
		return nil, nil
	}
}

// credRow is one connection attempt and its expected outcome.
type credRow struct {
	name string
	cfg  ConnConfig
	// ok: the connection is made and usable. Otherwise authErr says the
	// server refused it as an authorization violation.
	ok, authErr bool
	// secret must not appear in the error.
	secret string
}

func runCredRows(t *testing.T, ns *server.Server, rows []credRow) {
	t.Helper()
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			cfg := r.cfg
			if cfg.URLs == "" {
				cfg.URLs = ns.ClientURL()
			}
			cfg.Name = "auth-test"
			nc, err := connectWithin(t, cfg)
			if r.ok {
				if err != nil {
					t.Fatalf("Connect: %v", err)
				}
				// Usable: a request round trip through the server.
				sub, err := nc.Subscribe("auth.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Unsubscribe()
				if m, err := nc.Request("auth.echo", []byte("ping"), 5*time.Second); err != nil || string(m.Data) != "ping" {
					t.Fatalf("request over the connection: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Connect succeeded, want a refusal")
			}
			if r.authErr && !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("error %v, want an authorization violation", err)
			}
			if r.secret != "" && strings.Contains(err.Error(), r.secret) {
				t.Errorf("the error holds the secret: %v", err)
			}
		})
	}
}

// TestConnectUserPassword proves user/password authentication: the right
// pair connects; a wrong password, a wrong user, no credentials or
// another kind of credentials are refused as authorization violations,
// without the password in the error.
func TestConnectUserPassword(t *testing.T) {
	opts := natstest.Options(t.TempDir())
	opts.Username, opts.Password = "callflow", "s3cret-pa55word-for-nats"
	ns := natstest.RunServerWith(t, opts)
	runCredRows(t, ns, []credRow{
		{name: "right user and password", cfg: ConnConfig{User: "callflow", Password: "s3cret-pa55word-for-nats"}, ok: true},
		{name: "wrong password", cfg: ConnConfig{User: "callflow", Password: "guess-pa55"}, authErr: true, secret: "guess-pa55"},
		{name: "password of another case", cfg: ConnConfig{User: "callflow", Password: "S3CRET-PA55WORD-FOR-NATS"}, authErr: true, secret: "S3CRET-PA55WORD-FOR-NATS"},
		{name: "wrong user", cfg: ConnConfig{User: "admin", Password: "s3cret-pa55word-for-nats"}, authErr: true, secret: "s3cret-pa55word-for-nats"},
		{name: "user without password", cfg: ConnConfig{User: "callflow"}, authErr: true},
		{name: "no credentials", cfg: ConnConfig{}, authErr: true},
		{name: "a token instead", cfg: ConnConfig{Token: "s3cret-pa55word-for-nats"}, authErr: true, secret: "s3cret-pa55word-for-nats"},
		{name: "credentials in the URL are still checked", cfg: ConnConfig{URLs: strings.Replace(ns.ClientURL(), "nats://", "nats://callflow:nope@", 1)}, authErr: true, secret: "nope"},
	})
}

// TestConnectToken proves token authentication: the right token connects;
// a wrong, truncated or missing token, or a user/password, is refused as
// an authorization violation, without the token in the error.
func TestConnectToken(t *testing.T) {
	const token = "tok-0a8f3e9b7c6d5e4f"
	opts := natstest.Options(t.TempDir())
	opts.Authorization = token
	ns := natstest.RunServerWith(t, opts)
	runCredRows(t, ns, []credRow{
		{name: "right token", cfg: ConnConfig{Token: token}, ok: true},
		{name: "wrong token", cfg: ConnConfig{Token: "tok-guess"}, authErr: true, secret: "tok-guess"},
		{name: "truncated token", cfg: ConnConfig{Token: token[:len(token)-1]}, authErr: true, secret: token[:len(token)-1]},
		{name: "no token", cfg: ConnConfig{}, authErr: true},
		{name: "token as a user name", cfg: ConnConfig{User: token, Password: "x"}, authErr: true},
	})
}

// TestConnectNKey proves NKey authentication: the seed of a known user,
// read from a file, connects (the seed never travels: the server's nonce
// is signed); the seed of another user is refused as an authorization
// violation; a missing or unreadable seed file is an error before any
// connection.
func TestConnectNKey(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	stranger, _ := nkeys.CreateUser()
	strangerSeed, _ := stranger.Seed()
	account, _ := nkeys.CreateAccount()
	accountSeed, _ := account.Seed()

	opts := natstest.Options(t.TempDir())
	opts.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	ns := natstest.RunServerWith(t, opts)
	runCredRows(t, ns, []credRow{
		{name: "seed of the known user", cfg: ConnConfig{NKeyFile: authFile(t, "user.nk", seed)}, ok: true},
		{name: "seed with surrounding text", cfg: ConnConfig{NKeyFile: authFile(t, "user-comment.nk", append(append([]byte("# callflow ingest\n"), seed...), '\n'))}, ok: true},
		{name: "seed of another user", cfg: ConnConfig{NKeyFile: authFile(t, "stranger.nk", strangerSeed)}, authErr: true, secret: string(strangerSeed)},
		{name: "seed of an account, not a user", cfg: ConnConfig{NKeyFile: authFile(t, "account.nk", accountSeed)}, secret: string(accountSeed)},
		{name: "no credentials", cfg: ConnConfig{}, authErr: true},
		{name: "missing seed file", cfg: ConnConfig{NKeyFile: filepath.Join(t.TempDir(), "none.nk")}},
		{name: "garbage seed file", cfg: ConnConfig{NKeyFile: authFile(t, "garbage.nk", []byte("SUnot-a-seed"))}},
		{name: "the public key instead of the seed", cfg: ConnConfig{NKeyFile: authFile(t, "pub.nk", []byte(pub))}},
	})
}

// TestConnectCreds proves .creds authentication (operator mode, as nsc
// sets it up): a user JWT signed by a known account with its seed
// connects; a user of an account the server does not know, an expired
// JWT, a missing or corrupt creds file are refused.
func TestConnectCreds(t *testing.T) {
	operator, _ := nkeys.CreateOperator()
	opub, _ := operator.PublicKey()
	oclaims := jwt.NewOperatorClaims(opub)
	ojwt, err := oclaims.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	oc, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	account, _ := nkeys.CreateAccount()
	apub, _ := account.PublicKey()
	ajwt, err := jwt.NewAccountClaims(apub).Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	// creds signs a user JWT with signer and formats a .creds file.
	creds := func(signer nkeys.KeyPair, expires time.Time) []byte {
		u, _ := nkeys.CreateUser()
		upub, _ := u.PublicKey()
		useed, _ := u.Seed()
		uc := jwt.NewUserClaims(upub)
		if !expires.IsZero() {
			uc.Expires = expires.Unix()
		}
		ujwt, err := uc.Encode(signer)
		if err != nil {
			t.Fatal(err)
		}
		b, err := jwt.FormatUserConfig(ujwt, useed)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	unknown, _ := nkeys.CreateAccount()

	opts := natstest.Options(t.TempDir())
	opts.JetStream = false // JetStream in operator mode needs account limits; not what is tested here
	opts.TrustedOperators = []*jwt.OperatorClaims{oc}
	res := &server.MemAccResolver{}
	if err := res.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}
	opts.AccountResolver = res
	ns := natstest.RunServerWith(t, opts)
	runCredRows(t, ns, []credRow{
		{name: "user of a known account", cfg: ConnConfig{CredsFile: authFile(t, "user.creds", creds(account, time.Time{}))}, ok: true},
		{name: "user of an unknown account", cfg: ConnConfig{CredsFile: authFile(t, "unknown.creds", creds(unknown, time.Time{}))}, authErr: true},
		{name: "expired user JWT", cfg: ConnConfig{CredsFile: authFile(t, "expired.creds", creds(account, time.Now().Add(-time.Minute)))}},
		{name: "no credentials", cfg: ConnConfig{}, authErr: true},
		{name: "missing creds file", cfg: ConnConfig{CredsFile: filepath.Join(t.TempDir(), "none.creds")}},
		{name: "corrupt creds file", cfg: ConnConfig{CredsFile: authFile(t, "corrupt.creds", []byte("-----BEGIN NATS USER JWT-----\nnot a jwt\n------END NATS USER JWT------\n"))}},
	})
}

// TestConnectTLS proves TLS to NATS: with the CA file that signed the
// server's certificate the connection is made (also with a tls:// URL and
// with credentials on top); without it (system roots) or with another CA
// it is refused. When the server verifies client certificates, a client
// certificate signed by its CA connects, and none, or a self-signed one,
// is refused.
func TestConnectTLS(t *testing.T) {
	ca := newAuthPKI(t, "callflow test CA")
	other := newAuthPKI(t, "another CA")
	serverCert, serverKey := ca.pair(t, "nats-server", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.pair(t, "callflow-client", x509.ExtKeyUsageClientAuth)
	rogueCert, rogueKey := other.pair(t, "rogue-client", x509.ExtKeyUsageClientAuth)
	selfFile, selfKey := testcert.SelfSigned(t, "self-signed-client", x509.ExtKeyUsageClientAuth).WriteIn(t, t.TempDir(), "self")

	tlsServer := func(t *testing.T, verify bool, user, pass string) *server.Server {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: serverCert, KeyFile: serverKey, CaFile: ca.caFile, Verify: verify})
		if err != nil {
			t.Fatal(err)
		}
		opts := natstest.Options(t.TempDir())
		opts.TLS, opts.TLSVerify, opts.TLSConfig, opts.TLSTimeout = true, verify, tc, 5
		opts.Username, opts.Password = user, pass
		return natstest.RunServerWith(t, opts)
	}
	t.Run("server certificate", func(t *testing.T) {
		ns := tlsServer(t, false, "", "")
		runCredRows(t, ns, []credRow{
			{name: "with the CA", cfg: ConnConfig{TLSCAFile: ca.caFile}, ok: true},
			{name: "with the CA and a tls:// URL", cfg: ConnConfig{URLs: strings.Replace(ns.ClientURL(), "nats://", "tls://", 1), TLSCAFile: ca.caFile}, ok: true},
			{name: "without a CA (system roots)", cfg: ConnConfig{}},
			{name: "with another CA", cfg: ConnConfig{TLSCAFile: other.caFile}},
			{name: "with a CA file that is not PEM", cfg: ConnConfig{TLSCAFile: authFile(t, "bad-ca.pem", []byte("garbage"))}},
			{name: "with a missing CA file", cfg: ConnConfig{TLSCAFile: filepath.Join(t.TempDir(), "none.pem")}},
		})
	})
	t.Run("client certificates verified", func(t *testing.T) {
		ns := tlsServer(t, true, "", "")
		runCredRows(t, ns, []credRow{
			{name: "client certificate from the CA", cfg: ConnConfig{TLSCAFile: ca.caFile, TLSCertFile: clientCert, TLSKeyFile: clientKey}, ok: true},
			{name: "no client certificate", cfg: ConnConfig{TLSCAFile: ca.caFile}},
			{name: "client certificate from another CA", cfg: ConnConfig{TLSCAFile: ca.caFile, TLSCertFile: rogueCert, TLSKeyFile: rogueKey}},
			{name: "self-signed client certificate", cfg: ConnConfig{TLSCAFile: ca.caFile, TLSCertFile: selfFile, TLSKeyFile: selfKey}},
			{name: "client certificate with the wrong key", cfg: ConnConfig{TLSCAFile: ca.caFile, TLSCertFile: clientCert, TLSKeyFile: rogueKey}},
		})
	})
	t.Run("TLS and a password", func(t *testing.T) {
		ns := tlsServer(t, false, "callflow", "tls-and-pass-9e8d")
		runCredRows(t, ns, []credRow{
			{name: "both", cfg: ConnConfig{TLSCAFile: ca.caFile, User: "callflow", Password: "tls-and-pass-9e8d"}, ok: true},
			{name: "TLS without the password", cfg: ConnConfig{TLSCAFile: ca.caFile}, authErr: true},
			{name: "the password without TLS trust", cfg: ConnConfig{User: "callflow", Password: "tls-and-pass-9e8d"}, secret: "tls-and-pass-9e8d"},
		})
	})
}

// TestConnConfigValidate proves that contradictory settings are refused
// with ErrInvalidConfig before any connection is attempted: two kinds of
// credentials at once, a password without its user, and a client
// certificate without its key (or the reverse).
func TestConnConfigValidate(t *testing.T) {
	// Nothing listens here: a Connect that got past Validate would fail
	// with another error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + ln.Addr().String()
	ln.Close()
	cases := []struct {
		name    string
		cfg     ConnConfig
		wantErr bool
	}{
		{"nothing", ConnConfig{}, false},
		{"user and password", ConnConfig{User: "u", Password: "p"}, false},
		{"token", ConnConfig{Token: "t"}, false},
		{"nkey", ConnConfig{NKeyFile: "seed.nk"}, false},
		{"creds", ConnConfig{CredsFile: "user.creds"}, false},
		{"TLS pair and CA", ConnConfig{TLSCAFile: "ca.pem", TLSCertFile: "c.pem", TLSKeyFile: "k.pem"}, false},
		{"user and token", ConnConfig{User: "u", Password: "p", Token: "t"}, true},
		{"token and nkey", ConnConfig{Token: "t", NKeyFile: "seed.nk"}, true},
		{"nkey and creds", ConnConfig{NKeyFile: "seed.nk", CredsFile: "user.creds"}, true},
		{"user and creds", ConnConfig{User: "u", CredsFile: "user.creds"}, true},
		{"password and token", ConnConfig{Password: "p", Token: "t"}, true},
		{"all four", ConnConfig{User: "u", Password: "p", Token: "t", NKeyFile: "n", CredsFile: "c"}, true},
		{"password without user", ConnConfig{Password: "p"}, true},
		{"certificate without key", ConnConfig{TLSCertFile: "c.pem"}, true},
		{"key without certificate", ConnConfig{TLSKeyFile: "k.pem"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if (err != nil) != c.wantErr || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("Validate() = %v, want error %v (ErrInvalidConfig)", err, c.wantErr)
			}
			if !c.wantErr {
				return
			}
			cfg := c.cfg
			cfg.URLs = url
			if _, err := connectWithin(t, cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Connect = %v, want ErrInvalidConfig before dialing", err)
			}
			for _, secret := range []string{c.cfg.Password, c.cfg.Token} {
				if secret != "" && len(secret) > 2 && strings.Contains(err.Error(), secret) {
					t.Errorf("the error holds a secret: %v", err)
				}
			}
		})
	}
}
