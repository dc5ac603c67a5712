package testcert

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// TestIssued: a leaf the authority issued verifies against it for its
// usage and not for another, and its files load as a key pair.
func TestIssued(t *testing.T) {
	ca := NewCA(t, "test CA")
	if !ca.Cert.IsCA {
		t.Fatal("the authority is not a CA")
	}
	leaf := ca.Issue(t, "server", x509.ExtKeyUsageServerAuth)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, name := range []string{"127.0.0.1", "localhost"} {
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a server certificate verifies as a client certificate")
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: x509.NewCertPool()}); err == nil {
		t.Error("the leaf verifies without its authority")
	}

	dir := t.TempDir()
	certFile, keyFile := leaf.WriteIn(t, dir, "server")
	if certFile != filepath.Join(dir, "server.pem") || keyFile != filepath.Join(dir, "server-key.pem") {
		t.Errorf("files %s %s", certFile, keyFile)
	}
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !kp.Leaf.Equal(leaf.Cert) {
		t.Error("the file holds another certificate")
	}

	// Write replaces the files.
	other := ca.Issue(t, "other", x509.ExtKeyUsageServerAuth)
	other.Write(t, certFile, keyFile)
	if kp, err = tls.LoadX509KeyPair(certFile, keyFile); err != nil || !kp.Leaf.Equal(other.Cert) {
		t.Errorf("after Write: %v", err)
	}
}

// TestSelfSigned: a self-signed leaf verifies when trusted itself, not
// otherwise; a CA file written with WriteCert holds the certificate.
func TestSelfSigned(t *testing.T) {
	p := SelfSigned(t, "self", x509.ExtKeyUsageServerAuth)
	if p.Cert.IsCA {
		t.Error("a self-signed leaf is a CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.Cert)
	if _, err := p.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("verify trusting itself: %v", err)
	}
	if _, err := p.Cert.Verify(x509.VerifyOptions{Roots: x509.NewCertPool()}); err == nil {
		t.Error("verifies without being trusted")
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	p.WriteCert(t, file)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("CA file %q", b)
	}
	if c, err := x509.ParseCertificate(block.Bytes); err != nil || !c.Equal(p.Cert) {
		t.Errorf("CA file holds another certificate: %v", err)
	}
}
