package attest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgate/agentgate/gate/attest"
	"github.com/agentgate/agentgate/gate/sign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"
)

const (
	head = "1111111111111111111111111111111111111111"
	base = "2222222222222222222222222222222222222222"
	mb   = "3333333333333333333333333333333333333333"
)

type keypair struct {
	signer   sign.Signer
	verifier signature.Verifier
	pubPath  string
}

var (
	keysOnce         sync.Once
	gateKey, outside keypair
	keyDir           string
)

func keys(t testing.TB) (keypair, keypair) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		keyDir, err = os.MkdirTemp("", "attest-keys-")
		if err != nil {
			t.Fatal(err)
		}
		load := func(sub string) keypair {
			priv, pub, err := sign.Generate(filepath.Join(keyDir, sub), nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := sign.Load(context.Background(), priv, cryptoutils.SkipPassword)
			if err != nil {
				t.Fatal(err)
			}
			v, err := sign.LoadVerifier(context.Background(), pub)
			if err != nil {
				t.Fatal(err)
			}
			return keypair{s, v, pub}
		}
		gateKey, outside = load("gate"), load("outside")
	})
	return gateKey, outside
}

func TestMain(m *testing.M) {
	code := m.Run()
	if keyDir != "" {
		os.RemoveAll(keyDir)
	}
	os.Exit(code)
}

func decision() *attest.Decision {
	return &attest.Decision{
		Repo: "github.com/acme/payments", Base: base, Head: head, MergeBase: mb,
		Rung:   attest.Rung{Source: "agent/retry", Target: "develop"},
		PlanID: "PAY-12", PlanPath: "services/payments/WORK_PLAN.json", Plan: []byte(`{"plan_id":"PAY-12"}`),
		PolicyDigest: "sha256:" + strings.Repeat("ab", 32),
		Checks: []attest.CheckResult{
			{Name: "scope", Status: "pass"},
			{Name: "secrets", Status: "pass"},
			{Name: "vuln", Status: "fail", Findings: 2, BySeverity: map[string]int{"high": 1, "medium": 1}, Reason: "2 reachable vulnerabilities"},
		},
		Tools:     map[string]string{"agentgate": "v0.1.0", "gitleaks": "v8.30.1"},
		Databases: map[string]string{"vulndb": "2026-11-20T00:00:00Z", "store": "sqlite 3.54.1"},
		Decision:  "pass",
		Approvals: []attest.Approval{{Approver: "alice", SHA: head, Target: "develop", Permission: "maintain", At: time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)}},
		Audit:     &attest.AuditRef{Seq: 42, Hash: strings.Repeat("c", 64)},
		DecidedAt: time.Date(2026, 11, 26, 7, 5, 0, 0, time.UTC),
	}
}

