package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentgate/agentgate/gate/budget"
	"github.com/agentgate/agentgate/internal/store"
)

// Component is the gateway's migration component name in the store.
const Component = "gateway"

var keyMigrations = []store.Migration{{
	Version: 1,
	Name:    "run keys",
	SQLite: `CREATE TABLE gateway_keys (
	key_id     TEXT PRIMARY KEY,
	key_hash   TEXT NOT NULL,
	plan_id    TEXT NOT NULL,
	run_id     TEXT NOT NULL,
	created_at TEXT NOT NULL,
	revoked_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX gateway_keys_run ON gateway_keys (run_id);`,
	Postgres: `CREATE TABLE gateway_keys (
	key_id     TEXT PRIMARY KEY,
	key_hash   TEXT NOT NULL,
	plan_id    TEXT NOT NULL,
	run_id     TEXT NOT NULL,
	created_at TEXT NOT NULL,
	revoked_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX gateway_keys_run ON gateway_keys (run_id);`,
}, {
	Version:  2,
	Name:     "pull request of a run key",
	SQLite:   `ALTER TABLE gateway_keys ADD COLUMN pr TEXT NOT NULL DEFAULT '';`,
	Postgres: `ALTER TABLE gateway_keys ADD COLUMN pr TEXT NOT NULL DEFAULT '';`,
}}

// KeyPrefix starts every run key, so that secret scanners can find leaked ones.
const KeyPrefix = "agk_"

// RunKey is what a run key is bound to.
type RunKey struct {
	ID      string
	PlanID  string
	RunID   string
	Revoked bool
	// Plan is the plan's state in the budget ledger read with the key (nil
	// when the plan has no budget there).
	Plan *budget.PlanRead
	// PR is the pull request the run works on ("owner/name#N"), or "".
	PR string
}

var prRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}#[1-9][0-9]{0,9}$`)

// ParsePR splits "owner/name#N".
func ParsePR(pr string) (repo string, number int, err error) {
	if !prRE.MatchString(pr) {
		return "", 0, fmt.Errorf("gateway: pull request %q must be owner/name#NUMBER", pr)
	}
	repo, n, _ := strings.Cut(pr, "#")
	number, err = strconv.Atoi(n)
	return repo, number, err
}

// Keys stores run keys hashed (SHA-256): the store never holds a usable key.
type Keys struct {
	st        *store.Store
	read      *sql.DB
	closeRead func() error

	mu     sync.Mutex
	lookup *sql.Stmt // prepared at first use: key checks are on every call's path
}

// NewKeys migrates the key table and returns the key store. Keys are looked
// up on every call through a read-only handle (budget.OpenReader), so that a
// check never queues behind a ledger write and a revocation is seen by the
// next call. The same query reads the key's plan's version and stop latch
// in the budget ledger (budget.PlanRead), for admission in memory.
func NewKeys(ctx context.Context, st *store.Store) (*Keys, error) {
	if err := st.Migrate(ctx, Component, keyMigrations); err != nil {
		return nil, fmt.Errorf("gateway: migrate the key table: %w", err)
	}
	read, closeRead, err := budget.OpenReader(st)
	if err != nil {
		return nil, err
	}
	return &Keys{st: st, read: read, closeRead: closeRead}, nil
}

// lookupStmt prepares the key lookup once the budget ledger's tables exist.
func (k *Keys) lookupStmt(ctx context.Context) (*sql.Stmt, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lookup != nil {
		return k.lookup, nil
	}
	s, err := k.read.PrepareContext(ctx, k.st.Rebind(`SELECT k.key_id, k.key_hash, k.plan_id, k.run_id, k.revoked_at, k.pr, p.version, p.stopped
		FROM gateway_keys k LEFT JOIN budget_plans p ON p.plan_id = k.plan_id WHERE k.key_id = ?`))
	if err != nil {
		return nil, fmt.Errorf("gateway: prepare the key lookup (is the budget ledger migrated?): %w", err)
	}
	k.lookup = s
	return s, nil
}

// Close releases the key store's read handle.
func (k *Keys) Close() error {
	k.mu.Lock()
	if k.lookup != nil {
		k.lookup.Close()
	}
	k.mu.Unlock()
	return k.closeRead()
}

func hashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// Issue creates a run key bound to planID and runID and returns the key (to
// hand to the run, once) and its id (to revoke it later).
func (k *Keys) Issue(ctx context.Context, planID, runID string) (key, id string, err error) {
	return k.IssueFor(ctx, planID, runID, "")
}

