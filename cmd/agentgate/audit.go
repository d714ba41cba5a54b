package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/agentgate/agentgate/gate/attest"
	"github.com/agentgate/agentgate/gate/audit"
	"github.com/agentgate/agentgate/gate/sign"
	"github.com/agentgate/agentgate/internal/store"
	"github.com/spf13/cobra"
)

// dbFlagHelp is shared by every command that takes --db.
const dbFlagHelp = "database: a SQLite file path, sqlite://PATH or postgres://... (default $XDG_STATE_HOME/agentgate/agentgate.db)"

// openExistingStore opens dsn for reading an existing log: a SQLite file that
// does not exist is an error rather than a new, empty (and so "intact") log.
func openExistingStore(ctx context.Context, dsn string) (*store.Store, error) {
	path := dsn
	if path == "" {
		p, err := store.DefaultPath()
		if err != nil {
			return nil, err
		}
		path = p
	}
	path = strings.TrimPrefix(path, "sqlite://")
	if !strings.Contains(path, "://") {
		if _, err := os.Stat(path); err != nil {
			return nil, withCode(exitInvalid, fmt.Errorf("no audit database at %s (pass --db): %w", path, err))
		}
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, withCode(exitInvalid, err)
	}
	return st, nil
}

func openAuditLog(ctx context.Context, dsn string) (*audit.Log, func(), error) {
	st, err := openExistingStore(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	l, err := audit.Open(ctx, st, audit.Options{})
	if err != nil {
		st.Close()
		return nil, nil, withCode(exitInvalid, err)
	}
	return l, func() { st.Close() }, nil
}

func init() {
	register(newAuditCmd)
}

func newAuditCmd() *cobra.Command {
	var dsn string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, export and read the append-only audit log",
		Long: `The audit log records every gate decision, stop event and action before it is
acted on. Records are hash-chained (each carries the SHA-256 of the one before)
and the chain head is periodically signed with the gate key (checkpoints), so
editing a record, removing one or cutting the tail is detectable.

The database refuses UPDATE, DELETE, REPLACE and TRUNCATE on the log; "audit
verify" catches whoever goes around the database (another program with the
file, a superuser).`,
		Example: `  agentgate audit verify --key keys/agentgate.pub
  agentgate audit tail -n 20
  agentgate audit export --format jsonl --db postgres://gate@db/agentgate > audit.jsonl`,
	}
	cmd.PersistentFlags().StringVar(&dsn, "db", "", dbFlagHelp)
	cmd.AddCommand(newAuditVerifyCmd(&dsn), newAuditExportCmd(&dsn), newAuditTailCmd(&dsn))
	return cmd
}

// parseAnchor reads SEQ:HASH.
func parseAnchor(s string) (audit.Head, error) {
	seq, hash, ok := strings.Cut(s, ":")
	n, err := strconv.ParseInt(seq, 10, 64)
	if !ok || err != nil || n < 1 || len(hash) != 64 {
		return audit.Head{}, fmt.Errorf("--anchor %q: want SEQ:HASH (a record number and its 64-hex hash)", s)
	}
	return audit.Head{Seq: n, Hash: strings.ToLower(hash)}, nil
}

// attestationAnchor verifies an attestation with v and returns the audit
// record it points at.
func attestationAnchor(ctx context.Context, path string, v audit.Verifier) (audit.Head, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return audit.Head{}, err
	}
	res, err := attest.Verify(ctx, data, v, attest.Expect{})
	if err != nil {
		return audit.Head{}, err
	}
	if res.Predicate.Audit == nil {
		return audit.Head{}, fmt.Errorf("%s names no audit record (it was signed without --db)", path)
	}
	return audit.Head{Seq: res.Predicate.Audit.Seq, Hash: res.Predicate.Audit.Hash}, nil
}

