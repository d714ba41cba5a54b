package gitcli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// BlobSizes returns the size in bytes of each object id, read with one
// `git cat-file --batch-check` process. Missing objects are an error.
func BlobSizes(ctx context.Context, repo string, oids []string) (map[string]int64, error) {
	out := make(map[string]int64, len(oids))
	if len(oids) == 0 {
		return out, nil
	}
	var in bytes.Buffer
	for _, o := range oids {
		if !IsSHA(o) {
			return nil, fmt.Errorf("object sizes: %q is not an object id", o)
		}
		in.WriteString(o)
		in.WriteByte('\n')
	}
	data, err := RunInput(ctx, repo, &in, "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)")
	if err != nil {
		return nil, fmt.Errorf("object sizes: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[1] == "missing" {
			return nil, fmt.Errorf("object sizes: object %s is missing from the repository", f[0])
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("object sizes: unexpected line %q", sc.Text())
		}
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("object sizes: unexpected line %q", sc.Text())
		}
		out[f[0]] = n
	}
	return out, sc.Err()
}

// CommitsTouching lists, oldest first, the commits of from..to that
// changed path (full history, no simplification, renames not followed).
func CommitsTouching(ctx context.Context, repo, from, to, path string) ([]string, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	out, err := Run(ctx, repo, "rev-list", "--reverse", "--full-history", "--end-of-options", from+".."+to, "--", path)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", path, err)
	}
	return strings.Fields(string(out)), nil
}

// VerifyCommits checks, with one git process, that every sha is a full
// object id naming a commit in repo.
func VerifyCommits(ctx context.Context, repo string, shas ...string) error {
	var in bytes.Buffer
	for _, s := range shas {
		if !IsSHA(s) {
			return fmt.Errorf("%q is not a full commit SHA: %w", s, ErrBadRevision)
		}
		in.WriteString(s + "\n")
	}
	out, err := RunInput(ctx, repo, &in, "cat-file", "--batch-check=%(objectname) %(objecttype)")
	if err != nil {
		return fmt.Errorf("verify commits: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(shas) {
		return fmt.Errorf("verify commits: unexpected output %q", out)
	}
	for i, l := range lines {
		if l != shas[i]+" commit" {
			return fmt.Errorf("verify commits: %s: %w (got %q; fetch it, or check the range)", shas[i], ErrBadRevision, l)
		}
	}
	return nil
}

// ReadFiles reads several paths at commit rev with one git process. Paths
// that do not exist are left out of the map; a path that is not a regular
// file or is over max bytes is an error.
func ReadFiles(ctx context.Context, repo, rev string, paths []string, max int64) (map[string][]byte, error) {
	if !IsSHA(rev) {
		return nil, fmt.Errorf("read files: %q is not a full commit SHA", rev)
	}
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return nil, err
		}
	}
	b, err := startBatch(ctx, repo)
	if err != nil {
		return nil, err
	}
	defer b.close()
	out := map[string][]byte{}
	for _, p := range paths {
		typ, data, err := b.object(rev+":"+p, max)
		switch {
		case errors.Is(err, errMissing):
			continue
		case err != nil:
			return nil, fmt.Errorf("read %s at %s: %w", p, short(rev), err)
		case typ != "blob":
			return nil, fmt.Errorf("read %s at %s: is a %s, not a file", p, short(rev), typ)
		}
		out[p] = data
	}
	return out, nil
}
