package attest

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/santhosh-tekuri/jsonschema/v6"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/agentgate/agentgate/gate/sign"
	"github.com/agentgate/agentgate/internal/schemaval"
)

// Identifiers written into every attestation.
const (
	PredicateType   = "https://agentgate.dev/attestation/gate-decision/v1"
	PayloadType     = "application/vnd.in-toto+json"
	BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	DigestGitCommit = "gitCommit"
	BundleFileName  = "attestation.sigstore.json"
	SchemaID        = "https://agentgate.dev/attestation/gate-decision/v1/schema.json"
	maxBundleSize   = 8 << 20
)

// Schema is the JSON Schema (draft 2020-12) of the predicate.
//
//go:embed predicate.schema.json
var Schema []byte

// Rung is one step of the promotion ladder.
type Rung struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// CheckResult is one check's outcome as the attestation records it.
type CheckResult struct {
	Name        string         `json:"name"`
	Status      string         `json:"status"`
	Findings    int            `json:"findings"`
	BySeverity  map[string]int `json:"by_severity,omitempty"`
	StopReasons []string       `json:"stop_reasons,omitempty"`
	Reason      string         `json:"reason,omitempty"`
}

// Approval is one human approval counted for this decision.
type Approval struct {
	Approver   string    `json:"approver"`
	SHA        string    `json:"sha"`
	Target     string    `json:"target,omitempty"`
	Permission string    `json:"permission,omitempty"`
	At         time.Time `json:"at,omitzero"`
	Source     string    `json:"source,omitempty"`
}

// AuditRef is the audit record of the decision.
type AuditRef struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// Decision is what the caller (agentgate check, the gate worker) knows about
// one evaluation. Plan is the raw WORK_PLAN.json; only its SHA-256 is
// attested.
type Decision struct {
	Repo         string
	Base         string
	Head         string
	MergeBase    string
	Rung         Rung
	PlanID       string
	PlanPath     string
	Plan         []byte
	PolicyDigest string // ALGORITHM:HEX
	Checks       []CheckResult
	Tools        map[string]string
	Databases    map[string]string
	Decision     string // pass, fail, stop
	StopReason   string
	Reasons      []string
	Approval     bool // approval required
	Approvals    []Approval
	Audit        *AuditRef
	DecidedAt    time.Time
}

// PlanInfo identifies the WORK_PLAN in the predicate.
type PlanInfo struct {
	ID     string `json:"id"`
	Path   string `json:"path,omitempty"`
	SHA256 string `json:"sha256"`
}

// Predicate is the gate-decision predicate as it appears in the statement.
type Predicate struct {
	Repo             string            `json:"repo"`
	Base             string            `json:"base"`
	Head             string            `json:"head"`
	MergeBase        string            `json:"merge_base"`
	Rung             Rung              `json:"rung"`
	Plan             PlanInfo          `json:"plan"`
	PolicyDigest     string            `json:"policy_digest"`
	Checks           []CheckResult     `json:"checks"`
	Tools            map[string]string `json:"tools"`
	Databases        map[string]string `json:"databases"`
	Decision         string            `json:"decision"`
	StopReason       string            `json:"stop_reason"`
	Reasons          []string          `json:"reasons,omitempty"`
	ApprovalRequired bool              `json:"approval_required,omitempty"`
	Approvals        []Approval        `json:"approvals"`
	Audit            *AuditRef         `json:"audit,omitempty"`
	DecidedAt        time.Time         `json:"decided_at"`
}

var shaRE = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// Predicate builds and validates the predicate of d.
func (d *Decision) Predicate() (*Predicate, error) {
	p := &Predicate{
		Repo: d.Repo, Base: d.Base, Head: d.Head, MergeBase: d.MergeBase, Rung: d.Rung,
		Plan:         PlanInfo{ID: d.PlanID, Path: d.PlanPath},
		PolicyDigest: d.PolicyDigest, Checks: d.Checks, Tools: d.Tools, Databases: d.Databases,
		Decision: d.Decision, StopReason: d.StopReason, Reasons: d.Reasons, ApprovalRequired: d.Approval,
		Approvals: d.Approvals, Audit: d.Audit, DecidedAt: d.DecidedAt.UTC(),
	}
	if len(d.Plan) > 0 {
		sum := sha256.Sum256(d.Plan)
		p.Plan.SHA256 = hex.EncodeToString(sum[:])
	}
	if p.Checks == nil {
		p.Checks = []CheckResult{}
	}
	if p.Tools == nil {
		p.Tools = map[string]string{}
	}
	if p.Databases == nil {
		p.Databases = map[string]string{}
	}
	if p.Approvals == nil {
		p.Approvals = []Approval{}
	}
	if p.DecidedAt.IsZero() {
		p.DecidedAt = time.Now().UTC()
	}
	p.DecidedAt = p.DecidedAt.Truncate(time.Millisecond)
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Predicate) validate() error {
	for name, v := range map[string]string{"head": p.Head, "base": p.Base, "merge base": p.MergeBase} {
		if !shaRE.MatchString(v) {
			return fmt.Errorf("attest: %s %q is not a full lower-case commit SHA", name, v)
		}
	}
	if len(p.Head) != 40 {
		// in-toto's gitCommit digest is SHA-1 (40 hex).
		return fmt.Errorf("attest: head %s is a SHA-256 commit; gitCommit subjects need SHA-1 repositories", p.Head)
	}
	doc, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("attest: encode the predicate: %w", err)
	}
	return ValidatePredicate(doc)
}