func signed(t testing.TB) []byte {
	t.Helper()
	k, _ := keys(t)
	b, err := attest.Sign(context.Background(), k.signer, decision())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// editPayload decodes the statement in a bundle, lets edit change it, and
// re-encodes it, keeping the old signature.
func editPayload(t *testing.T, bundle []byte, edit func(st map[string]any)) []byte {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	env := b["dsseEnvelope"].(map[string]any)
	raw, err := base64.StdEncoding.DecodeString(env["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	edit(st)
	raw, _ = json.Marshal(st)
	env["payload"] = base64.StdEncoding.EncodeToString(raw)
	out, _ := json.Marshal(b)
	return out
}

// resign signs an edited statement with the given key.
func resign(t *testing.T, k keypair, edit func(st map[string]any)) []byte {
	t.Helper()
	d := decision()
	st, _, err := d.Statement()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := protojson.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	raw, _ = json.Marshal(m)
	b, err := attest.SignPayload(context.Background(), k.signer, raw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyTamperTable(t *testing.T) {
	gk, ok := keys(t)
	orig := signed(t)
	flipSig := func() []byte {
		var b map[string]any
		_ = json.Unmarshal(orig, &b)
		sigs := b["dsseEnvelope"].(map[string]any)["signatures"].([]any)
		s := sigs[0].(map[string]any)
		raw, _ := base64.StdEncoding.DecodeString(s["sig"].(string))
		raw[len(raw)-3] ^= 0x01
		s["sig"] = base64.StdEncoding.EncodeToString(raw)
		out, _ := json.Marshal(b)
		return out
	}
	withoutHint := func(bundle []byte) []byte {
		var b map[string]any
		_ = json.Unmarshal(bundle, &b)
		b["verificationMaterial"].(map[string]any)["publicKey"].(map[string]any)["hint"] = ""
		out, _ := json.Marshal(b)
		return out
	}
	pred := func(st map[string]any) map[string]any { return st["predicate"].(map[string]any) }
	cases := []struct {
		name   string
		bundle []byte
		key    keypair
		exp    attest.Expect
		reason string // "" = accepted
	}{
		{name: "OriginalAccepted", bundle: orig, key: gk, exp: attest.Expect{Commit: head, Target: "develop", Decision: "pass"}},
		{name: "OriginalNoExpectations", bundle: orig, key: gk},
		{name: "ChangedPayloadDecision", bundle: editPayload(t, orig, func(st map[string]any) { pred(st)["decision"] = "stop" }), key: gk, reason: "signature does not verify"},
		{name: "ChangedPayloadRung", bundle: editPayload(t, orig, func(st map[string]any) { pred(st)["rung"].(map[string]any)["target"] = "main" }), key: gk, exp: attest.Expect{Target: "main"}, reason: "signature does not verify"},
		{name: "ChangedSignature", bundle: flipSig(), key: gk, reason: "signature does not verify"},
		{name: "OtherKey", bundle: orig, key: ok, reason: "another key"},
		{name: "OtherKeyWithoutHint", bundle: withoutHint(orig), key: ok, reason: "signature does not verify"},
		{name: "SignedByOutsiderPresentedAsGate", bundle: withoutHint(resign(t, ok, func(map[string]any) {})), key: gk, reason: "signature does not verify"},
		{name: "OtherCommit", bundle: orig, key: gk, exp: attest.Expect{Commit: strings.Repeat("4", 40)}, reason: "attests commit"},
		{name: "OtherPredicateType", bundle: resign(t, gk, func(st map[string]any) { st["predicateType"] = "https://slsa.dev/provenance/v1" }), key: gk, reason: "predicate type"},
		{name: "OtherRung", bundle: orig, key: gk, exp: attest.Expect{Target: "main"}, reason: "promotion to"},
		{name: "OtherDecision", bundle: orig, key: gk, exp: attest.Expect{Decision: "fail"}, reason: "decision is"},
		{name: "SubjectDiffersFromPredicateHead", bundle: resign(t, gk, func(st map[string]any) {
			st["subject"].([]any)[0].(map[string]any)["digest"].(map[string]any)["gitCommit"] = strings.Repeat("5", 40)
		}), key: gk, reason: "differs from the subject"},
		{name: "TwoSubjects", bundle: resign(t, gk, func(st map[string]any) {
			s := st["subject"].([]any)
			st["subject"] = append(s, map[string]any{"name": "x", "digest": map[string]any{"gitCommit": strings.Repeat("6", 40)}})
		}), key: gk, reason: "subjects"},
		{name: "PredicateOffSchema", bundle: resign(t, gk, func(st map[string]any) { pred(st)["decision"] = "maybe" }), key: gk, reason: "schema"},
		{name: "OldStatementType", bundle: resign(t, gk, func(st map[string]any) { st["_type"] = "https://in-toto.io/Statement/v0.1" }), key: gk, reason: "statement type"},
		{name: "NotJSON", bundle: []byte("not json"), key: gk, reason: "not a Sigstore bundle"},
		{name: "OtherMediaType", bundle: bytes.Replace(orig, []byte("bundle.v0.3+json"), []byte("bundle+json"), 1), key: gk, reason: "media type"},
		{name: "Oversized", bundle: bytes.Repeat([]byte(" "), 9<<20), key: gk, reason: "larger"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := attest.Verify(context.Background(), tc.bundle, tc.key.verifier, tc.exp)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if v.Subject != head || v.Predicate.Rung.Target != "develop" || v.Predicate.Plan.SHA256 == "" {
					t.Fatalf("verified %+v", v.Predicate)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !attest.IsRejected(err) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error %v; want a rejection mentioning %q", err, tc.reason)
			}
		})
	}
}

func TestBundleShapeIsSigstoreV03WithKeyHint(t *testing.T) {
	gk, _ := keys(t)
	var b struct {
		MediaType            string `json:"mediaType"`
		VerificationMaterial struct {
			PublicKey struct {
				Hint string `json:"hint"`
			} `json:"publicKey"`
		} `json:"verificationMaterial"`
		DsseEnvelope struct {
			Payload     string `json:"payload"`
			PayloadType string `json:"payloadType"`
			Signatures  []struct {
				Sig string `json:"sig"`
			} `json:"signatures"`
		} `json:"dsseEnvelope"`
	}
	if err := json.Unmarshal(signed(t), &b); err != nil {
		t.Fatal(err)
	}
	pub, _ := gk.verifier.PublicKey()
	hint, _ := sign.KeyHint(pub)
	if b.MediaType != attest.BundleMediaType || b.VerificationMaterial.PublicKey.Hint != hint ||
		b.DsseEnvelope.PayloadType != attest.PayloadType || len(b.DsseEnvelope.Signatures) != 1 {
		t.Fatalf("bundle %+v", b)
	}
	raw, _ := base64.StdEncoding.DecodeString(b.DsseEnvelope.Payload)
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if st["_type"] != "https://in-toto.io/Statement/v1" || st["predicateType"] != attest.PredicateType {
		t.Fatalf("statement %v", st)
	}
	subj := st["subject"].([]any)[0].(map[string]any)
	if subj["name"] != "git+https://github.com/acme/payments@refs/heads/develop" || subj["digest"].(map[string]any)["gitCommit"] != head {
		t.Fatalf("subject %v", subj)
	}
}

func TestDecisionRejectsBadInput(t *testing.T) {
	gk, _ := keys(t)
	cases := map[string]func(d *attest.Decision){
		"short head":      func(d *attest.Decision) { d.Head = "abc" },
		"upper-case head": func(d *attest.Decision) { d.Head = strings.ToUpper("abcdef" + head[6:]) },
		"sha256 head":     func(d *attest.Decision) { d.Head = strings.Repeat("a", 64) },
		"no target":       func(d *attest.Decision) { d.Rung.Target = "" },
		"bad decision":    func(d *attest.Decision) { d.Decision = "approved" },
		"bad stop code":   func(d *attest.Decision) { d.StopReason = "stop please" },
		"bad status":      func(d *attest.Decision) { d.Checks[0].Status = "ok" },
		"no repo":         func(d *attest.Decision) { d.Repo = "" },
		"bad audit hash":  func(d *attest.Decision) { d.Audit.Hash = "xyz" },
	}
	for name, mutate := range cases {
		d := decision()
		mutate(d)
		if _, err := attest.Sign(context.Background(), gk.signer, d); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

func FuzzVerify(f *testing.F) {
	k, _ := keys(f)
	f.Add(signed(f))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AA=="}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := attest.Verify(context.Background(), data, k.verifier, attest.Expect{})
		if err == nil && v.Predicate == nil {
			t.Fatal("accepted without a predicate")
		}
	})
}

func BenchmarkSign(b *testing.B) {
	k, _ := keys(b)
	d := decision()
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if _, err := attest.Sign(ctx, k.signer, d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signs/s")
}

func BenchmarkVerify(b *testing.B) {
	k, _ := keys(b)
	bundle := signed(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if _, err := attest.Verify(ctx, bundle, k.verifier, attest.Expect{Commit: head, Target: "develop"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}