// IssueFor is Issue for a run that works on a pull request (pr
// "owner/name#N", or ""): the gateway comments there when the plan's budget
// warns, needs approval or stops.
func (k *Keys) IssueFor(ctx context.Context, planID, runID, pr string) (key, id string, err error) {
	if planID == "" || runID == "" {
		return "", "", errors.New("gateway: a run key needs both a plan id and a run id")
	}
	if pr != "" {
		if _, _, err := ParsePR(pr); err != nil {
			return "", "", err
		}
	}
	var idb [6]byte
	var secret [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", "", err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", "", err
	}
	id = hex.EncodeToString(idb[:])
	key = KeyPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
	_, err = k.st.DB().ExecContext(ctx, k.st.Rebind(`INSERT INTO gateway_keys (key_id, key_hash, plan_id, run_id, created_at, pr) VALUES (?, ?, ?, ?, ?, ?)`),
		id, hashKey(key), planID, runID, time.Now().UTC().Format(time.RFC3339Nano), pr)
	if err != nil {
		return "", "", fmt.Errorf("gateway: store the run key: %w", err)
	}
	return key, id, nil
}

// ErrBadKey means the presented key is unknown, malformed or revoked. The
// message is the same for all three so that probing learns nothing.
var ErrBadKey = errors.New("invalid or revoked run key")

// Verify checks a presented key in constant time and returns its binding.
func (k *Keys) Verify(ctx context.Context, key string) (RunKey, error) {
	rest, ok := strings.CutPrefix(key, KeyPrefix)
	if !ok || len(rest) < 14 || rest[12] != '_' {
		return RunKey{}, ErrBadKey
	}
	id := rest[:12]
	var rk RunKey
	var stored, revokedAt string
	var version, stopped sql.NullInt64
	lookup, err := k.lookupStmt(ctx)
	if err != nil {
		return RunKey{}, err
	}
	err = lookup.QueryRowContext(ctx, id).
		Scan(&rk.ID, &stored, &rk.PlanID, &rk.RunID, &revokedAt, &rk.PR, &version, &stopped)
	if errors.Is(err, sql.ErrNoRows) {
		// Compare anyway so that unknown ids take as long as known ones.
		subtle.ConstantTimeCompare([]byte(hashKey(key)), []byte(hashKey("")))
		return RunKey{}, ErrBadKey
	}
	if err != nil {
		return RunKey{}, fmt.Errorf("gateway: look up the run key: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(hashKey(key)), []byte(stored)) != 1 {
		return RunKey{}, ErrBadKey
	}
	if revokedAt != "" {
		return RunKey{}, ErrBadKey
	}
	if version.Valid && stopped.Valid {
		rk.Plan = &budget.PlanRead{Version: version.Int64, Stopped: stopped.Int64 != 0}
	}
	return rk, nil
}

// Revoke revokes one key by id, or every key of a run when id is empty and
// runID is set. It returns how many keys it revoked.
func (k *Keys) Revoke(ctx context.Context, id, runID string) (int64, error) {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var res sql.Result
	var err error
	switch {
	case id != "":
		res, err = k.st.DB().ExecContext(ctx, k.st.Rebind(`UPDATE gateway_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at = ''`), now, id)
	case runID != "":
		res, err = k.st.DB().ExecContext(ctx, k.st.Rebind(`UPDATE gateway_keys SET revoked_at = ? WHERE run_id = ? AND revoked_at = ''`), now, runID)
	default:
		return 0, errors.New("gateway: name a key id or a run id to revoke")
	}
	if err != nil {
		return 0, fmt.Errorf("gateway: revoke: %w", err)
	}
	return res.RowsAffected()
}

// RunPR is a run of a plan and the pull request it works on.
type RunPR struct {
	RunID string
	PR    string
}

// PullRequests lists the runs of planID whose keys name a pull request
// (revoked keys included: a stopped run's PR still wants to hear of it),
// one per run and pull request, in the order the keys were issued.
func (k *Keys) PullRequests(ctx context.Context, planID string) ([]RunPR, error) {
	rows, err := k.st.DB().QueryContext(ctx, k.st.Rebind(`SELECT run_id, pr, MIN(created_at) FROM gateway_keys
		WHERE plan_id = ? AND pr <> '' GROUP BY run_id, pr ORDER BY 3, 1`), planID)
	if err != nil {
		return nil, fmt.Errorf("gateway: list the pull requests of plan %s: %w", planID, err)
	}
	defer rows.Close()
	var out []RunPR
	for rows.Next() {
		var r RunPR
		var created string
		if err := rows.Scan(&r.RunID, &r.PR, &created); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
