package audit

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/agentgate/agentgate/gate/sign"
)

// BrokenError names the first record (or checkpoint) where the log stops
// being intact.
type BrokenError struct {
	Seq        int64 // the first broken record; for a cut tail, the first missing one
	Checkpoint int64 // the checkpoint that proves it, when one does
	Reason     string
}

func (e *BrokenError) Error() string {
	if e.Checkpoint > 0 {
		return fmt.Sprintf("audit log broken at record %d: %s (checkpoint %d)", e.Seq, e.Reason, e.Checkpoint)
	}
	return fmt.Sprintf("audit log broken at record %d: %s", e.Seq, e.Reason)
}

// Report summarises a successful verification.
type Report struct {
	Records     int64       `json:"records"`
	Head        Head        `json:"head"`
	Checkpoints int         `json:"checkpoints"`
	Latest      *Checkpoint `json:"latest_checkpoint,omitempty"`
	// SignaturesChecked is false when Verify ran without a key: then the
	// checkpoints were only checked against the chain, not authenticated.
	SignaturesChecked bool `json:"signatures_checked"`
}

var hexHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Verify walks the whole chain and every checkpoint. It returns a
// *BrokenError for the first record that is missing, out of order, edited or
// unlinked, and for a checkpoint that no longer matches the log (a cut tail)
// or, when v is non-nil, whose signature does not verify with v. Other errors
// mean the log could not be read.
func (l *Log) Verify(ctx context.Context, v Verifier) (Report, error) {
	var rep Report
	cps, err := l.Checkpoints(ctx)
	if err != nil {
		return rep, err
	}
	var hint string
	if v != nil {
		pub, err := v.PublicKey()
		if err != nil {
			return rep, fmt.Errorf("audit: read the verification key: %w", err)
		}
		if hint, err = sign.KeyHint(pub); err != nil {
			return rep, err
		}
	}
	// Checkpoints, by the seq they cover, checked as the walk passes them.
	bySeq := map[int64][]Checkpoint{}
	for _, c := range cps {
		bySeq[c.HeadSeq] = append(bySeq[c.HeadSeq], c)
	}

	prev := Head{Seq: 0, Hash: GenesisHash}
	err = l.each(ctx, 0, func(r rawRecord) error {
		if r.Seq != prev.Seq+1 {
			return &BrokenError{Seq: prev.Seq + 1, Reason: fmt.Sprintf("record missing (the next stored record is %d)", r.Seq)}
		}
		if r.PrevHash != prev.Hash {
			return &BrokenError{Seq: r.Seq, Reason: "prev_hash does not match the hash of the record before it"}
		}
		if t, err := time.Parse(TimeFormat, r.timeText); err != nil || t.Format(TimeFormat) != r.timeText {
			return &BrokenError{Seq: r.Seq, Reason: fmt.Sprintf("time %q is not in the canonical format", r.timeText)}
		}
		if !hexHash.MatchString(r.Hash) {
			return &BrokenError{Seq: r.Seq, Reason: "hash is not 64 lower-case hex digits"}
		}
		if !json.Valid(r.Payload) {
			return &BrokenError{Seq: r.Seq, Reason: "payload is not valid JSON"}
		}
		if got := Hash(&r.Record); got != r.Hash {
			return &BrokenError{Seq: r.Seq, Reason: "contents do not match the stored hash (the record was edited)"}
		}
		for _, c := range bySeq[r.Seq] {
			if c.HeadHash != r.Hash {
				return &BrokenError{Seq: r.Seq, Checkpoint: c.ID, Reason: "the record differs from the one the checkpoint signed"}
			}
		}
		prev = Head{Seq: r.Seq, Hash: r.Hash}
		rep.Records++
		return nil
	})
	if err != nil {
		return rep, err
	}
	rep.Head = prev
	for i := range cps {
		c := &cps[i]
		if c.HeadSeq > prev.Seq {
			return rep, &BrokenError{Seq: prev.Seq + 1, Checkpoint: c.ID,
				Reason: fmt.Sprintf("the log ends at record %d but checkpoint %d signed record %d: the tail was removed", prev.Seq, c.ID, c.HeadSeq)}
		}
		if c.HeadSeq == 0 && c.HeadHash != GenesisHash {
			return rep, &BrokenError{Seq: 0, Checkpoint: c.ID, Reason: "checkpoint of the empty log has a non-genesis hash"}
		}
		if v != nil {
			if c.KeyHint != hint {
				return rep, &BrokenError{Seq: c.HeadSeq, Checkpoint: c.ID, Reason: "checkpoint was signed by another key"}
			}
			if err := v.VerifySignature(bytes.NewReader(c.Signature), bytes.NewReader(CheckpointMessage(c))); err != nil {
				return rep, &BrokenError{Seq: c.HeadSeq, Checkpoint: c.ID, Reason: "checkpoint signature does not verify"}
			}
		}
	}
	rep.Checkpoints = len(cps)
	if len(cps) > 0 {
		rep.Latest = &cps[len(cps)-1]
	}
	rep.SignaturesChecked = v != nil
	return rep, nil
}

// IsBroken reports whether err says the log is not intact (as opposed to
// not readable).
func IsBroken(err error) (*BrokenError, bool) {
	var b *BrokenError
	ok := errors.As(err, &b)
	return b, ok
}

// CheckAnchor checks that the log still holds record a.Seq with hash a.Hash.
// An anchor is a head kept outside the database (an attestation's audit
// field, a check-run summary), so this catches a tail that was cut together
// with its checkpoints.
func (l *Log) CheckAnchor(ctx context.Context, a Head) error {
	var hash string
	err := l.st.DB().QueryRowContext(ctx, l.st.Rebind("SELECT hash FROM audit WHERE seq = ?"), a.Seq).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return &BrokenError{Seq: a.Seq, Reason: "the anchored record is missing: the log was cut"}
	}
	if err != nil {
		return fmt.Errorf("audit: read record %d: %w", a.Seq, err)
	}
	if hash != a.Hash {
		return &BrokenError{Seq: a.Seq, Reason: "the record differs from the anchored one"}
	}
	return nil
}
