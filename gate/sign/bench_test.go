package sign_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/agentgate/agentgate/gate/sign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// BenchmarkSignVerify measures raw ECDSA P-256 signing and verification of
// a 1 KiB message through the sigstore signer (SHA-256 included).
func BenchmarkSignVerify(b *testing.B) {
	dir := b.TempDir()
	priv, pub, err := sign.Generate(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	s, err := sign.Load(context.Background(), priv, cryptoutils.SkipPassword)
	if err != nil {
		b.Fatal(err)
	}
	v, err := sign.LoadVerifier(context.Background(), pub)
	if err != nil {
		b.Fatal(err)
	}
	msg := bytes.Repeat([]byte("a"), 1024)
	sig, err := s.SignMessage(bytes.NewReader(msg))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sign", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := s.SignMessage(bytes.NewReader(msg)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signs/s")
	})
	b.Run("verify", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
	})
}
