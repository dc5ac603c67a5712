// Package testcert makes throwaway certificates for tests and writes them
// as PEM files: a certificate authority, the leaves it signs, and
// self-signed leaves. Every certificate has an ECDSA P-256 key, is valid
// for 127.0.0.1 and localhost, and from an hour ago to an hour from now.
// Failures end the test.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Pair is a certificate and its private key.
type Pair struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA makes a self-signed certificate authority named name, to Issue
// leaves with.
func NewCA(t testing.TB, name string) Pair {
	t.Helper()
	return create(t, name, nil, true, 0)
}

// SelfSigned makes a self-signed leaf named name for usage (a server
// certificate a client can trust by adding it to its roots, or a client
// certificate no authority vouches for).
func SelfSigned(t testing.TB, name string, usage x509.ExtKeyUsage) Pair {
	t.Helper()
	return create(t, name, nil, false, usage)
}

// Issue makes a leaf named name for usage, signed by p, a certificate
// authority from NewCA.
func (p Pair) Issue(t testing.TB, name string, usage x509.ExtKeyUsage) Pair {
	t.Helper()
	return create(t, name, &p, false, usage)
}

// Write writes the certificate to certFile and the key (PKCS #8) to
// keyFile, both PEM, replacing what they held.
func (p Pair) Write(t testing.TB, certFile, keyFile string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(p.Key)
	if err != nil {
		t.Fatalf("testcert: marshal the key of %q: %v", p.Cert.Subject.CommonName, err)
	}
	p.WriteCert(t, certFile)
	writePEM(t, keyFile, "PRIVATE KEY", der)
}

// WriteIn writes the certificate and key into dir as name.pem and
// name-key.pem (see Write), and returns their paths.
func (p Pair) WriteIn(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	p.Write(t, certFile, keyFile)
	return certFile, keyFile
}

// WriteCert writes the certificate alone to file, PEM (for a certificate
// authority: the file clients trust).
func (p Pair) WriteCert(t testing.TB, file string) {
	t.Helper()
	writePEM(t, file, "CERTIFICATE", p.Cert.Raw)
}

// create makes a certificate named name, signed by parent or self-signed
// when parent is nil: a certificate authority, or a leaf for usage.
func create(t testing.TB, name string, parent *Pair, isCA bool, usage x509.ExtKeyUsage) Pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testcert: generate a key for %q: %v", name, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("testcert: serial number for %q: %v", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	if isCA {
		tmpl.IsCA = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatalf("testcert: create %q: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testcert: parse %q: %v", name, err)
	}
	return Pair{Cert: cert, Key: key}
}

func writePEM(t testing.TB, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("testcert: %v", err)
	}
}
