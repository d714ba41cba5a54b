package gitcli

import (
	"bufio"
	"bytes"
	"context"
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
