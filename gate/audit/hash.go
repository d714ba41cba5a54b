package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
)

// GenesisHash is the prev_hash of the first record: 64 zeros.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// TimeFormat is the fixed-width UTC form in which record times are stored
// and hashed.
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

const (
	recordDomain     = "agentgate.audit.record.v1"
	checkpointDomain = "agentgate.audit.checkpoint.v1"
)

// Hash computes a record's hash from its fields (its own Hash is ignored).
//
// The canonical encoding is a sequence of fields, each written as its length
// in bytes as an unsigned 64-bit big-endian integer followed by its bytes:
//
//	"agentgate.audit.record.v1", seq (decimal ASCII), time (TimeFormat),
//	actor, kind, repo, sha, plan_id, run_id, payload (the stored JSON bytes),
//	prev_hash (lower-case hex)
//
// and the hash is the lower-case hex SHA-256 of that byte string. Length
// prefixes make the encoding unambiguous whatever the fields contain.
func Hash(r *Record) string {
	return hashFields(recordDomain, strconv.FormatInt(r.Seq, 10), r.Time.UTC().Format(TimeFormat),
		r.Actor, r.Kind, r.Repo, r.SHA, r.PlanID, r.RunID, string(r.Payload), r.PrevHash)
}

// CheckpointMessage is the byte string a checkpoint signature covers, in the
// same encoding as Hash: "agentgate.audit.checkpoint.v1", head seq (decimal),
// head hash, time (TimeFormat).
func CheckpointMessage(c *Checkpoint) []byte {
	return encodeFields(checkpointDomain, strconv.FormatInt(c.HeadSeq, 10), c.HeadHash, c.Time.UTC().Format(TimeFormat))
}

func encodeFields(fields ...string) []byte {
	n := 0
	for _, f := range fields {
		n += 8 + len(f)
	}
	b := make([]byte, 0, n)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

func hashFields(fields ...string) string {
	sum := sha256.Sum256(encodeFields(fields...))
	return hex.EncodeToString(sum[:])
}