var compiledSchema = schemaval.Once(SchemaID, Schema)

// ValidatePredicate checks a predicate document against Schema.
func ValidatePredicate(doc []byte) error {
	s, err := compiledSchema()
	if err != nil {
		return fmt.Errorf("attest: embedded predicate schema: %w", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("attest: predicate is not JSON: %w", err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("attest: predicate does not match its schema: %w", err)
	}
	return nil
}

// SubjectName names the head commit in the statement:
// git+https://REPO@refs/heads/TARGET for a host/org/repo identity,
// otherwise REPO@refs/heads/TARGET.
func SubjectName(repo, target string) string {
	name := repo
	if !strings.Contains(repo, "://") && strings.Count(repo, "/") >= 2 && !strings.HasPrefix(repo, "/") {
		name = "git+https://" + repo
	}
	return name + "@refs/heads/" + target
}

// Statement builds the in-toto statement for d.
func (d *Decision) Statement() (*intoto.Statement, *Predicate, error) {
	p, err := d.Predicate()
	if err != nil {
		return nil, nil, err
	}
	doc, err := json.Marshal(p)
	if err != nil {
		return nil, nil, fmt.Errorf("attest: encode the predicate: %w", err)
	}
	var pred structpb.Struct
	if err := protojson.Unmarshal(doc, &pred); err != nil {
		return nil, nil, fmt.Errorf("attest: convert the predicate: %w", err)
	}
	st := &intoto.Statement{
		Type: intoto.StatementTypeUri,
		Subject: []*intoto.ResourceDescriptor{{
			Name:   SubjectName(p.Repo, p.Rung.Target),
			Digest: map[string]string{DigestGitCommit: p.Head},
		}},
		PredicateType: PredicateType,
		Predicate:     &pred,
	}
	if err := st.Validate(); err != nil {
		return nil, nil, fmt.Errorf("attest: invalid statement: %w", err)
	}
	return st, p, nil
}

// Sign builds the statement for d, signs it with s and returns the Sigstore
// bundle v0.3 as JSON.
func Sign(ctx context.Context, s signature.Signer, d *Decision) ([]byte, error) {
	st, _, err := d.Statement()
	if err != nil {
		return nil, err
	}
	payload, err := protojson.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("attest: encode the statement: %w", err)
	}
	return SignPayload(ctx, s, payload)
}

// SignPayload signs an already encoded statement (tests use it to sign
// statements Sign would refuse to build).
func SignPayload(ctx context.Context, s signature.Signer, payload []byte) ([]byte, error) {
	pub, err := s.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("attest: read the signing key: %w", err)
	}
	hint, err := sign.KeyHint(pub)
	if err != nil {
		return nil, err
	}
	envJSON, err := dsse.WrapSigner(s, PayloadType).SignMessage(bytes.NewReader(payload), options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("attest: sign: %w", err)
	}
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     []byte `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   []byte `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(envJSON, &env); err != nil || len(env.Signatures) != 1 {
		return nil, fmt.Errorf("attest: unexpected DSSE envelope from the signer: %v", err)
	}
	b := &protobundle.Bundle{
		MediaType: BundleMediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: hint}},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload:     env.Payload,
			PayloadType: env.PayloadType,
			Signatures:  []*protodsse.Signature{{Sig: env.Signatures[0].Sig, Keyid: env.Signatures[0].KeyID}},
		}},
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("attest: encode the bundle: %w", err)
	}
	return append(out, '\n'), nil
}

// Expect is what a verifier requires beyond a valid signature. Empty fields
// are not checked.
type Expect struct {
	Commit   string // the subject's gitCommit digest
	Target   string // the rung's target branch
	Decision string // pass, fail, stop
}

// Verified is a bundle that passed Verify.
type Verified struct {
	Statement *intoto.Statement
	Predicate *Predicate
	Subject   string // the gitCommit digest
}

// VerifyError is a bundle that is well formed enough to judge but fails a
// requirement (signature, key, subject, type, rung, decision).
type VerifyError struct{ Reason string }

func (e *VerifyError) Error() string { return "attestation rejected: " + e.Reason }

