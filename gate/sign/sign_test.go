package sign_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/gate/sign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

func TestGenerateThenSignAndVerify(t *testing.T) {
	for _, pw := range []string{"", "correct horse"} {
		t.Run("password="+pw, func(t *testing.T) {
			dir := t.TempDir()
			priv, pub, err := sign.Generate(dir, []byte(pw))
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(priv)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("private key mode %v, %v; want 0600", fi.Mode().Perm(), err)
			}
			data, _ := os.ReadFile(priv)
			if enc := strings.Contains(string(data), "ENCRYPTED SIGSTORE PRIVATE KEY"); enc != (pw != "") {
				t.Fatalf("encrypted=%v with password %q", enc, pw)
			}
			s, err := sign.Load(context.Background(), priv, cryptoutils.StaticPasswordFunc([]byte(pw)))
			if err != nil {
				t.Fatal(err)
			}
			msg := []byte("head 0123abcd")
			sig, err := s.SignMessage(bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			v, err := sign.LoadVerifier(context.Background(), pub)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader([]byte("head 0123abce"))); err == nil {
				t.Fatal("signature verified over another message")
			}
		})
	}
}

func TestLoadEncryptedKeyWithWrongPasswordFails(t *testing.T) {
	dir := t.TempDir()
	priv, _, err := sign.Generate(dir, []byte("right"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.Load(context.Background(), priv, cryptoutils.StaticPasswordFunc([]byte("wrong"))); err == nil {
		t.Fatal("loaded an encrypted key with the wrong password")
	}
	t.Setenv(sign.PasswordEnv, "right")
	if _, err := sign.Load(context.Background(), priv, nil); err != nil {
		t.Fatalf("password from %s: %v", sign.PasswordEnv, err)
	}
}

func TestGenerateRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := sign.Generate(dir, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, sign.PrivateKeyFile))
	if _, _, err := sign.Generate(dir, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second Generate: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, sign.PrivateKeyFile))
	if !bytes.Equal(before, after) {
		t.Fatal("existing private key was changed")
	}
}

func TestLoadRejectsHostileKeyFiles(t *testing.T) {
	dir := t.TempDir()
	rsaPEM := "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm\no3qGy0t6z09AIJtH+5OeRV1be+N4cDYJKffGzDa88vQENZiRm0GRq6a+HPGQMd2k\nTQIhAKMSvzIBnni7ot/OSie2TmJLY4SwTQAevXysE2RbFDYdAiEBCUEaRQnMnbp7\n9mxDXDf6AU0cN/RPBjb9qSHDcWZHGzUCIG2Es59z8ugGrDY+pxLQnwfotadxd+Uy\nv/Ow5T0q5gIJAiEAyS4RaI9YG8EWx/2w0T67ZUVAw8eOMB6BIUg0Xcu+3okCIBOs\n/5OiPgoTdSy7bcF9IGpSE8ZgGKzgYQVZeN97YE00\n-----END RSA PRIVATE KEY-----\n"
	files := map[string][]byte{
		"empty":   nil,
		"garbage": []byte("not a key at all"),
		"huge":    bytes.Repeat([]byte("A"), 1<<20),
		"pubonly": []byte("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"),
		"rsa":     []byte(rsaPEM),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := sign.Load(context.Background(), p, cryptoutils.SkipPassword); err == nil {
			t.Errorf("%s: Load succeeded", name)
		}
		if _, err := sign.LoadPublicKey(p); err == nil {
			t.Errorf("%s: LoadPublicKey succeeded", name)
		}
	}
	if _, err := sign.Load(context.Background(), "", nil); err == nil {
		t.Error("empty reference accepted")
	}
	if _, err := sign.Load(context.Background(), "nosuchplugin://key", nil); err == nil {
		t.Error("KMS reference without a plugin accepted")
	}
}

func TestKeyHintIsStable(t *testing.T) {
	dir := t.TempDir()
	_, pub, err := sign.Generate(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := sign.LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	h1, err := sign.KeyHint(k)
	if err != nil || len(h1) != 44 {
		t.Fatalf("hint %q, %v", h1, err)
	}
	h2, _ := sign.KeyHint(k)
	if h1 != h2 {
		t.Fatal("hint not stable")
	}
}

func FuzzLoadPublicKey(f *testing.F) {
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "k.pub")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = sign.LoadPublicKey(p)
	})
}
