package interop

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgate/agentgate/gate/attest"
	"github.com/agentgate/agentgate/gate/sign"
	"github.com/agentgate/agentgate/internal/gitcli/gittest"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// CosignVersion is the cosign release the attestations must verify with.
const CosignVersion = "v3.1.3"

var (
	cosignOnce sync.Once
	cosignPath string
	cosignErr  error
)

// cosign returns the cached cosign binary, building it from the module
// proxy the first time (several minutes).
func cosign(t *testing.T) string {
	t.Helper()
	cosignOnce.Do(func() {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			var err error
			if cache, err = os.UserCacheDir(); err != nil {
				cosignErr = err
				return
			}
		}
		dir := filepath.Join(cache, "agentgate", "cosign-"+CosignVersion)
		cosignPath = filepath.Join(dir, "cosign")
		if fi, err := os.Stat(cosignPath); err == nil && fi.Mode()&0o111 != 0 {
			return
		}
		t.Logf("building cosign %s into %s (once; takes a few minutes)", CosignVersion, dir)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "install", "github.com/sigstore/cosign/v3/cmd/cosign@"+CosignVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			cosignErr = errors.New("go install cosign: " + err.Error() + "\n" + string(out))
		}
	})
	if cosignErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cosign %s is needed: %v", CosignVersion, cosignErr)
		}
		t.Skipf("cosign %s unavailable (set CI=true to make this a failure): %v", CosignVersion, cosignErr)
	}
	return cosignPath
}

type gateAttestation struct {
	bundlePath, pubPath, otherPub string
	head                          string
	bundle                        []byte
	verifier                      signature.Verifier
}

// makeAttestation builds a real attestation over a real commit.
func makeAttestation(t *testing.T) gateAttestation {
	t.Helper()
	ctx := context.Background()
	r := gittest.New(t)
	r.Write(".agentgate/policy.yaml", "apiVersion: agentgate.dev/v1\nkind: Policy\n")
	base := r.Commit("base")
	r.Branch("agent/x")
	r.Write("a.go", "package a\n")
	head := r.Commit("change")
	dir := t.TempDir()
	priv, pub, err := sign.Generate(filepath.Join(dir, "gate"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPub, err := sign.Generate(filepath.Join(dir, "other"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.Load(ctx, priv, cryptoutils.SkipPassword)
	if err != nil {
		t.Fatal(err)
	}
	b, err := attest.Sign(ctx, s, &attest.Decision{
		Repo: "github.com/acme/payments", Base: base, Head: head, MergeBase: base,
		Rung: attest.Rung{Source: "agent/x", Target: "develop"}, PlanID: "P-1", Plan: []byte(`{"plan_id":"P-1"}`),
		PolicyDigest: "gitTree:" + r.Git("rev-parse", base+":.agentgate"),
		Checks:       []attest.CheckResult{{Name: "scope", Status: "pass"}, {Name: "secrets", Status: "pass"}},
		Tools:        map[string]string{"agentgate": "test"}, Decision: "pass",
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, attest.BundleFileName)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := sign.LoadVerifier(ctx, pub)
	if err != nil {
		t.Fatal(err)
	}
	return gateAttestation{bundlePath: path, pubPath: pub, otherPub: otherPub, head: head, bundle: b, verifier: v}
}

func TestCosignVerifiesGateAttestation(t *testing.T) {
	bin := cosign(t)
	a := makeAttestation(t)
	run := func(key, digest, typ string) (string, error) {
		cmd := exec.Command(bin, "verify-blob-attestation", "--bundle", a.bundlePath, "--key", key,
			"--insecure-ignore-tlog", "--digest", digest, "--digestAlg", "gitCommit", "--type", typ)
		home := t.TempDir() // cosign writes ~/.sigstore
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CACHE_HOME="+home, "TUF_ROOT="+filepath.Join(home, "tuf"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	out, err := run(a.pubPath, a.head, attest.PredicateType)
	if err != nil || !strings.Contains(out, "Verified OK") {
		t.Fatalf("cosign rejected a gate attestation: %v\n%s", err, out)
	}
	rejects := map[string][4]string{
		"OtherCommit": {a.pubPath, strings.Repeat("0", 40), attest.PredicateType, "digest"},
		"OtherKey":    {a.otherPub, a.head, attest.PredicateType, "signature"},
		"OtherType":   {a.pubPath, a.head, "https://slsa.dev/provenance/v1", "predicate type"},
	}
	for name, args := range rejects {
		t.Run(name, func(t *testing.T) {
			out, err := run(args[0], args[1], args[2])
			if err == nil {
				t.Fatalf("cosign accepted:\n%s", out)
			}
			if !strings.Contains(out, args[3]) {
				t.Fatalf("cosign rejected for another reason than the %s:\n%s", args[3], out)
			}
		})
	}
}

func TestSigstoreGoVerifiesGateAttestation(t *testing.T) {
	a := makeAttestation(t)
	var b bundle.Bundle
	if err := b.UnmarshalJSON(a.bundle); err != nil {
		t.Fatal(err)
	}
	tm := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
		return root.NewExpiringKey(a.verifier, time.Time{}, time.Time{}), nil
	})
	v, err := verify.NewVerifier(tm, verify.WithNoObserverTimestamps())
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := hex.DecodeString(a.head)
	res, err := v.Verify(&b, verify.NewPolicy(verify.WithArtifactDigest("gitCommit", digest), verify.WithKey()))
	if err != nil {
		t.Fatalf("sigstore-go rejected a gate attestation: %v", err)
	}
	if res.Statement.GetPredicateType() != attest.PredicateType {
		t.Fatalf("predicate type %q", res.Statement.GetPredicateType())
	}
	other, _ := hex.DecodeString(strings.Repeat("1", 40))
	if _, err := v.Verify(&b, verify.NewPolicy(verify.WithArtifactDigest("gitCommit", other), verify.WithKey())); err == nil {
		t.Fatal("sigstore-go accepted the attestation for another commit")
	}
}