func reject(format string, args ...any) error {
	return &VerifyError{Reason: fmt.Sprintf(format, args...)}
}

// Verify checks a bundle: its DSSE signature with v, the key hint, the
// statement type, the predicate type and schema, and exp. It fails closed:
// anything it cannot parse is an error.
func Verify(ctx context.Context, bundleJSON []byte, v signature.Verifier, exp Expect) (*Verified, error) {
	if len(bundleJSON) > maxBundleSize {
		return nil, reject("bundle is larger than %d bytes", maxBundleSize)
	}
	var b protobundle.Bundle
	if err := protojson.Unmarshal(bundleJSON, &b); err != nil {
		return nil, reject("not a Sigstore bundle: %v", err)
	}
	if b.GetMediaType() != BundleMediaType {
		return nil, reject("bundle media type %q; want %q", b.GetMediaType(), BundleMediaType)
	}
	env := b.GetDsseEnvelope()
	if env == nil {
		return nil, reject("bundle holds no DSSE envelope")
	}
	if env.GetPayloadType() != PayloadType {
		return nil, reject("payload type %q; want %q", env.GetPayloadType(), PayloadType)
	}
	if len(env.GetSignatures()) != 1 {
		return nil, reject("envelope has %d signatures; want exactly 1", len(env.GetSignatures()))
	}
	pub, err := v.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("attest: read the verification key: %w", err)
	}
	hint, err := sign.KeyHint(pub)
	if err != nil {
		return nil, err
	}
	if h := b.GetVerificationMaterial().GetPublicKey().GetHint(); h != "" && h != hint {
		return nil, reject("signed by another key (hint %s, the given key is %s)", h, hint)
	}
	envJSON, err := json.Marshal(map[string]any{
		"payloadType": env.GetPayloadType(),
		"payload":     env.GetPayload(),
		"signatures":  []map[string]any{{"keyid": env.GetSignatures()[0].GetKeyid(), "sig": env.GetSignatures()[0].GetSig()}},
	})
	if err != nil {
		return nil, err
	}
	var payload []byte
	dv := dsse.WrapVerifier(v, dsse.WithExpectedPayloadType(PayloadType), dsse.WithDecodedPayload(&payload))
	if err := dv.VerifySignature(bytes.NewReader(envJSON), nil, options.WithContext(ctx)); err != nil {
		return nil, reject("signature does not verify with the given key: %v", err)
	}
	var st intoto.Statement
	if err := protojson.Unmarshal(payload, &st); err != nil {
		return nil, reject("payload is not an in-toto statement: %v", err)
	}
	if st.GetType() != intoto.StatementTypeUri {
		return nil, reject("statement type %q; want %q", st.GetType(), intoto.StatementTypeUri)
	}
	if err := st.Validate(); err != nil {
		return nil, reject("invalid statement: %v", err)
	}
	if st.GetPredicateType() != PredicateType {
		return nil, reject("predicate type %q; want %q", st.GetPredicateType(), PredicateType)
	}
	if len(st.GetSubject()) != 1 {
		return nil, reject("statement has %d subjects; want 1", len(st.GetSubject()))
	}
	subject := st.GetSubject()[0].GetDigest()[DigestGitCommit]
	if subject == "" {
		return nil, reject("subject has no %s digest", DigestGitCommit)
	}
	predJSON, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, reject("predicate cannot be encoded: %v", err)
	}
	if err := ValidatePredicate(predJSON); err != nil {
		return nil, reject("%v", err)
	}
	var p Predicate
	if err := json.Unmarshal(predJSON, &p); err != nil {
		return nil, reject("predicate cannot be decoded: %v", err)
	}
	if p.Head != subject {
		return nil, reject("predicate head %s differs from the subject %s", p.Head, subject)
	}
	if exp.Commit != "" && !strings.EqualFold(exp.Commit, subject) {
		return nil, reject("attests commit %s, not %s", subject, exp.Commit)
	}
	if exp.Target != "" && p.Rung.Target != exp.Target {
		return nil, reject("attests promotion to %q, not %q", p.Rung.Target, exp.Target)
	}
	if exp.Decision != "" && p.Decision != exp.Decision {
		return nil, reject("decision is %q, not %q", p.Decision, exp.Decision)
	}
	return &Verified{Statement: &st, Predicate: &p, Subject: subject}, nil
}

// IsRejected reports whether err is a verification failure (as opposed to an
// error reading the key).
func IsRejected(err error) bool {
	var ve *VerifyError
	return errors.As(err, &ve)
}

// SeverityCounts counts findings by severity; a helper for callers that
// build CheckResults.
func SeverityCounts(severities []string) map[string]int {
	if len(severities) == 0 {
		return nil
	}
	m := map[string]int{}
	for _, s := range severities {
		m[s]++
	}
	return m
}