func newAuditVerifyCmd(dsn *string) *cobra.Command {
	var keyRef string
	var asJSON bool
	var anchors, attestations []string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the hash chain and the signed checkpoints of the audit log",
		Long: `Walk the whole audit log: every record must follow the one before it (seq,
prev_hash), hash to its stored hash, and every checkpoint must match the record
it signed. With --key, each checkpoint's signature is verified with the gate's
public key too; without it the checkpoints are only compared with the chain
(anyone with write access could have added one), which the output says.

Checkpoints live in the database, so whoever cuts the tail together with its
checkpoints is only caught by a head kept elsewhere: pass --attestation FILE
(each attestation names its decision's audit record) or --anchor SEQ:HASH.

Exit status: 0 the log is intact; 1 it is broken (the first broken record is
named); 2 the database or key could not be read.`,
		Example: `  agentgate audit verify --key keys/agentgate.pub
  agentgate audit verify --db /var/lib/agentgate/agentgate.db --key keys/agentgate.pub --json
  agentgate audit verify --key keys/agentgate.pub --attestation gate-out/attestation.sigstore.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var v audit.Verifier
			if keyRef != "" {
				var err error
				if v, err = sign.LoadVerifier(ctx, keyRef); err != nil {
					return withCode(exitInvalid, err)
				}
			}
			var heads []audit.Head
			for _, a := range anchors {
				h, err := parseAnchor(a)
				if err != nil {
					return withCode(exitInvalid, err)
				}
				heads = append(heads, h)
			}
			for _, f := range attestations {
				if v == nil {
					return withCode(exitInvalid, errors.New("audit verify: --attestation needs --key"))
				}
				h, err := attestationAnchor(ctx, f, v)
				if err != nil {
					return withCode(exitInvalid, fmt.Errorf("audit verify: --attestation %s: %w", f, err))
				}
				heads = append(heads, h)
			}
			l, done, err := openAuditLog(ctx, *dsn)
			if err != nil {
				return err
			}
			defer done()
			rep, err := l.Verify(ctx, v)
			for _, h := range heads {
				if err != nil {
					break
				}
				err = l.CheckAnchor(ctx, h)
			}
			out := cmd.OutOrStdout()
			if b, ok := audit.IsBroken(err); ok {
				if asJSON {
					_ = json.NewEncoder(out).Encode(map[string]any{"intact": false, "broken_seq": b.Seq, "checkpoint": b.Checkpoint, "reason": b.Reason})
				}
				return withCode(exitFail, b)
			}
			if err != nil {
				return withCode(exitInvalid, err)
			}
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"intact": true, "report": rep})
			}
			fmt.Fprintf(out, "audit log intact: %d records, head %d %s\n", rep.Records, rep.Head.Seq, rep.Head.Hash)
			switch {
			case rep.Checkpoints == 0:
				fmt.Fprintln(out, "no checkpoints: a removed tail would not be detected (sign decisions with --sign-key)")
			case rep.SignaturesChecked:
				fmt.Fprintf(out, "%d checkpoints, signatures verified; latest covers record %d\n", rep.Checkpoints, rep.Latest.HeadSeq)
			default:
				fmt.Fprintf(out, "%d checkpoints match the chain, signatures NOT verified (pass --key); latest covers record %d\n", rep.Checkpoints, rep.Latest.HeadSeq)
			}
			if len(heads) > 0 {
				fmt.Fprintf(out, "%d anchors found in the log\n", len(heads))
			}
			if rep.Latest != nil && rep.Latest.HeadSeq < rep.Head.Seq {
				fmt.Fprintf(out, "records %d..%d are after the latest checkpoint\n", rep.Latest.HeadSeq+1, rep.Head.Seq)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyRef, "key", "", "gate public key (PEM) to verify checkpoint signatures with")
	cmd.Flags().StringArrayVar(&anchors, "anchor", nil, "SEQ:HASH of a record kept outside the database; the log must still hold it (repeatable)")
	cmd.Flags().StringArrayVar(&attestations, "attestation", nil, "an attestation.sigstore.json whose audit record the log must still hold (needs --key; repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func writeJSONL(w io.Writer, r audit.Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

func newAuditExportCmd(dsn *string) *cobra.Command {
	var format string
	var after int64
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the audit log as JSON lines",
		Long: `Write every record (seq, time, actor, kind, repo, sha, plan_id, run_id, payload,
prev_hash, hash) as one JSON object per line, oldest first. The hashes can be
recomputed from the fields alone (see docs/evidence.md), so an export can be
verified away from the database.`,
		Example: `  agentgate audit export --format jsonl > audit.jsonl
  agentgate audit export --after 1200 --db postgres://gate@db/agentgate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "jsonl" {
				return withCode(exitInvalid, fmt.Errorf("audit export: unknown --format %q (only jsonl)", format))
			}
			ctx := cmd.Context()
			l, done, err := openAuditLog(ctx, *dsn)
			if err != nil {
				return err
			}
			defer done()
			w := bufio.NewWriter(cmd.OutOrStdout())
			if err := l.Each(ctx, after, func(r audit.Record) error { return writeJSONL(w, r) }); err != nil {
				return withCode(exitFail, err)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "jsonl", "output format (jsonl)")
	cmd.Flags().Int64Var(&after, "after", 0, "export only records with seq greater than this")
	return cmd
}

func newAuditTailCmd(dsn *string) *cobra.Command {
	var n int
	var format string
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Show the last records of the audit log",
		Long:  `Show the last N records of the audit log, oldest first, one per line.`,
		Example: `  agentgate audit tail
  agentgate audit tail -n 50 --format jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 0 {
				return withCode(exitInvalid, errors.New("audit tail: -n must be at least 0"))
			}
			ctx := cmd.Context()
			l, done, err := openAuditLog(ctx, *dsn)
			if err != nil {
				return err
			}
			defer done()
			recs, err := l.Tail(ctx, n)
			if err != nil {
				return withCode(exitFail, err)
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			for _, r := range recs {
				switch format {
				case "jsonl":
					if err := writeJSONL(w, r); err != nil {
						return err
					}
				case "text":
					fmt.Fprintf(w, "%6d  %s  %-14s %-16s %s %s %s\n", r.Seq, r.Time.Format("2006-01-02T15:04:05Z"), r.Actor, r.Kind, orDash(r.Repo), shortSHA(r.SHA), r.Payload)
				default:
					return withCode(exitInvalid, fmt.Errorf("audit tail: unknown --format %q (text or jsonl)", format))
				}
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&n, "lines", "n", 10, "number of records")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or jsonl")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return orDash(s)
}
