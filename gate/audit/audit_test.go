package audit_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/sign"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/agentgate/agentgate/internal/store/storetest"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

const helperEnv = "AGENTGATE_AUDIT_TEST_HELPER" // "DSN|N|actor": append N events and exit

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helperAppend(spec))
	}
	os.Exit(storetest.Run(m))
}

// helperAppend runs in a child process: it appends N events one by one.
func helperAppend(spec string) int {
	parts := strings.SplitN(spec, "|", 3)
	n, _ := strconv.Atoi(parts[1])
	ctx := context.Background()
	st, err := store.Open(ctx, parts[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Close()
	l, err := audit.Open(ctx, st, audit.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 0; i < n; i++ {
		if _, err := l.Append(ctx, audit.Event{Actor: parts[2], Kind: "test.append", Payload: map[string]int{"i": i}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

type keys struct {
	signer   sign.Signer
	verifier audit.Verifier
}

var (
	keyOnce        sync.Once
	gateKey, other keys
)

func testKeys(t testing.TB) (keys, keys) {
	t.Helper()
	keyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "audit-keys-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		load := func(sub string) keys {
			priv, pub, err := sign.Generate(filepath.Join(dir, sub), nil)
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
			return keys{s, v}
		}
		gateKey, other = load("gate"), load("other")
	})
	return gateKey, other
}

func openLog(t testing.TB, st *store.Store, every int64) *audit.Log {
	t.Helper()
	k, _ := testKeys(t)
	l, err := audit.Open(context.Background(), st, audit.Options{Signer: k.signer, CheckpointEvery: every})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func appendN(t testing.TB, l *audit.Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := l.Append(context.Background(), audit.Event{
			Actor: "gate", Kind: "gate.decision", Repo: "acme/payments", SHA: strings.Repeat("a", 40),
			PlanID: "plan-1", RunID: "run-1", Payload: map[string]any{"i": i, "decision": "pass"},
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func mustBroken(t *testing.T, err error, seq int64, reason string) {
	t.Helper()
	b, ok := audit.IsBroken(err)
	if !ok {
		t.Fatalf("Verify = %v; want a broken record %d", err, seq)
	}
	if b.Seq != seq || !strings.Contains(b.Reason, reason) {
		t.Fatalf("Verify broke at %d (%s); want %d (%s)", b.Seq, b.Reason, seq, reason)
	}
}

func TestAppendBuildsVerifiableChain(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l := openLog(t, st, 5)
		k, _ := testKeys(t)
		appendN(t, l, 12)
		rs, err := l.AppendBatch(ctx, []audit.Event{{Actor: "gate", Kind: "a"}, {Actor: "gate", Kind: "b", Payload: json.RawMessage(`{ "x" : [1, 2] }`)}})
		if err != nil {
			t.Fatal(err)
		}
		if rs[0].Seq != 13 || rs[1].Seq != 14 || rs[1].PrevHash != rs[0].Hash || string(rs[1].Payload) != `{"x":[1,2]}` {
			t.Fatalf("batch records: %+v", rs)
		}
		rep, err := l.Verify(ctx, k.verifier)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Records != 14 || rep.Head.Seq != 14 || rep.Head.Hash != rs[1].Hash || rep.Checkpoints != 2 || !rep.SignaturesChecked {
			t.Fatalf("report %+v", rep)
		}
		tail, err := l.Tail(ctx, 3)
		if err != nil || len(tail) != 3 || tail[0].Seq != 12 || tail[2].Seq != 14 {
			t.Fatalf("Tail(3) = %+v, %v", tail, err)
		}
	})
}

func TestDatabaseRefusesChangesToTheLog(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l := openLog(t, st, 0)
		appendN(t, l, 3)
		if _, err := l.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		head, _ := l.Head(ctx)
		stmts := map[string]string{
			"update":            "UPDATE audit SET payload = '{}' WHERE seq = 2",
			"delete":            "DELETE FROM audit WHERE seq = 3",
			"delete all":        "DELETE FROM audit",
			"upsert":            "INSERT INTO audit (seq, time, actor, kind, repo, sha, plan_id, run_id, payload, prev_hash, hash) SELECT seq, time, actor, kind, repo, sha, plan_id, run_id, '{}', prev_hash, hash FROM audit WHERE seq = 2 ON CONFLICT (seq) DO UPDATE SET payload = excluded.payload",
			"insert off chain":  "INSERT INTO audit (seq, time, actor, kind, repo, sha, plan_id, run_id, payload, prev_hash, hash) VALUES (4, 't', 'a', 'k', '', '', '', '', '{}', '" + strings.Repeat("0", 64) + "', '" + strings.Repeat("1", 64) + "')",
			"insert seq gap":    "INSERT INTO audit (seq, time, actor, kind, repo, sha, plan_id, run_id, payload, prev_hash, hash) VALUES (9, 't', 'a', 'k', '', '', '', '', '{}', '" + head.Hash + "', '" + strings.Repeat("2", 64) + "')",
			"checkpoint update": "UPDATE audit_checkpoints SET head_seq = 1",
			"checkpoint delete": "DELETE FROM audit_checkpoints",
		}
		if st.Dialect() == store.SQLite {
			stmts["insert or replace"] = "INSERT OR REPLACE INTO audit (seq, time, actor, kind, repo, sha, plan_id, run_id, payload, prev_hash, hash) SELECT seq, time, actor, kind, repo, sha, plan_id, run_id, '{\"x\":1}', prev_hash, hash FROM audit WHERE seq = 2"
			stmts["replace"] = "REPLACE INTO audit (seq, time, actor, kind, repo, sha, plan_id, run_id, payload, prev_hash, hash) SELECT seq, time, actor, kind, repo, sha, plan_id, run_id, '{\"x\":1}', prev_hash, hash FROM audit WHERE seq = 3"
			stmts["checkpoint replace"] = "INSERT OR REPLACE INTO audit_checkpoints SELECT id, time, 0, head_hash, key_hint, signature FROM audit_checkpoints"
		} else {
			stmts["truncate"] = "TRUNCATE audit"
			stmts["checkpoint truncate"] = "TRUNCATE audit_checkpoints"
		}
		for name, q := range stmts {
			_, err := st.DB().ExecContext(ctx, q)
			if err == nil {
				t.Errorf("%s: the database accepted %q", name, q)
				continue
			}
			if !strings.Contains(err.Error(), "append-only") && !strings.Contains(err.Error(), "extend the chain") {
				t.Errorf("%s: refused for another reason: %v", name, err)
			}
		}
		k, _ := testKeys(t)
		if rep, err := l.Verify(ctx, k.verifier); err != nil || rep.Records != 3 {
			t.Fatalf("after refused changes: %+v, %v", rep, err)
		}
	})
}

// tamper runs statements with the append-only triggers out of the way, as
// another program with write access to the database could.
func tamper(t *testing.T, st *store.Store, dsn string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	if st.Dialect() == store.SQLite {
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, trg := range []string{"audit_no_update", "audit_no_delete", "audit_no_replace", "audit_extends_chain", "audit_checkpoints_no_delete"} {
			if _, err := db.ExecContext(ctx, "DROP TRIGGER "+trg); err != nil {
				t.Fatal(err)
			}
		}
		for _, q := range stmts {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		return
	}
	tx, err := st.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, q := range append([]string{"ALTER TABLE audit DISABLE TRIGGER USER", "ALTER TABLE audit_checkpoints DISABLE TRIGGER USER"}, stmts...) {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyCatchesTampering(t *testing.T) {
	_, otherKey := testKeys(t)
	cases := []struct {
		name     string
		stmts    []string
		verifier *keys
		seq      int64
		reason   string
	}{
		{name: "EditedPayload", stmts: []string{`UPDATE audit SET payload = '{"decision":"fail","i":3}' WHERE seq = 4`}, seq: 4, reason: "edited"},
		{name: "EditedActor", stmts: []string{`UPDATE audit SET actor = 'mallory' WHERE seq = 7`}, seq: 7, reason: "edited"},
		{name: "DeletedMiddle", stmts: []string{`DELETE FROM audit WHERE seq = 5`}, seq: 5, reason: "missing"},
		{name: "DeletedTail", stmts: []string{`DELETE FROM audit WHERE seq > 7`}, seq: 8, reason: "tail was removed"},
		{name: "RelinkedChain", stmts: []string{`UPDATE audit SET prev_hash = '` + audit.GenesisHash + `' WHERE seq = 6`}, seq: 6, reason: "prev_hash"},
		// Re-hashing from the edit onward keeps the chain consistent; the
		// signed checkpoint at 10 still catches it.
		{name: "RewrittenChain", stmts: nil, seq: 10, reason: "checkpoint signed"},
		{name: "OtherKey", verifier: &otherKey, seq: 5, reason: "another key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			storetest.EachDSN(t, func(t *testing.T, dsn string) {
				ctx := context.Background()
				st, err := store.Open(ctx, dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				l := openLog(t, st, 5)
				appendN(t, l, 11)
				stmts := tc.stmts
				if tc.name == "RewrittenChain" {
					stmts = rewriteFrom(t, l, 8)
				}
				if len(stmts) > 0 {
					tamper(t, st, dsn, stmts...)
				}
				k, _ := testKeys(t)
				v := k.verifier
				if tc.verifier != nil {
					v = tc.verifier.verifier
				}
				_, err = l.Verify(ctx, v)
				mustBroken(t, err, tc.seq, tc.reason)
			})
		})
	}
}

// rewriteFrom returns statements that change record seq's payload and
// re-hash it and every later record, so that the chain alone stays valid.
func rewriteFrom(t *testing.T, l *audit.Log, seq int64) []string {
	t.Helper()
	var recs []audit.Record
	if err := l.Each(context.Background(), 0, func(r audit.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	var stmts []string
	prev := recs[seq-2].Hash
	for _, r := range recs[seq-1:] {
		if r.Seq == seq {
			r.Payload = json.RawMessage(`{"decision":"pass","forged":true}`)
		}
		r.PrevHash = prev
		r.Hash = audit.Hash(&r)
		prev = r.Hash
		stmts = append(stmts, fmt.Sprintf("UPDATE audit SET payload = '%s', prev_hash = '%s', hash = '%s' WHERE seq = %d", r.Payload, r.PrevHash, r.Hash, r.Seq))
	}
	return stmts
}

func TestVerifyWithoutKeyStillChecksCheckpointsAgainstChain(t *testing.T) {
	storetest.EachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		l := openLog(t, st, 4)
		appendN(t, l, 9)
		rep, err := l.Verify(ctx, nil)
		if err != nil || rep.SignaturesChecked || rep.Checkpoints != 2 {
			t.Fatalf("%+v, %v", rep, err)
		}
		tamper(t, st, dsn, "DELETE FROM audit WHERE seq > 6")
		_, err = l.Verify(ctx, nil)
		mustBroken(t, err, 7, "tail was removed")
	})
}

func TestConcurrentAppendersKeepOneChain(t *testing.T) {
	const goroutines, each = 6, 15
	storetest.EachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, goroutines+2)
		// Half the goroutines share one store, the others open their own
		// (separate connections, as separate processes would).
		shared, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer shared.Close()
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := shared
				if g%2 == 1 {
					own, err := store.Open(ctx, dsn)
					if err != nil {
						errs <- err
						return
					}
					defer own.Close()
					st = own
				}
				l, err := audit.Open(ctx, st, audit.Options{})
				if err != nil {
					errs <- err
					return
				}
				for i := 0; i < each; i++ {
					if _, err := l.Append(ctx, audit.Event{Actor: fmt.Sprintf("g%d", g), Kind: "test", Payload: map[string]int{"i": i}}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		// And two other processes.
		procs := make([]*exec.Cmd, 2)
		for p := range procs {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%d|proc%d", helperEnv, dsn, each, p))
			out := &strings.Builder{}
			cmd.Stderr, cmd.Stdout = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			procs[p] = cmd
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := cmd.Wait(); err != nil {
					errs <- fmt.Errorf("helper process: %v\n%s", err, out)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		l, err := audit.Open(ctx, shared, audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := l.Verify(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64((goroutines + len(procs)) * each); rep.Records != want {
			t.Fatalf("%d records; want %d", rep.Records, want)
		}
		perActor := map[string]int{}
		_ = l.Each(ctx, 0, func(r audit.Record) error { perActor[r.Actor]++; return nil })
		if perActor["proc0"] != each || perActor["proc1"] != each {
			t.Fatalf("per actor: %v", perActor)
		}
	})
}

func TestAppendRejectsBadEvents(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	l := openLog(t, st, 0)
	cases := map[string]audit.Event{
		"no kind":        {Actor: "gate"},
		"no actor":       {Kind: "x"},
		"bad json":       {Actor: "gate", Kind: "x", Payload: json.RawMessage(`{"a":`)},
		"huge payload":   {Actor: "gate", Kind: "x", Payload: map[string]string{"a": strings.Repeat("x", audit.MaxPayload)}},
		"long field":     {Actor: "gate", Kind: "x", Repo: strings.Repeat("r", 5000)},
		"invalid utf8":   {Actor: "gate\xff", Kind: "x"},
		"nul in field":   {Actor: "ga\x00te", Kind: "x"},
		"unmarshalable":  {Actor: "gate", Kind: "x", Payload: map[string]any{"f": func() {}}},
		"batch with bad": {Actor: "gate", Kind: "x", Payload: json.RawMessage(`nope`)},
	}
	ctx := context.Background()
	for name, e := range cases {
		if name == "batch with bad" {
			if _, err := l.AppendBatch(ctx, []audit.Event{{Actor: "gate", Kind: "ok"}, e}); err == nil {
				t.Errorf("%s: accepted", name)
			}
			continue
		}
		if _, err := l.Append(ctx, e); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if h, _ := l.Head(ctx); h.Seq != 0 {
		t.Fatalf("rejected events left %d records", h.Seq)
	}
}

func TestCheckpointNeedsKeyAndIsIdempotent(t *testing.T) {
	st := storetest.Open(t, store.SQLite)
	ctx := context.Background()
	nokey, err := audit.Open(ctx, st, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nokey.Checkpoint(ctx); err == nil {
		t.Fatal("checkpoint without a key succeeded")
	}
	l := openLog(t, st, 0)
	appendN(t, l, 2)
	c1, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := l.Checkpoint(ctx)
	if err != nil || c2.ID != c1.ID {
		t.Fatalf("second checkpoint %+v, %v; want the same as %d", c2, err, c1.ID)
	}
	appendN(t, l, 1)
	c3, _ := l.Checkpoint(ctx)
	if c3.ID != c1.ID+1 || c3.HeadSeq != 3 {
		t.Fatalf("checkpoint after append: %+v", c3)
	}
}

// TestHashGoldenVector pins the canonical encoding documented in
// docs/evidence.md, so that an independent verifier can be checked.
func TestHashGoldenVector(t *testing.T) {
	r := audit.Record{
		Seq: 1, Time: time.Date(2026, 11, 26, 7, 0, 0, 123456789, time.UTC),
		Actor: "gate", Kind: "gate.decision", Repo: "acme/payments", SHA: "0123456789abcdef0123456789abcdef01234567",
		PlanID: "plan-1", RunID: "run-1", Payload: json.RawMessage(`{"decision":"pass"}`), PrevHash: audit.GenesisHash,
	}
	const want = "05160fb7095acebd57565252fc2d9319910f46f1bb5745029e593a46e9c552dd"
	if got := audit.Hash(&r); got != want {
		t.Fatalf("Hash = %s; want %s", got, want)
	}
}

func FuzzHashDistinguishesFieldBoundaries(f *testing.F) {
	f.Add("gate", "decision", "ga", "tedecision")
	f.Fuzz(func(t *testing.T, a1, k1, a2, k2 string) {
		r1 := audit.Record{Seq: 1, Actor: a1, Kind: k1, PrevHash: audit.GenesisHash, Payload: json.RawMessage("{}")}
		r2 := r1
		r2.Actor, r2.Kind = a2, k2
		if (a1 != a2 || k1 != k2) && audit.Hash(&r1) == audit.Hash(&r2) {
			t.Fatalf("collision: (%q,%q) vs (%q,%q)", a1, k1, a2, k2)
		}
	})
}

func FuzzAppendPayload(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":1}`, `"x"`, `{"a":`, "\xff", `{"a":"\u0000"}`} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	l, err := audit.Open(context.Background(), st, audit.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := l.Append(context.Background(), audit.Event{Actor: "fuzz", Kind: "fuzz", Payload: json.RawMessage(payload)})
		if err != nil {
			return
		}
		if !json.Valid(r.Payload) || audit.Hash(&r) != r.Hash {
			t.Fatalf("stored an invalid record for %q", payload)
		}
	})
}

func TestAnchorCatchesTailCutWithCheckpoints(t *testing.T) {
	storetest.EachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		l := openLog(t, st, 3)
		appendN(t, l, 7)
		anchor, err := l.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.CheckAnchor(ctx, anchor); err != nil {
			t.Fatal(err)
		}
		if err := l.CheckAnchor(ctx, audit.Head{Seq: anchor.Seq, Hash: audit.GenesisHash}); err == nil {
			t.Fatal("a wrong anchor hash matched")
		}
		// Cut the tail and every checkpoint that covered it: the chain
		// and the remaining checkpoints are consistent, the anchor is not.
		tamper(t, st, dsn, "DELETE FROM audit WHERE seq > 5", "DELETE FROM audit_checkpoints WHERE head_seq > 5")
		k, _ := testKeys(t)
		if _, err := l.Verify(ctx, k.verifier); err != nil {
			t.Fatalf("the cut log should look consistent on its own: %v", err)
		}
		mustBroken(t, l.CheckAnchor(ctx, anchor), 7, "cut")
	})
}
