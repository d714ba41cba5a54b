package gitcli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// ErrTooLarge reports a blob over the caller's size cap.
var ErrTooLarge = errors.New("file too large")

// batch is one long-lived `git cat-file --batch` process. It is safe for
// concurrent use; requests are serialised.
type batch struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	err    error // sticky: once the stream is out of sync it is unusable
}

func startBatch(ctx context.Context, repo string) (*batch, error) {
	cmd, err := Command(ctx, repo, "cat-file", "--batch")
	if err != nil {
		return nil, err
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start git cat-file: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start git cat-file: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start git cat-file: %w", err)
	}
	return &batch{cmd: cmd, stdin: in, stdout: bufio.NewReaderSize(out, 64<<10)}, nil
}

// object reads one object. A missing object gives fs-style not-found via
// errMissing; an object over max bytes gives ErrTooLarge (its content is
// skipped so the stream stays usable).
func (b *batch) object(name string, max int64) (typ string, data []byte, err error) {
	if strings.ContainsAny(name, "\n\x00") {
		return "", nil, fmt.Errorf("object name %q contains a newline or NUL", name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return "", nil, b.err
	}
	fail := func(e error) (string, []byte, error) {
		b.err = fmt.Errorf("git cat-file --batch: %w", e)
		return "", nil, b.err
	}
	if _, err := io.WriteString(b.stdin, name+"\n"); err != nil {
		return fail(err)
	}
	header, err := b.stdout.ReadString('\n')
	if err != nil {
		return fail(err)
	}
	header = strings.TrimSuffix(header, "\n")
	if strings.HasSuffix(header, " missing") || strings.HasSuffix(header, " ambiguous") {
		return "", nil, errMissing
	}
	f := strings.Fields(header)
	if len(f) != 3 {
		return fail(fmt.Errorf("unexpected header %q", header))
	}
	size, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || size < 0 {
		return fail(fmt.Errorf("unexpected header %q", header))
	}
	if max >= 0 && size > max {
		if _, err := io.CopyN(io.Discard, b.stdout, size+1); err != nil {
			return fail(err)
		}
		return f[1], nil, fmt.Errorf("%s is %d bytes, more than the %d byte limit: %w", name, size, max, ErrTooLarge)
	}
	data = make([]byte, size+1)
	if _, err := io.ReadFull(b.stdout, data); err != nil {
		return fail(err)
	}
	if data[size] != '\n' {
		return fail(errors.New("object not followed by a newline"))
	}
	return f[1], data[:size], nil
}

func (b *batch) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return nil
	}
	b.stdin.Close()
	err := b.cmd.Wait()
	b.cmd = nil
	if b.err == nil {
		b.err = errors.New("git cat-file --batch: closed")
	}
	return err
}

var errMissing = errors.New("object does not exist")

// ReadFile returns the content of path at commit rev, refusing blobs larger
// than max bytes (ErrTooLarge). A path that does not exist at rev wraps
// fs.ErrNotExist; a path that is not a regular file (a directory, a
// submodule) is an error.
func ReadFile(ctx context.Context, repo, rev, path string, max int64) ([]byte, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	if rev == "" || strings.HasPrefix(rev, "-") || strings.ContainsAny(rev, ":\n\x00") {
		return nil, fmt.Errorf("read %s: bad revision %q", path, rev)
	}
	b, err := startBatch(ctx, repo)
	if err != nil {
		return nil, err
	}
	defer b.close()
	typ, data, err := b.object(rev+":"+path, max)
	switch {
	case errors.Is(err, errMissing):
		return nil, fmt.Errorf("read %s at %s: %w", path, short(rev), errNotExist)
	case err != nil:
		return nil, fmt.Errorf("read %s at %s: %w", path, short(rev), err)
	case typ != "blob":
		return nil, fmt.Errorf("read %s at %s: is a %s, not a file", path, short(rev), typ)
	}
	return data, nil
}

// checkPath accepts only clean, relative, slash-separated paths.
func checkPath(p string) error {
	if !validPath(p) || p == "." {
		return fmt.Errorf("path %q is not a clean relative path inside the repository", p)
	}
	return nil
}

func short(sha string) string {
	if IsSHA(sha) {
		return sha[:12]
	}
	return sha
}

// lineReader helps parse NUL- or newline-separated records.
func splitZ(data []byte) [][]byte {
	data = bytes.TrimSuffix(data, []byte{0})
	if len(data) == 0 {
		return nil
	}
	return bytes.Split(data, []byte{0})
}
